"""``GeometricPruner``: Optuna's BasePruner deciding on reported probe-signature scores."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from ..names import DEV_METRIC_AT, LR_PROGRESS_AT, SCORE_AT, at
from ._decide import decide

from ..protocol import REASON_ATTR, set_pruned_reason  # noqa: E402,F401


class GeometricPruner(BasePruner):
    """Prune trials whose probe signature scores outside the top at a decision step.

    The objective reports, at each probe step, the trial's *score*: the
    scorer's prediction of the final metric from the probes (higher is
    better). Where it also sets the user attribute ``score@{step}``, that is
    what is ranked (the rank rule's raw value, whose reported value is then the
    dev metric, on the objective's scale). At a decision step the
    pruner compares the trial's score with every other trial that reported
    at that step (all workers, all states) and prunes it unless it ranks in
    the top ``keep_top`` (or the top ``keep_fraction``), counting only the
    trials that score more than ``margin`` higher. A trial that has spent less
    than ``min_lr_progress`` of its learning-rate schedule (the user attribute
    ``lr_progress@{step}`` the study runner and the Trainer callback set) is
    not judged yet. Several decision steps are successive rungs: a trial kept
    at one is scored again at the next. Other steps never prune. The reason
    is stored in the trial's system attributes under
    ``earlyexit:pruned_reason``. The rule itself is :func:`earlyexit.pruning.decide`.

    Args:
        decision_steps: the steps at which to decide.
        keep_top: keep a trial if fewer than this many others score higher.
        keep_fraction: or keep the top fraction of the trials seen.
        n_startup_trials: never prune before this many others reported at the step.
        margin: a trial is outranked only by scores more than this higher (the score's units: metric
            units for a fitted scorer, 0.005 = half a point); one value, or one per decision step
            (``{step: margin}``, what a transfer scorer's rule gives; 0 at a step it leaves out).
        min_lr_progress: do not judge a trial that has spent less than this fraction of its
            learning-rate schedule (0..1).
        dev_ties: a trial is outranked only by trials whose dev metric at the step (the user attribute
            ``dev_metric@{step}`` the study runner and the Trainer callback set) is strictly higher: while
            the dev evaluation does not separate trials (all at the constant classifier), none is pruned
            on the scorer's word alone. A trial without the attribute is ranked by score alone.
    """

    def __init__(self, *, decision_steps: Iterable[int] = (50,), keep_top: int | None = 2,
                 keep_fraction: float | None = None, n_startup_trials: int = 3,
                 margin: float | Mapping[int, float] = 0.0, min_lr_progress: float = 0.0,
                 dev_ties: bool = False):
        steps = tuple(decision_steps)
        if not steps or any(not isinstance(s, int) or s < 0 for s in steps):
            raise ValueError(f"decision_steps must be non-negative integers, but got {steps=}.")
        if keep_top is not None and keep_fraction is not None:
            raise ValueError(f"give keep_top or keep_fraction, not both, but got {keep_top=}, {keep_fraction=}.")
        margins = dict(margin) if isinstance(margin, Mapping) else {}
        for m in [*margins.values(), 0.0 if margins else margin]:
            decide(0.0, [], step=0, keep_top=keep_top, keep_fraction=keep_fraction,
                   n_startup_trials=n_startup_trials, margin=m, min_lr_progress=min_lr_progress)  # validates
        self._decision_steps = frozenset(steps)
        self._keep_top = keep_top
        self._keep_fraction = keep_fraction
        self._n_startup_trials = n_startup_trials
        self._margin = {int(k): float(v) for k, v in margins.items()} if margins else float(margin)
        self._min_lr_progress = min_lr_progress
        self._dev_ties = bool(dev_ties)

    @classmethod
    def from_scorer(cls, scorer, *, max_steps: int, probe_steps: Iterable[int] = (0, 10, 25, 50, 100, 200, 400),
                    n_startup_trials: int = 0) -> GeometricPruner:
        """The pruner a transfer scorer's own rule describes for a study of ``max_steps`` training steps
        probed at ``probe_steps``: its rungs placed on those steps, its keep-top, its margin at each decision
        step and its learning-rate guard (what ``earlyexit run`` does with a spec that leaves them out; for a
        Trainer, pass ``pruner.decision_steps`` to ``ProbeCallback``)."""
        rule = getattr(scorer, "rule", None)
        if rule is None:
            raise TypeError(f"{type(scorer).__name__} has no decision rule (a transfer scorer has one: "
                            "load_scorer('default')).")
        decisions = scorer.decisions(max_steps, probe_steps)
        return cls(decision_steps=tuple(decisions), keep_top=rule.keep_top, n_startup_trials=n_startup_trials,
                   margin=decisions, min_lr_progress=rule.min_lr_progress,
                   dev_ties=rule.dev_ties)

    @property
    def decision_steps(self) -> tuple[int, ...]:
        """The steps at which the pruner decides, ascending (what ``ProbeCallback(decision_steps=)`` takes)."""
        return tuple(sorted(self._decision_steps))

    def margin_at(self, step: int) -> float:
        """The margin at ``step``, in the score's units."""
        return self._margin.get(step, 0.0) if isinstance(self._margin, dict) else self._margin

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step not in self._decision_steps:
            return False
        score = _score(trial, step)
        rivals = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                       TrialState.RUNNING))
                  if t.number != trial.number and step in t.intermediate_values]
        others = [_score(t, step) for t in rivals]
        progress = trial.user_attrs.get(at(LR_PROGRESS_AT, step))
        ties = dict(dev=_dev(trial, step), others_dev=[_dev(t, step) for t in rivals]) if self._dev_ties else {}
        decision = decide(score, others, step=step, keep_top=self._keep_top,
                          keep_fraction=self._keep_fraction, n_startup_trials=self._n_startup_trials,
                          margin=self.margin_at(step), min_lr_progress=self._min_lr_progress,
                          lr_progress=float(progress) if progress is not None else None, **ties)
        if decision.prune:
            set_pruned_reason(study, trial, decision.reason)
        return decision.prune


def _score(trial: optuna.trial.FrozenTrial, step: int) -> float:
    """The score a trial was ranked by at ``step``: its ``score@{step}`` user attribute where the objective
    set one (the reported value is then an estimate of the final metric, for people and dashboards),
    else the reported value itself."""
    value = trial.user_attrs.get(at(SCORE_AT, step))
    if value is None:
        value = trial.intermediate_values[step]
    return float(value) if isinstance(value, (int, float)) else math.nan


def _dev(trial: optuna.trial.FrozenTrial, step: int) -> float:
    """The trial's dev metric at ``step`` (its ``dev_metric@{step}`` attribute), NaN where not recorded."""
    value = trial.user_attrs.get(at(DEV_METRIC_AT, step))
    return float(value) if isinstance(value, (int, float)) else math.nan
