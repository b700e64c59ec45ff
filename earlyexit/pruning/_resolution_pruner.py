"""``ResolutionPruner``: Optuna's BasePruner for :class:`ResolutionRule`, the rule the replay measures."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from .. import protocol
from ..names import (DEV_LOSS_AT, DEV_METRIC_AT, LR_PROGRESS_AT, PEAK_LEARNING_RATE, STUDY_BUDGET, STUDY_DEV_LABELS,
                     STUDY_LABEL_NAMES, STUDY_METRIC, WARMING_UP_AT, WARMUP_RATIO, at)
from ..metrics import majority_share
from ..protocol import REASON_ATTR, decode_classes  # noqa: F401  (REASON_ATTR: named here too)
from ._bound import bound_prunes
from ._default import DEFAULT_RULE
from ._resolution import ResolutionRule

JUDGE_AT = ("step", "fraction")


class ResolutionPruner(BasePruner):
    """Prune a trial at a rung only when at least K other trials lead it by more than the dev set can resolve.

    At each rung the trial's dev metric is compared with every other trial that reached the same rung
    (finished, pruned or still running: what a live study knows then). It is pruned when it is past its warmup there and
    at least ``rule.keep`` of them lead it by more than ``rule.z`` standard errors of the difference (see
    :mod:`earlyexit.pruning._resolution`). Nothing else prunes: at the constant classifier, where every
    trial has the same dev metric, no trial is ever pruned.

    Where it decides. Each trial is judged at the rule's rungs placed on its own budget: at the first step it
    reports at or past each rung (5%, 10%, 25% and 50% of the budget by default), and nowhere else. The budget
    is the trial's own ``max_steps`` where it reported one (:func:`earlyexit.report`), else ``max_resource``,
    else the study's ``earlyexit:budget_steps`` (``earlyexit run`` sets it). With no budget known it decides
    nothing and says so once. It is compared there with the trials that have reached that step: their reading
    at the same step number, or their latest before it where they went past it without reporting there
    (``judge_at="step"``, the default; a trial still short of the step, pruned before it, or whose budget ended
    before it is left out, as the replay leaves it out), or with every other trial at the same rung of *its* own budget
    (``judge_at="fraction"``: trials of different lengths meet at the same share of their schedules); with one
    budget and one reporting cadence for all, the two are the same. Where budgets differ (a searched batch size)
    the replay measured same-step judging to lose less (``benchmarks/judge_at.py``; ``docs/protocol.md``).
    ``decision_steps`` instead fixes the steps outright.

    What it reads from each trial (:mod:`earlyexit.protocol`, written by :func:`earlyexit.report`, the study
    runner, the Trainer callback and the replay): the dev metric at the step (``dev_metric@{step}``, else the
    reported value), the per-example predictions (``dev_predictions@{step}``, with the study's
    ``earlyexit:dev_labels``: a paired test; without them the value-and-size approximation, with the dev
    size), and whether its warmup is over (``warming_up@{step}``; absent: judged, with a warning). The reason
    is stored in the trial's system attributes under ``earlyexit:pruned_reason``.

    Args:
        rule: the rule (rungs, keep, z, eta, pace); default the shipped one.
        max_resource: the budget in steps of a trial that does not report its own (Optuna's name).
        decision_steps: the steps at which to decide, for every trial (instead of rungs on budgets).
        judge_at: ``"step"`` (default) or ``"fraction"``: which readings of the other trials a trial meets.
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

    def __init__(self, rule: ResolutionRule | None = None, *, max_resource: int | None = None,
                 decision_steps: Iterable[int] | None = None, judge_at: str = "step",
                 dev_size: int | None = None, metric: str | None = None, bound=None, coverage: float = 0.8,
                 bound_keep: int = 1):
        steps = None if decision_steps is None else tuple(sorted(set(int(s) for s in decision_steps)))
        if steps is not None and (not steps or steps[0] < 1):
            raise ValueError(f"decision_steps must be positive integers, but got {tuple(decision_steps)}.")
        if max_resource is not None and (isinstance(max_resource, bool) or not isinstance(max_resource, int)
                                         or max_resource < 2):
            raise ValueError(f"max_resource must be an integer number of steps >= 2, but got {max_resource!r}.")
        if judge_at not in JUDGE_AT:
            raise ValueError(f"judge_at must be one of {JUDGE_AT}, but got {judge_at!r}.")
        self.max_resource, self.judge_at = max_resource, judge_at
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
        if step is None:
            return False
        others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                       TrialState.RUNNING))
                  if t.number != trial.number]
        if self._steps is not None:
            if step not in self._steps:
                return False
            return self._decide(study, trial, step, others, [(t, step) for t in others if step in t.intermediate_values])
        default = self.max_resource or protocol.study_budget(study)
        own = protocol.budget(trial, default)
        if own is None:
            protocol.warn_once(f"no-budget:{study.study_name}", "ResolutionPruner knows no budget, so it decides "
                               "nothing: pass max_resource= (the steps of a full trial), or report max_steps= with "
                               "earlyexit.report().")
            return False
        fraction = self._rung_of(trial, step, own)
        if fraction is None:
            return False
        rivals = []
        for t in others:
            theirs = protocol.budget(t, default)
            if self.judge_at == "step":
                # Its reading at this step, else its latest before it (a trial reporting only at its own rungs,
                # as the Trainer callback does, rarely reports at another's rung steps); only a trial that has
                # reported at or past this step (one still short of it, or pruned before it, has not reached the
                # rung: the replay's rule meets the trials that reached it), and not one whose budget ended
                # before this step.
                earlier = [s for s in t.intermediate_values if s <= step]
                reached = bool(earlier) and max(t.intermediate_values) >= step
                if reached and (theirs is None or theirs > step):
                    rivals.append((t, max(earlier)))
                continue
            s = protocol.rung_step(t.intermediate_values, fraction, theirs) if theirs else None
            if s is not None:
                rivals.append((t, s))
        where = f" at {fraction:.0%} of its {own}-step budget"
        return self._decide(study, trial, step, others, rivals, where=where, budget=(own, default))

    def _rung_of(self, trial, step: int, own: int) -> float | None:
        """The rung whose first reported step at or past it is ``step`` (None: not a rung step of this trial)."""
        earlier = [s for s in trial.intermediate_values if s < step]
        before = max(earlier) if earlier else -1
        for f in self.rule.rungs:
            target = f * own
            if before < target <= step < own:
                return f
        return None

    def _decide(self, study, trial, step: int, others, rivals, how: str = "", where: str = "", budget=None) -> bool:
        """The rule at ``step`` against ``rivals`` (``(trial, its step)`` pairs: what each reported at the same
        rung), then the bound; ``others``: every other trial (their histories, the completed ones' finals);
        ``how`` ends the stored reason, ``where`` says where on the trial's budget it was judged."""
        metric = self._metric or str(study.user_attrs.get(STUDY_METRIC, "accuracy"))
        labels = self._labels(study)
        n = protocol.dev_size(trial, labels) or self._dev_size
        if n is None:
            protocol.warn_once(f"no-dev-size:{study.study_name}", "ResolutionPruner does not know the dev size, "
                               "so it prunes nothing: pass dev_size=, or report predictions= or labels= with "
                               "earlyexit.report().")
            return False
        mine = protocol.reading(trial, step, labels)
        if self.rule.pace and not any(at(WARMING_UP_AT, step) == k for k in trial.user_attrs):
            protocol.warn_once(f"no-pace:{study.study_name}", "ResolutionPruner does not know whether trials still "
                               "warm up, so it judges them all: report warmup_steps= with earlyexit.report().")
        histories = None
        if self.rule.progress_match and mine.warming_up:  # each rival's readings at the rungs it has reached
            histories = [[protocol.reading(t, s, labels) for s in self._rung_steps_of(t, step, budget)] for t in others]
        prune, evidence = self.rule.prune(mine, [protocol.reading(t, s, labels) for t, s in rivals], n=n,
                                          metric=metric, labels=labels, histories=histories)
        if prune:
            protocol.set_pruned_reason(
                study, trial,
                f"step {step}{where}: {self.rule.keep}+ trial(s) ahead by > {self.rule.z:g} SE ({evidence}){how}")
        elif self.bound is not None and self._bound_prunes(study, trial, step, others, labels, metric):
            protocol.set_pruned_reason(
                study, trial,
                f"step {step}{where}: its optimistic final is below the {self.bound_keep}-th best completed final "
                f"({self.coverage:.0%} bound calibrated on this study)")
            return True
        return prune

    def _rung_steps_of(self, t, step: int, budget) -> list[int]:
        """The steps of ``t``'s readings at the rungs it has reached by ``step`` (progress matching)."""
        if budget is None:  # fixed decision steps
            return [s for s in sorted(t.intermediate_values) if s <= step and (self._steps is None or s in self._steps)]
        theirs = protocol.budget(t, budget[1])
        found = [protocol.rung_step(t.intermediate_values, f, theirs) for f in self.rule.rungs] if theirs else []
        return [s for s in found if s is not None and s <= step]

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
    """The trial's :func:`~earlyexit.protocol.interval_row` at ``step``, or None where an attribute is missing."""
    from ..protocol import interval_row

    a = trial.user_attrs
    values = [a.get(at(DEV_METRIC_AT, step)), a.get(at(LR_PROGRESS_AT, step)), a.get(at(DEV_LOSS_AT, step)),
              a.get(PEAK_LEARNING_RATE), a.get(WARMUP_RATIO)]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    v, progress, loss, lr, warmup = (float(x) for x in values)
    return interval_row(dev_metric=v, constant=context["constant"], lr_progress=progress, step=step,
                        budget=context["budget"], learning_rate=lr, warmup_ratio=warmup, dev_loss=loss,
                        classes=context["classes"])
