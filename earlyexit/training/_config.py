"""What one training run is: model, data, optimiser settings, budget and probe checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..data import DataSource
from ..metrics import check_metric
from ..names import DEFAULT_PROBES, PROBE_NAMES

DEFAULT_PROBE_STEPS = (0, 10, 25, 50, 100, 200, 400)
SCHEDULES = ("linear", "cosine", "constant")
#: Our schedule names -> transformers' scheduler names (warmup, then the schedule).
HF_SCHEDULER_NAMES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def compute_steps(steps: int, probe_seconds: float, step_seconds: float) -> float:
    """A run's compute in training-step equivalents: ``steps`` trained plus ``probe_seconds`` of probing
    divided by the mean training-step time ``step_seconds`` (probing counts nothing where no step time
    is known yet, before the first step)."""
    if step_seconds > 0 and math.isfinite(step_seconds):
        return steps + probe_seconds / step_seconds
    return float(steps)


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run of a sequence classifier with AdamW.

    Attributes:
        model: hub name, local folder, or ``earlyexit:tiny-bert``.
        source: where the examples come from and how to read them (a
            :class:`earlyexit.data.DataSource`: a folder, two files or a hub
            dataset; text and label columns; a training subset). Its ``task``
            and ``path`` are also this config's ``task`` and ``data``.
        metric: what the study maximizes, logged at every checkpoint beside
            dev accuracy (see :data:`earlyexit.metrics.METRICS`).
        learning_rate: peak AdamW learning rate.
        warmup_ratio: fraction of ``max_steps`` spent warming up linearly.
        weight_decay: AdamW decoupled weight decay.
        schedule: after warmup, ``linear`` or ``cosine`` decay to 0, or ``constant``.
        batch_size: training examples per step.
        max_steps: the training budget in optimiser steps (when
            ``max_epochs`` is set, what :meth:`with_budget` resolves it to).
        max_epochs: the budget in epochs over the training split instead
            (steps = ceil(epochs x ceil(examples / batch_size))).
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
        device: ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps``: where the model, batches, optimizer state
            and probe batches live.
        precision: ``fp32``, ``bf16`` or ``fp16``: autocast for the training
            step (a gradient scaler for fp16). Evaluations run in float32.
        probe_precision: ``fp32`` (default: curvature in half precision is
            mostly noise) or ``train`` (the probes under the training
            precision's autocast, cheaper on a GPU).
    """

    model: str = "earlyexit:tiny-bert"
    source: DataSource = field(default_factory=lambda: DataSource(task="sst2", path="earlyexit:sst2-2k"))
    metric: str = "accuracy"
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "linear"
    batch_size: int = 32
    max_steps: int = 200
    max_epochs: float | None = None
    grad_clip: float | None = 1.0
    seed: int = 0
    probe_steps: tuple[int, ...] = DEFAULT_PROBE_STEPS
    probe_names: tuple[str, ...] = DEFAULT_PROBES
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
    device: str = "auto"
    precision: str = "fp32"
    probe_precision: str = "fp32"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        check_metric(self.metric)
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, but got {self.device!r}.")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, but got {self.precision!r}.")
        if self.probe_precision not in ("fp32", "train"):
            raise ValueError(f"probe_precision must be fp32 or train, but got {self.probe_precision!r}.")
        if self.max_epochs is not None and not (math.isfinite(self.max_epochs) and self.max_epochs > 0):
            raise ValueError(f"max_epochs must be positive, but got {self.max_epochs=}.")
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

    @property
    def task(self) -> str:
        """The task's name (a GLUE name fills in text columns and the hub dataset)."""
        return self.source.task

    @property
    def data(self) -> str | None:
        """The data folder (or ``earlyexit:sst2-2k``); None for files or the hub."""
        return self.source.path

    def budget_steps(self, train_examples: int) -> int:
        """The budget in optimiser steps for a training split of ``train_examples`` examples."""
        if self.max_epochs is None:
            return self.max_steps
        return epoch_budget(self.max_epochs, train_examples, self.batch_size)

    def with_budget(self, train_examples: int) -> "TrainConfig":
        """This config with ``max_steps`` resolved from ``max_epochs`` (unchanged without it)."""
        steps = self.budget_steps(train_examples)
        return self if steps == self.max_steps else replace(self, max_steps=steps)

    def probe_steps_past_budget(self) -> tuple[int, ...]:
        """Probe steps beyond ``max_steps``: they are never reached, so they are dropped."""
        return tuple(s for s in self.probe_steps if s > self.max_steps)


def epoch_budget(max_epochs: float, train_examples: int, batch_size: int) -> int:
    """Optimiser steps of ``max_epochs`` epochs over ``train_examples`` examples in batches of ``batch_size``
    (the last batch of an epoch may be short)."""
    per_epoch = -(-int(train_examples) // int(batch_size))
    return max(1, math.ceil(float(max_epochs) * per_epoch - 1e-9))
