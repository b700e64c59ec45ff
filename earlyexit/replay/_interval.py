"""The ``interval`` policies: the shipped rule, plus a bound on each trial's final that judges trials the rule passes.

At each rung a trial is pruned when :class:`~earlyexit.pruning.ResolutionRule` prunes it, or when its optimistic
bound on the final dev metric falls below the K-th best final among the trials already trained to the end in the
study (a completed trial's final is observed: it is its own pessimistic bound). The bound is the gain to the final
predicted by :class:`~earlyexit.scoring.FinalInterval` (fitted on other tasks' sweeps) plus a calibrated margin,
either from other tasks (``interval_tasks``) or from this study's own completed trials (``interval``). It is what
lets a trial still warming up be judged ("predict instead of exempt"); where the model is out of its range (a task
with more classes, a budget far from every sweep's) there is no bound and the rule alone decides.
"""

from __future__ import annotations

import math

import numpy as np

from ..pruning import bound_prunes
from ..pruning import ResolutionRule
from ..scoring import INTERVAL_COLUMNS, MIN_HEADROOM, FinalInterval, interval_row
from ._engine import HeldSet, RuleJudge


def interval_rows(held: HeldSet, *, fitting: bool = False) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """Every run of ``held`` at every logged step inside its budget: ``(keys, X, finals)``.

    ``keys`` are ``(run_id, step)``; ``X`` has :data:`~earlyexit.scoring.INTERVAL_COLUMNS`; ``finals`` each
    row's run's final. ``fitting`` leaves out runs that diverged or have no final.
    """
    keys, rows, finals = [], [], []
    for run, step, sig in held.readings(fitting=fitting):
        keys.append((run.run_id, step))
        rows.append(interval_row(dev_metric=sig.get("dev_metric", math.nan), constant=held.constant,
                                 lr_progress=sig.get("lr_progress", math.nan), step=step, budget=held.budget,
                                 learning_rate=held.peak_lr.get(run.run_id, math.nan),
                                 warmup_ratio=held.warmup.get(run.run_id, 0.0),
                                 dev_loss=sig.get("dev_loss", math.nan), classes=held.classes))
        finals.append(run.final)
    return keys, np.array(rows, dtype=float).reshape(-1, len(INTERVAL_COLUMNS)), np.array(finals, dtype=float)


def grouped_rows(sets: list[HeldSet], rows) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, groups)``: ``rows(held, fitting=True)`` of every held set stacked, each row grouped by its task."""
    X, y, groups = [], [], []
    for held in sets:
        _, x, f = rows(held, fitting=True)
        X.append(x)
        y.append(f)
        groups += [held.task] * len(f)
    return np.vstack(X), np.concatenate(y), groups


def fit_interval(sets: list[HeldSet], *, fitted=None, **settings) -> FinalInterval:
    """A :class:`FinalInterval` fitted on the held sets' rows, grouped by task (``fitted``: trees fitted before,
    :meth:`~earlyexit.scoring.FinalInterval.fit`)."""
    return FinalInterval(**settings).fit(*grouped_rows(sets, interval_rows), fitted=fitted)


def interval_trees(sets: list[HeldSet], **settings):
    """``(key, trees)``: the one tree fit :func:`fit_interval` makes on every row of ``sets``, to be shared with
    the fits of supersets of their tasks."""
    X, y, _ = grouped_rows(sets, interval_rows)
    return FinalInterval(**settings).fit_trees(X, y)


def gains(model: FinalInterval, held: HeldSet) -> dict[tuple[str, int], tuple[float, float]]:
    """``(run_id, step) -> (dev metric there, predicted gain to the final)`` for every reading of ``held`` the model
    can speak for (in range, features known); the gain in the metric's units, before any calibration."""
    keys, X, _ = interval_rows(held)
    if not keys:
        return {}
    gain = model.predict_gain(X)
    return {k: (float(X[i, 0]), float(g)) for i, (k, g) in enumerate(zip(keys, gain)) if math.isfinite(g)}


class IntervalJudge(RuleJudge):
    """``rule`` live, and a trial also pruned where its optimistic bound is below the ``keep``-th best completed final.

    The bound is the reading's dev metric plus its predicted gain (``gain``, from :func:`gains`) plus a margin:

    * ``calibration="tasks"``: the model's own margin (``margin``, calibrated on other tasks' sweeps at its
      coverage, in metric units per unit of headroom);
    * ``calibration="study"``: split-conformal on this study: the ``coverage`` quantile (finite-sample rank) of
      the completed trials' errors at the same step (their final minus their reading plus predicted gain); no
      bound until enough trials have completed for that rank to exist.
    """

    def __init__(self, held: HeldSet, rule: ResolutionRule, gain: dict, *, keep: int = 1,
                 calibration: str = "study", coverage: float = 0.9, margin: float = math.inf):
        super().__init__(held, rule)
        if calibration not in ("tasks", "study"):
            raise ValueError(f"calibration must be 'tasks' or 'study', but got {calibration!r}.")
        self.gain, self.keep, self.calibration, self.coverage, self.margin = gain, keep, calibration, coverage, margin
        self.finals: list[float] = []  # completed trials' finals
        self.errors: dict[int, list[float]] = {}  # step -> completed trials' errors there

    def at(self, index, run, step):
        if super().at(index, run, step):
            return True
        if len(self.finals) < self.keep or (run.run_id, step) not in self.gain:
            return False
        v, g = self.gain[(run.run_id, step)]
        if self.calibration == "tasks":
            return v + g + self.margin * max(1.0 - v, MIN_HEADROOM) < sorted(self.finals)[-self.keep]
        return bound_prunes(v, g, self.errors.get(step, ()), self.finals, keep=self.keep, coverage=self.coverage)

    def end(self, index, run, completed):
        if not (completed and math.isfinite(run.final)):
            return
        self.finals.append(run.final)
        for (rid, step), (v, g) in self.gain.items():
            if rid == run.run_id:
                self.errors.setdefault(step, []).append(run.final - v - g)
