"""What one training run is: model, data, optimiser settings, budget and probe checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..probes import PROBE_NAMES

DEFAULT_PROBE_STEPS = (0, 10, 25, 50, 100, 200, 400)
SCHEDULES = ("linear", "cosine", "constant")
#: Our schedule names -> transformers' scheduler names (warmup, then the schedule).
HF_SCHEDULER_NAMES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run of a sequence classifier with AdamW.

    Attributes:
        model: hub name, local folder, or ``earlyexit:tiny-bert``.
        task: GLUE task name (``sst2``, ``cola``, ...).
        data: data folder, ``earlyexit:sst2-2k``, or None for the hub.
        learning_rate: peak AdamW learning rate.
        warmup_ratio: fraction of ``max_steps`` spent warming up linearly.
        weight_decay: AdamW decoupled weight decay.
        schedule: after warmup, ``linear`` or ``cosine`` decay to 0, or ``constant``.
        batch_size: training examples per step.
        max_steps: the training budget in optimiser steps.
        grad_clip: clip the global gradient norm to this (None: no clipping).
        seed: model-head initialisation, data order and dropout.
        probe_steps: steps (before the update of that step) at which probes,
            dev accuracy and dev loss are measured.
        probe_names: probes to measure at each probe step.
        probe_batches, probe_batch_size: the fixed probe set.
        probe_seed: which training examples form the probe set; keep it the
            same across the trials of a study so probes are comparable.
        max_length: tokens kept per example.
        group_by_length: pad within length-sorted groups (faster on CPU).
        freeze_word_embeddings: do not train the word-embedding matrix.
        prune_vocabulary: keep only the word-embedding rows of token ids the
            task's data uses (an exact reduction; faster steps and probes).
        num_layers: keep only the first encoder layers of a pretrained model.
        hidden_dropout, classifier_dropout: dropout overrides (None: model's).
        eval_batch_size: examples per evaluation batch.
    """

    model: str = "earlyexit:tiny-bert"
    task: str = "sst2"
    data: str | None = "earlyexit:sst2-2k"
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "linear"
    batch_size: int = 32
    max_steps: int = 200
    grad_clip: float | None = 1.0
    seed: int = 0
    probe_steps: tuple[int, ...] = DEFAULT_PROBE_STEPS
    probe_names: tuple[str, ...] = tuple(n for n in PROBE_NAMES if n != "relative_critical_sharpness")
    probe_batches: int = 4
    probe_batch_size: int = 8
    probe_seed: int = 0
    max_length: int = 128
    group_by_length: bool = False
    freeze_word_embeddings: bool = False
    prune_vocabulary: bool = False
    num_layers: int | None = None
    hidden_dropout: float | None = None
    classifier_dropout: float | None = None
    eval_batch_size: int = 128
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, but got {self.learning_rate=}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), but got {self.warmup_ratio=}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be at least 0, but got {self.weight_decay=}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, but got {self.schedule=}.")
        for name in ("batch_size", "max_steps", "probe_batches", "probe_batch_size", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, but got {getattr(self, name)}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, but got {self.grad_clip=}.")
        if any(s < 0 for s in self.probe_steps) or list(self.probe_steps) != sorted(set(self.probe_steps)):
            raise ValueError(f"probe_steps must be increasing non-negative integers, but got {self.probe_steps}.")
        unknown = [n for n in self.probe_names if n not in PROBE_NAMES]
        if unknown:
            raise ValueError(f"unknown probe name(s) {unknown}; known probes are {list(PROBE_NAMES)}.")
        for name in ("hidden_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), but got {value}.")
