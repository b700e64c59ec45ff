"""Hugging Face integration: prune ``Trainer.hyperparameter_search`` trials, and measure the probes inside a
user's own ``Trainer`` run.

With no scorer and no steps, :class:`ProbeCallback` follows the shipped default rule
(:data:`earlyexit.pruning.DEFAULT_RULE`, as ``earlyexit run`` does): at the rule's rungs, placed on the
Trainer's own ``max_steps``, it asks the Trainer to evaluate, reports the dev metric (on the metric's own
scale) with what the pruner needs beside it (whether the trial is still warming up, the dev size), and
raises ``optuna.TrialPruned`` when :class:`earlyexit.pruning.ResolutionPruner` says so. It measures no probe::

    from earlyexit.hf import ProbeCallback
    from earlyexit.pruning import ResolutionPruner

    trainer = Trainer(model_init=model_init, args=args, train_dataset=train, eval_dataset=dev,
                      data_collator=collator, compute_metrics=accuracy)
    ProbeCallback.attach(trainer)
    best = trainer.hyperparameter_search(
        backend="optuna", direction="maximize", n_trials=20, hp_space=hp_space,
        pruner=ResolutionPruner(), compute_objective=lambda metrics: metrics["eval_accuracy"])

``compute_metrics`` must return ``accuracy`` (or map your metric with ``metric_keys``).

Measuring probes: ``ProbeCallback`` measures :func:`earlyexit.probes.measure` at chosen global steps on fixed
probe batches, logs the values through the Trainer's logging (TensorBoard, W&B and
``trainer.state.log_history`` see them as ``probe/<name>``), records the Trainer's own evaluations as
``dev_accuracy`` and ``dev_loss``, and, inside an Optuna trial, reports a score::

    ProbeCallback.attach(trainer, probe_batches, steps=(0, 10, 25, 50))               # the rank rule (probe loss)
    ProbeCallback.attach(trainer, probe_batches, scorer=load_scorer("scorer.joblib"),  # a fitted scorer's plan
                         decision_steps=pruner.decision_steps)

The rank rule is what a callback given ``steps`` and no scorer uses (also by name: ``scorer="rank"``); a fitted
scorer makes the callback measure only what it reads at the pruner's decision steps (``GeometricPruner``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .names import DEV_METRIC_AT, DEV_METRICS, LR_PROGRESS_AT, PROBES_AT, PRUNED_REASON, SCORE_AT, Scorer, at
from .probes import ProbeSettings, WarmStart, measure
from .protocol import pruned_reason, record
from .pruning import DEFAULT_RULE, ResolutionRule
from .scoring import ProbeRankScorer
from .training import SampledSchedule

if TYPE_CHECKING:  # annotations only
    import optuna
    from transformers import Trainer

DEFAULT_METRIC_KEYS = {"dev_accuracy": "eval_accuracy", "dev_metric": "eval_accuracy", "dev_loss": "eval_loss"}
"""Which key of the Trainer's evaluation metrics becomes which dev metric of the probe history."""


def _default_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


class ProbeCallback(TrainerCallback):
    """Measure probes at ``steps`` of a Trainer run; report to Optuna and prune.

    Args:
        probe_batches: the fixed probe batches (dicts of tensors the model
            accepts, labels included); moved to the model's device.
        steps: global steps at which to measure (0 is measured at train begin).
            Ignored when ``decision_steps`` is given.
        names: probes to measure (default all). Ignored when ``decision_steps`` is given.
        loss_fn: ``loss_fn(model, batch) -> scalar``; default ``model(**batch).loss``.
        scorer: maps the probe signature to a score (higher is better);
            default ranks by the probe-set loss.
        decision_steps: the pruner's decision steps (``GeometricPruner.decision_steps``).
            When given, the callback follows the scorer's measurement plan
            (``scorer.reads(decision_steps)``): each step measures only the probes
            read there, a step whose features include a dev metric makes the
            Trainer evaluate there, and the score is reported at the decision
            steps only.
        metric_keys: dev metric name -> key of the Trainer's evaluation metrics
            (default ``eval_accuracy`` and ``eval_loss``; ``compute_metrics``
            must return ``accuracy`` for the first).
        trainer: the Trainer, for logging and for the Optuna trial that
            ``hyperparameter_search`` sets; see :meth:`attach`.
        trial: an Optuna trial to report to when not using hyperparameter_search.
        settings: probe accuracy/cost settings.

    Attributes:
        history: ``{step: {name: value}}`` measured in the current run, probes and dev metrics.
        plan: ``{step: names}`` measured at each step (names ``None``: every probe).
    """

    def __init__(self, probe_batches: Sequence[dict] = (), *, steps: Iterable[int] | None = None,
                 names: Sequence[str] | None = None, loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
                 scorer: Scorer | str | None = None, decision_steps: Iterable[int] | None = None,
                 metric_keys: Mapping[str, str] | None = None, trainer: Trainer | None = None,
                 trial: optuna.Trial | None = None,
                 settings: ProbeSettings | None = None, rule: ResolutionRule | None = None):
        self.probe_batches = list(probe_batches)
        # The shipped default: no scorer, no steps -> the resolution rule at its rungs, no probe measured.
        self.rule = None
        if scorer is None and steps is None and decision_steps is None:
            self.rule = rule or DEFAULT_RULE
        elif rule is not None:
            raise ValueError("rule= is the default path's (no scorer, steps or decision_steps); give one or the other.")
        if self.rule is None and not self.probe_batches:
            raise ValueError("probe_batches must hold at least one batch.")
        steps = (0, 10, 25, 50, 100, 200, 400) if steps is None else steps
        self.loss_fn = loss_fn or _default_loss
        self.scorer = ProbeRankScorer("loss") if scorer in (None, "rank") else scorer
        if isinstance(self.scorer, str):
            raise ValueError(f"scorer must be a Scorer or 'rank', but got {self.scorer!r} (load_scorer(path) loads a file).")
        self.metric_keys = dict(DEFAULT_METRIC_KEYS if metric_keys is None else metric_keys)
        unknown = set(self.metric_keys) - set(DEV_METRICS)
        if unknown:
            raise ValueError(f"metric_keys maps dev metrics {DEV_METRICS}, but got {sorted(unknown)}.")
        if self.rule is not None:
            self.decision_steps = None  # placed on the Trainer's max_steps at train begin
            self.plan = {}
        elif decision_steps is None:
            self.decision_steps = None
            self.plan = {int(s): (tuple(names) if names is not None else None) for s in steps}
        else:
            self.decision_steps = frozenset(int(s) for s in decision_steps)
            if not self.decision_steps:
                raise ValueError("decision_steps must hold at least one step.")
            if not isinstance(self.scorer, Scorer):
                raise TypeError(f"decision_steps needs a scorer with score() and reads(decision_steps) "
                                f"(earlyexit.names.Scorer); {self.scorer!r} is not one.")
            self.plan = {int(s): tuple(n) for s, n in self.scorer.reads(sorted(self.decision_steps)).items()}
        if any(s < 0 for s in self.plan):
            raise ValueError(f"steps must be non-negative, but got {sorted(self.plan)}.")
        self.trainer = trainer
        self.trial = trial
        self.settings = settings
        self.history: dict[int, dict[str, float]] = {}  # a Signature, filled as the run goes
        self._warm = WarmStart()
        self._awaiting_eval: int | None = None
        self._schedule: SampledSchedule | None = None  # set from the Trainer's scheduler at train begin
        self._pruned: str | None = None  # DDP: rank 0's reason, raised at train end
        self._backend = None

    @property
    def steps(self) -> frozenset[int]:
        """The global steps at which the callback measures."""
        return frozenset(self.plan)

    @classmethod
    def attach(cls, trainer: Trainer, probe_batches: Sequence[dict] = (), **kwargs: Any) -> ProbeCallback:
        """Create a callback bound to ``trainer`` and add it to the trainer's callbacks."""
        callback = cls(probe_batches, trainer=trainer, **kwargs)
        trainer.add_callback(callback)
        return callback

    # -- Trainer events ---------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                       **kwargs: Any) -> None:
        self.history = {}
        self._schedule = SampledSchedule.of(kwargs.get("lr_scheduler"), state.max_steps, model)
        self._max_steps = int(state.max_steps) if state.max_steps else None
        if self.rule is not None:
            rungs = self.rule.rung_steps(int(state.max_steps))
            self.decision_steps = frozenset(rungs)
            self.plan = {s: ("dev_metric",) for s in rungs}
        self._warm = WarmStart()
        self._awaiting_eval = None
        if 0 in self.plan:
            self._checkpoint(0, model, optimizer, control)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    **kwargs: Any) -> None:
        if state.global_step in self.plan and state.global_step not in self.history:
            self._checkpoint(state.global_step, model, optimizer, control)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: Mapping[str, float] | None = None, **kwargs: Any) -> None:
        step = state.global_step
        for name, key in self.metric_keys.items():
            if metrics and key in metrics and step in self.plan:
                self.history.setdefault(step, {})[name] = float(metrics[key])
        if self._awaiting_eval == step:
            self._awaiting_eval = None
            self._report(step, control)

    # -- the work -----------------------------------------------------------
    def _reads_dev(self, step: int) -> bool:
        names = self.plan[step]
        return names is not None and any(n in self.metric_keys for n in names)

    def _checkpoint(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    control: TrainerControl) -> None:
        if model is None:
            raise RuntimeError("ProbeCallback needs the model; the Trainer passes it to callbacks.")
        names = self.plan[step]
        probe_names = None if names is None else [n for n in names if n not in DEV_METRICS]
        if self.rule is not None:
            probe_names = []  # the rule reads the dev evaluation only
        values: dict[str, float] = {}
        if probe_names is None or probe_names:
            device = next(model.parameters()).device
            batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
                       for b in self.probe_batches]
            optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
            result = measure(model, self.loss_fn, batches, names=probe_names, optimizer=optimizer,
                             warm_start=self._warm, settings=self.settings)
            self._warm = result.warm_start
            values = dict(result)
        self.history[step] = values
        if values and self.trainer is not None:
            self.trainer.log({f"probe/{k}": v for k, v in values.items()})
        if self._reads_dev(step):
            if step > 0:
                # The Trainer evaluates right after on_step_end when asked; score once the dev metrics are in.
                control.should_evaluate = True
                self._awaiting_eval = step
                return
            if self.trainer is not None:
                self.trainer.evaluate()  # step 0: before training, so no Trainer step would evaluate here
        self._report(step, control)

    def _report(self, step: int, control: TrainerControl) -> None:
        if self.decision_steps is not None and step not in self.decision_steps:
            return
        trial = self.trial if self.trial is not None else getattr(self.trainer, "_trial", None)
        if _rank() > 0:  # another rank of a DDP run: rank 0 decides, this rank follows (same step on every rank)
            if trial is not None or getattr(self.trainer, "hp_search_backend", None) is not None:
                self._conclude(step, control, _shared(None), None)
            return
        if trial is None or not hasattr(trial, "report"):
            return
        if self.rule is not None:
            self._report_dev(trial, step, control)
            return
        values = self.history.get(step, {})
        context = self._schedule.at(step) if self._schedule is not None else {}
        self.history.setdefault(step, {}).update(context)  # free names a transfer scorer reads (CONTEXT_NAMES)
        if "lr_progress" in context:
            trial.set_user_attr(at(LR_PROGRESS_AT, step), context["lr_progress"])
        score = self.scorer.score(self.history, step)
        trial.set_user_attr(at(SCORE_AT, step), score if math.isfinite(score) else str(score))
        dev = values.get("dev_metric", values.get("dev_accuracy"))
        if dev is not None and math.isfinite(dev):
            trial.set_user_attr(at(DEV_METRIC_AT, step), float(dev))  # what a pruner with dev_ties compares
        trial.set_user_attr(at(PROBES_AT, step), {k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        # Reported on the objective's scale: a fitted scorer's predicted final metric, or for the rank rule
        # (whose score only orders trials; the pruner ranks by the score attribute) the dev metric where the
        # Trainer evaluated, else NaN.
        reported = score if getattr(self.scorer, "predicts_metric", True) else self.history[step].get(
            "dev_metric", self.history[step].get("dev_accuracy", math.nan))
        trial.report(reported if math.isfinite(reported) else float("nan"), step)
        prune = trial.should_prune()
        decision = (prune, f"pruned at step {step} by the probe score {score:.4g}" if prune else "", reported)
        if prune:
            trial.set_user_attr(PRUNED_REASON, f"geometric pruner at step {step}")
        self._conclude(step, control, _shared(decision), trial)

    def _report_dev(self, trial, step: int, control: TrainerControl) -> None:
        """The default path: the dev metric, whether the trial still warms up, and the dev size; then the pruner."""
        dev = self.history.get(step, {}).get("dev_metric", self.history.get(step, {}).get("dev_accuracy", math.nan))
        schedule = self._schedule
        record(trial, step, dev, dev_size=_dev_size(self.trainer), max_steps=self._max_steps,
               warmup_steps=schedule.peak if schedule is not None else None,
               lr_progress=schedule.at(step)["lr_progress"] if schedule is not None else None)
        trial.report(float(dev) if math.isfinite(dev) else float("nan"), step)
        prune = trial.should_prune()
        reason = pruned_reason(trial, f"resolution rule at step {step}") if prune else ""
        if prune:
            trial.set_user_attr(PRUNED_REASON, reason)
        self._conclude(step, control, _shared((prune, reason, float(dev))), trial)

    def _conclude(self, step: int, control: TrainerControl, decision, trial) -> None:
        """Act on rank 0's decision ``(prune, reason, value)``. In one process: raise ``TrialPruned`` now. Under
        DDP every rank stops training at this step and rank 0 raises at the end of training, after the collective
        calls that end a Trainer run (raising on rank 0 alone, mid-run, would leave the other ranks waiting)."""
        import optuna

        prune, reason, value = decision
        if not prune:
            return
        if _world_size() == 1:
            raise optuna.TrialPruned(reason)
        control.should_training_stop = True
        self._pruned = reason
        if self.trainer is not None:
            # Without an objective, transformers evaluates once more after training on every rank; and the
            # Trainer's own report after this evaluation would ask the pruner again on rank 0 alone and raise.
            self.trainer.objective = value
            self._backend, self.trainer.hp_search_backend = self.trainer.hp_search_backend, None

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        reason, self._pruned = self._pruned, None
        if reason is None:
            return
        if self.trainer is not None:
            self.trainer.hp_search_backend = self._backend
        if _rank() == 0:
            import optuna

            raise optuna.TrialPruned(reason)


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _shared(decision):
    """Rank 0's ``decision`` on every rank of a DDP run (``decision`` as given in one process)."""
    if _world_size() == 1:
        return decision
    box = [decision]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _dev_size(trainer) -> int | None:
    data = getattr(trainer, "eval_dataset", None)
    try:
        return len(data) if data is not None else None
    except TypeError:  # an iterable dataset
        return None
