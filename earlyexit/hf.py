"""Hugging Face integration: measure the probes inside a user's own ``Trainer`` run.

``ProbeCallback`` measures :func:`earlyexit.probes.measure` at chosen global
steps on fixed probe batches, logs the values through the Trainer's logging
(so TensorBoard, W&B and ``trainer.state.log_history`` see them as
``probe/<name>``), and, inside an Optuna trial, reports the score and raises
``optuna.TrialPruned`` when the trial's pruner says so.

Recipe with ``Trainer.hyperparameter_search`` and the geometric pruner::

    from earlyexit.hf import ProbeCallback
    from earlyexit.pruning import GeometricPruner

    trainer = Trainer(model_init=model_init, args=args, train_dataset=train, eval_dataset=dev,
                      data_collator=collator, compute_metrics=accuracy)
    ProbeCallback.attach(trainer, probe_batches, steps=(0, 10, 25, 50))
    best = trainer.hyperparameter_search(
        backend="optuna", direction="maximize", n_trials=20, hp_space=hp_space,
        pruner=GeometricPruner(decision_steps=[50], keep_top=3),
        compute_objective=lambda metrics: metrics["eval_accuracy"])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from .probes import ProbeSettings, WarmStart, measure
from .scoring import ProbeRankScorer


def _default_loss(model, batch):
    return model(**batch).loss


class ProbeCallback(TrainerCallback):
    """Measure probes at ``steps`` of a Trainer run; report to Optuna and prune.

    Args:
        probe_batches: the fixed probe batches (dicts of tensors the model
            accepts, labels included); moved to the model's device.
        steps: global steps at which to measure (0 is measured at train begin).
        names: probes to measure (default all).
        loss_fn: ``loss_fn(model, batch) -> scalar``; default ``model(**batch).loss``.
        scorer: maps the probe signature to a score (higher is better);
            default ranks by the probe-set loss.
        trainer: the Trainer, for logging and for the Optuna trial that
            ``hyperparameter_search`` sets; see :meth:`attach`.
        trial: an Optuna trial to report to when not using hyperparameter_search.
        settings: probe accuracy/cost settings.

    Attributes:
        history: ``{step: {probe: value}}`` measured in the current run.
    """

    def __init__(self, probe_batches: Sequence[dict], *, steps: Iterable[int] = (0, 10, 25, 50, 100, 200, 400),
                 names: Sequence[str] | None = None, loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
                 scorer=None, trainer=None, trial=None, settings: ProbeSettings | None = None):
        self.probe_batches = list(probe_batches)
        if not self.probe_batches:
            raise ValueError("probe_batches must hold at least one batch.")
        self.steps = frozenset(int(s) for s in steps)
        if any(s < 0 for s in self.steps):
            raise ValueError(f"steps must be non-negative, but got {sorted(self.steps)}.")
        self.names = names
        self.loss_fn = loss_fn or _default_loss
        self.scorer = scorer or ProbeRankScorer("loss")
        self.trainer = trainer
        self.trial = trial
        self.settings = settings
        self.history: dict[int, dict[str, float]] = {}
        self._warm = WarmStart()

    @classmethod
    def attach(cls, trainer, probe_batches: Sequence[dict], **kwargs) -> ProbeCallback:
        """Create a callback bound to ``trainer`` and add it to the trainer's callbacks."""
        callback = cls(probe_batches, trainer=trainer, **kwargs)
        trainer.add_callback(callback)
        return callback

    # -- Trainer events ---------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.history = {}
        self._warm = WarmStart()
        if 0 in self.steps:
            self._checkpoint(0, model, optimizer)

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step in self.steps and state.global_step not in self.history:
            self._checkpoint(state.global_step, model, optimizer)

    # -- the work -----------------------------------------------------------
    def _checkpoint(self, step: int, model, optimizer) -> None:
        if model is None:
            raise RuntimeError("ProbeCallback needs the model; the Trainer passes it to callbacks.")
        device = next(model.parameters()).device
        batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in self.probe_batches]
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
        result = measure(model, self.loss_fn, batches, names=self.names, optimizer=optimizer,
                         warm_start=self._warm, settings=self.settings)
        self._warm = result.warm_start
        values = dict(result)
        self.history[step] = values
        if self.trainer is not None:
            self.trainer.log({f"probe/{k}": v for k, v in values.items()})
        trial = self.trial if self.trial is not None else getattr(self.trainer, "_trial", None)
        if trial is None or not hasattr(trial, "report"):
            return
        import optuna

        score = self.scorer.score(self.history, step)
        trial.set_user_attr(f"probes@{step}", {k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        trial.report(score if math.isfinite(score) else float("nan"), step)
        if trial.should_prune():
            trial.set_user_attr("pruned_reason", f"geometric pruner at step {step}")
            raise optuna.TrialPruned(f"pruned at step {step} by the probe score {score:.4g}")
