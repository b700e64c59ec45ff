"""Decisions the dev set can resolve: a trial is outranked only by leads larger than the dev set's noise.

A dev metric measured on ``n`` examples has a sampling error: on a 500-example dev set one point of
accuracy is 5 sentences. :func:`lead_resolved` says whether trial A's lead over trial B at a rung is larger
than ``z`` standard errors of the difference, with the standard error from

* the per-example records where both trials have them (``evidence="paired"``): for accuracy, the paired
  difference of the two 0/1 correctness vectors (McNemar's statistic in standard-error form); for other
  metrics, a paired bootstrap over examples (both trials' predictions resampled together);
* the values and the dev size otherwise (``evidence="approximate"``, the sweeps logged before per-example
  records): binomial ``sqrt(p(1-p)/n)`` for accuracy and F1-type metrics, ``sqrt((1-r^2)/(n-2))`` for MCC
  (a correlation coefficient), combined as if the trials were independent.

:class:`ResolutionRule` is the rung rule built on it, with each trial judged at its own pace: a trial
whose learning rate is still warming up at a rung passes that rung unjudged. Pure functions of numbers and
arrays (numpy only): the Optuna pruner (:class:`ResolutionPruner`) and the replay call the same code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..protocol import Reading, warming_up  # noqa: F401  (warming_up: the rule's pace, named here too)

EVIDENCE = ("paired", "approximate")
BOOTSTRAP_DRAWS = 200


def approximate_se(value: float, n: int, metric: str = "accuracy") -> float:
    """Standard error of one dev metric ``value`` measured on ``n`` examples, from the value and size alone."""
    if n < 3 or not math.isfinite(value):
        return math.inf
    if metric == "mcc":
        return math.sqrt(max(1.0 - value * value, 0.0) / (n - 2))
    p = min(max(value, 0.0), 1.0)
    return math.sqrt(max(p * (1.0 - p), 0.25 / n) / n)  # never 0: a value of exactly 0 or 1 still has noise


def paired_se(a_predictions: np.ndarray, b_predictions: np.ndarray, labels: np.ndarray,
              metric: str = "accuracy", *, seed: int = 0) -> float:
    """Standard error of ``metric(a) - metric(b)`` on the same dev examples, from their predictions."""
    n = len(labels)
    if n < 3:
        return math.inf
    if metric == "accuracy":
        d = (a_predictions == labels).astype(float) - (b_predictions == labels).astype(float)
        return float(max(d.std(ddof=1), 1.0 / n) / math.sqrt(n))
    from ..metrics import metric_value

    idx = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_DRAWS, n))
    diffs = [metric_value(metric, labels[i], a_predictions[i]) - metric_value(metric, labels[i], b_predictions[i])
             for i in idx]
    return float(max(np.std(diffs, ddof=1), 1.0 / n))


def lead_resolved(leader: Reading, trial: Reading, *, n: int, z: float, metric: str = "accuracy",
                  labels: np.ndarray | None = None) -> tuple[bool, str]:
    """Whether ``leader``'s dev metric exceeds ``trial``'s by more than ``z`` standard errors of the difference.

    Returns ``(resolved, evidence)``, ``evidence`` one of :data:`EVIDENCE`: which standard error was used.
    A gap of zero (two trials at the constant classifier) is never resolved.
    """
    gap = leader.value - trial.value
    if not (math.isfinite(gap) and gap > 0):
        return False, "paired" if _paired(leader, trial, labels) else "approximate"
    if _paired(leader, trial, labels):
        return gap > z * paired_se(leader.predictions, trial.predictions, labels, metric), "paired"
    se = math.hypot(approximate_se(leader.value, n, metric), approximate_se(trial.value, n, metric))
    return gap > z * se, "approximate"


def _paired(a: Reading, b: Reading, labels) -> bool:
    return labels is not None and a.predictions is not None and b.predictions is not None


@dataclass(frozen=True)
class ResolutionRule:
    """Successive halving that never bets on noise, each trial judged at its own pace.

    At each rung (a fraction of the training budget) a trial is pruned when

    * it is past its warmup there (``pace``: a trial whose learning rate has not peaked passes unjudged; with
      ``progress_match`` it is judged instead against each other trial's reading at that trial's latest rung
      where it had spent no more of its learning-rate schedule than this trial has: comparable progress), and
    * at least ``keep`` other trials at that rung lead it by more than ``z`` standard errors of the
      difference (:func:`lead_resolved`), and
    * with ``eta`` set, it is also outside the top ``ceil(m / eta)`` of the ``m`` trials measured at that
      rung (plain successive halving's cut, guarded by resolution); ``eta=None`` prunes every resolved loser.

    Attributes:
        rungs: decision points as fractions of the training budget, increasing, in (0, 1).
        keep: K, how many resolved leaders a trial must have before it is pruned (>= 1).
        z: the confidence, in standard errors of the difference (>= 0).
        eta: the reduction factor (> 1), or None.
        pace: judge a trial only past its warmup.
        progress_match: judge a warming-up trial at comparable progress instead of passing it.
    """

    rungs: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    keep: int = 1
    z: float = 1.0
    eta: float | None = None
    pace: bool = True
    progress_match: bool = False

    def __post_init__(self):
        rungs = tuple(float(r) for r in self.rungs)
        if not rungs or any(not 0 < r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
            raise ValueError(f"rungs must be increasing fractions of the budget in (0, 1), but got {self.rungs}.")
        if self.keep < 1:
            raise ValueError(f"keep must be at least 1, but got {self.keep}.")
        if not self.z >= 0:
            raise ValueError(f"z must be non-negative, but got {self.z}.")
        if self.eta is not None and not self.eta > 1:
            raise ValueError(f"eta must be greater than 1 (or None), but got {self.eta}.")
        object.__setattr__(self, "rungs", rungs)

    @property
    def label(self) -> str:
        rungs = "/".join(f"{r:.0%}" for r in self.rungs)
        return (f"rungs {rungs}, keep {self.keep}, z {self.z:g}" + (f", eta {self.eta:g}" if self.eta else "")
                + ("" if self.pace else ", no pace") + (", progress-matched" if self.progress_match else ""))

    def as_dict(self) -> dict:
        return {"rungs": list(self.rungs), "keep": self.keep, "z": self.z, "eta": self.eta, "pace": self.pace,
                "progress_match": self.progress_match}

    @classmethod
    def from_dict(cls, d: dict) -> ResolutionRule:
        return cls(tuple(d["rungs"]), int(d["keep"]), float(d["z"]), d.get("eta"), bool(d.get("pace", True)),
                   bool(d.get("progress_match", False)))

    def rung_steps(self, budget: int, logged_steps: Sequence[int] | None = None) -> tuple[int, ...]:
        """The rungs in steps of a ``budget``-step run: the first of ``logged_steps`` at or past each fraction."""
        out = []
        for r in self.rungs:
            target = r * budget
            if logged_steps is None:
                step = max(1, int(math.ceil(target)))
            else:
                later = [s for s in sorted(logged_steps) if s >= target and 0 < s < budget]
                if not later:
                    continue
                step = later[0]
            if step < budget and step not in out:
                out.append(step)
        return tuple(out)

    def prune(self, trial: Reading, others: Sequence[Reading], *, n: int, metric: str = "accuracy",
              labels: np.ndarray | None = None,
              histories: Sequence[Sequence[Reading]] | None = None) -> tuple[bool, str]:
        """Whether ``trial`` is pruned at a rung where ``others`` were measured; and the evidence used.

        ``n`` is the dev size. ``histories`` (with ``progress_match``): every other trial's readings at the
        rungs it has reached, in step order. Returns ``(prune, evidence)``; ``evidence`` says whether the
        decisive comparisons were paired or approximate (``""`` where no comparison was made).
        """
        if self.pace and trial.warming_up:
            if not (self.progress_match and histories is not None and math.isfinite(trial.progress)):
                return False, ""
            others = [m for h in histories if (m := matched(h, trial.progress)) is not None]
        if self.eta is not None:
            m = len(others) + 1
            better = sum(1 for o in others if o.value > trial.value)
            if better < math.ceil(m / self.eta):
                return False, ""
        leaders, evidence = 0, ""
        for other in sorted(others, key=lambda o: -o.value if math.isfinite(o.value) else math.inf):
            if not other.value > trial.value:
                break
            resolved, evidence = lead_resolved(other, trial, n=n, z=self.z, metric=metric, labels=labels)
            leaders += resolved
            if leaders >= self.keep:
                return True, evidence
        return False, evidence


def matched(history: Sequence[Reading], progress: float) -> Reading | None:
    """The latest reading of ``history`` (one trial's, in step order) taken at no more than ``progress``."""
    found = None
    for r in history:
        if math.isfinite(r.progress) and r.progress <= progress + 1e-12:
            found = r
    return found
