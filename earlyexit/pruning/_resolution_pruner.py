"""``ResolutionPruner``: Optuna's BasePruner for :class:`ResolutionRule`, the rule the replay measures."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from ..names import (DEV_LOSS_AT, DEV_METRIC_AT, DEV_PREDICTIONS_AT, DEV_SIZE, LR_PROGRESS_AT, PEAK_LEARNING_RATE,
                     STUDY_BUDGET, STUDY_DEV_LABELS, STUDY_LABEL_NAMES, STUDY_METRIC, WARMING_UP_AT, WARMUP_RATIO, at)
from ..metrics import majority_share
from ..sweeps._format import decode_classes
from ._bound import bound_prunes
from ._default import DEFAULT_RULE
from ._resolution import Reading, ResolutionRule

REASON_ATTR = "earlyexit:pruned_reason"


class ResolutionPruner(BasePruner):
    """Prune a trial at a rung only when at least K other trials lead it by more than the dev set can resolve.

    At each of ``decision_steps`` (the rule's rungs placed on the study's budget: :meth:`for_budget`) the
    trial's dev metric is compared with every other trial that reported at that step (finished, pruned
    or still running: what a live study knows then). It is pruned when it is past its warmup there and
    at least ``rule.keep`` of them lead it by more than ``rule.z`` standard errors of the difference (see
    :mod:`earlyexit.pruning._resolution`). Nothing else prunes: at the constant classifier, where every
    trial has the same dev metric, no trial is ever pruned.

    What it reads from each trial (the study runner and the Trainer callback write these): the dev metric
    at the step (the user attribute ``dev_metric@{step}``, else the reported value), the per-example
    predictions (``dev_predictions@{step}``, with the study's ``earlyexit:dev_labels``: a paired test;
    without them the value-and-size approximation, with ``dev_size``), and whether its warmup is over
    (``warming_up@{step}``; absent: judged). The reason is stored in the trial's system attributes under
    ``earlyexit:pruned_reason``.

    With no arguments it is the shipped default (:data:`earlyexit.pruning.DEFAULT_RULE`) deciding at every
    step a trial reports: what ``earlyexit.hf.ProbeCallback`` reports on its default path are the rule's rungs,
    placed on the Trainer's own budget.

    Args:
        rule: the rule (rungs, keep, z, eta, pace); default the shipped one.
        decision_steps: the rungs in steps; None decides at every reported step.
        dev_size: dev examples, for the approximation where a trial has no per-example record.
        metric: the study's metric (``accuracy``, ``mcc``, ...); default: the study's ``earlyexit:metric``
            attribute, else accuracy.
        bound: a fitted :class:`~earlyexit.scoring.FinalInterval` (``earlyexit.scoring.load_bound()`` loads the
            package's): a trial the rule lets pass is also pruned where its optimistic final (its dev metric,
            plus the gain the model predicts, plus a margin calibrated on this study's completed trials at
            ``coverage``) falls below the ``bound_keep``-th best completed final (:mod:`earlyexit.pruning._bound`;
            the replay's ``interval`` policy). It reads what ``earlyexit run`` stores: ``dev_loss@{step}``,
            ``lr_progress@{step}``, the trial's ``earlyexit:learning_rate`` and ``earlyexit:warmup_ratio``, the
            study's budget, label names and dev labels. A trial missing any of them is judged by the rule alone.
        coverage, bound_keep: the bound's settings (the nested comparison's choice: 0.8 and 1).
    """

    def __init__(self, rule: ResolutionRule | None = None, *, decision_steps: Iterable[int] | None = None,
                 dev_size: int | None = None, metric: str | None = None, bound=None, coverage: float = 0.8,
                 bound_keep: int = 1):
        steps = None if decision_steps is None else tuple(sorted(set(int(s) for s in decision_steps)))
        if steps is not None and (not steps or steps[0] < 1):
            raise ValueError(f"decision_steps must be positive integers, but got {tuple(decision_steps)}.")
        if dev_size is not None and dev_size < 3:
            raise ValueError(f"dev_size must be at least 3, but got {dev_size}.")
        self.rule = rule or DEFAULT_RULE
        self._steps = None if steps is None else frozenset(steps)
        self._dev_size = dev_size
        self._metric = metric
        self._labels_cache: tuple[str, np.ndarray] | None = None
        if not 0 < coverage < 1 or bound_keep < 1:
            raise ValueError(f"coverage must be in (0, 1) and bound_keep at least 1, but got {coverage}, {bound_keep}.")
        self.bound, self.coverage, self.bound_keep = bound, coverage, bound_keep

    @classmethod
    def for_budget(cls, rule: ResolutionRule, max_steps: int, *, eval_steps: Iterable[int] | None = None,
                   dev_size: int | None = None, metric: str | None = None, **settings) -> ResolutionPruner:
        """The pruner for a study of ``max_steps`` steps: each rung at the first of ``eval_steps`` at or past its
        fraction of the budget (every step where None); ``settings``: the class's other arguments."""
        steps = rule.rung_steps(max_steps, None if eval_steps is None else tuple(eval_steps))
        if not steps:
            raise ValueError(f"no rung of {rule.rungs} falls on an evaluation step before the budget "
                             f"({max_steps} steps); evaluate more often.")
        return cls(rule, decision_steps=steps, dev_size=dev_size, metric=metric, **settings)

    @property
    def decision_steps(self) -> tuple[int, ...] | None:
        """The steps at which it decides, ascending; None: every step a trial reports."""
        return None if self._steps is None else tuple(sorted(self._steps))

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or (self._steps is not None and step not in self._steps):
            return False
        others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                       TrialState.RUNNING))
                  if t.number != trial.number]
        return self._decide(study, trial, step, others, [t for t in others if step in t.intermediate_values])

    def _decide(self, study, trial, step: int, others, rivals, how: str = "") -> bool:
        """The rule at ``step`` against ``rivals`` (the trials that reported there), then the bound; ``others``:
        every other trial (their histories, the completed ones' finals); ``how`` ends the stored reason."""
        metric = self._metric or str(study.user_attrs.get(STUDY_METRIC, "accuracy"))
        labels = self._labels(study)
        n = len(labels) if labels is not None else (self._dev_size or trial.user_attrs.get(DEV_SIZE))
        if n is None:
            raise ValueError("ResolutionPruner needs the dev size: pass dev_size=, or set the study's "
                             f"{STUDY_DEV_LABELS!r} attribute (earlyexit run does) or the trial's {DEV_SIZE!r} "
                             "(ProbeCallback does).")
        mine = _reading(trial, step, labels)
        histories = None
        if self.rule.progress_match and mine.warming_up:  # each rival's readings at the rungs it has reached
            histories = [[_reading(t, s, labels) for s in sorted(t.intermediate_values)
                          if s <= step and (self._steps is None or s in self._steps)]
                         for t in others]
        prune, evidence = self.rule.prune(mine, [_reading(t, step, labels) for t in rivals], n=n, metric=metric,
                                          labels=labels, histories=histories)
        if prune:
            study._storage.set_trial_system_attr(
                trial._trial_id, REASON_ATTR,
                f"step {step}: {self.rule.keep}+ trial(s) ahead by > {self.rule.z:g} SE ({evidence}){how}")
        elif self.bound is not None and self._bound_prunes(study, trial, step, others, labels, metric):
            study._storage.set_trial_system_attr(
                trial._trial_id, REASON_ATTR,
                f"step {step}: its optimistic final is below the {self.bound_keep}-th best completed final "
                f"({self.coverage:.0%} bound calibrated on this study)")
            return True
        return prune

    def _bound_prunes(self, study, trial, step, others, labels, metric) -> bool:
        completed = [t for t in others if t.state == TrialState.COMPLETE and t.value is not None]
        if len(completed) < self.bound_keep:
            return False
        context = _bound_context(study, labels, metric)
        if context is None:
            return False
        mine = _bound_row(trial, step, context)
        if mine is None:
            return False
        theirs = [(t, row) for t in completed if (row := _bound_row(t, step, context)) is not None]
        gains = self.bound.predict_gain(np.array([mine] + [row for _, row in theirs], dtype=float))
        errors = [t.value - row[0] - g for (t, row), g in zip(theirs, gains[1:])]
        return bound_prunes(mine[0], float(gains[0]), errors, [t.value for t in completed], keep=self.bound_keep,
                            coverage=self.coverage)

    def _labels(self, study) -> np.ndarray | None:
        text = study.user_attrs.get(STUDY_DEV_LABELS)
        if not text:
            return None
        if self._labels_cache is None or self._labels_cache[0] != text:
            self._labels_cache = (text, np.asarray(decode_classes(text), dtype=np.int16))
        return self._labels_cache[1]


def _reading(trial: optuna.trial.FrozenTrial, step: int, labels) -> Reading:
    value = trial.user_attrs.get(at(DEV_METRIC_AT, step), trial.intermediate_values.get(step))
    value = float(value) if isinstance(value, (int, float)) else math.nan
    preds = trial.user_attrs.get(at(DEV_PREDICTIONS_AT, step)) if labels is not None else None
    preds = np.asarray(decode_classes(preds), dtype=np.int16) if preds else None
    if preds is not None and len(preds) != len(labels):
        preds = None
    progress = trial.user_attrs.get(at(LR_PROGRESS_AT, step))
    return Reading(value, preds, bool(trial.user_attrs.get(at(WARMING_UP_AT, step), False)),
                   float(progress) if isinstance(progress, (int, float)) else math.nan)


def _bound_context(study, labels, metric: str) -> dict | None:
    """What the bound's rows need from the study: its budget, number of classes and constant classifier's score."""
    budget, names = study.user_attrs.get(STUDY_BUDGET), study.user_attrs.get(STUDY_LABEL_NAMES)
    if not budget or not names:
        return None
    if metric == "mcc":
        constant = 0.0
    elif metric == "accuracy" and labels is not None and len(labels):
        constant = majority_share(labels)
    else:
        return None
    return {"budget": int(budget), "classes": len(names), "constant": constant}


def _bound_row(trial: optuna.trial.FrozenTrial, step: int, context: dict) -> list[float] | None:
    """The trial's :func:`~earlyexit.scoring._interval.interval_row` at ``step``, or None where an attribute is missing."""
    from ..scoring._interval import interval_row

    a = trial.user_attrs
    values = [a.get(at(DEV_METRIC_AT, step)), a.get(at(LR_PROGRESS_AT, step)), a.get(at(DEV_LOSS_AT, step)),
              a.get(PEAK_LEARNING_RATE), a.get(WARMUP_RATIO)]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    v, progress, loss, lr, warmup = (float(x) for x in values)
    return interval_row(dev_metric=v, constant=context["constant"], lr_progress=progress, step=step,
                        budget=context["budget"], learning_rate=lr, warmup_ratio=warmup, dev_loss=loss,
                        classes=context["classes"])
