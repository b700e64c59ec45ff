"""A scorer built to carry over to a task it never saw: scale-free features at decision rungs.

The scorer fitted by :func:`earlyexit.scoring.fit_scorer` reads raw probe values; a probe's level
differs from task to task (the loss of a 6-class task starts at ln 6, not ln 2), and such a model learns
the levels of the tasks it saw. :class:`TransferScorer` reads, at each decision rung, only quantities
whose meaning does not depend on the task:

- ``dev`` (one dev evaluation): the dev metric, its lead over a uniform guess (``1 / classes``), and the
  dev loss over the uniform loss ``ln(classes)``;
- ``cheap`` (one gradient pass, a SAM step and a line search): the probe loss over ``ln(classes)``,
  log10 of the gradient norm, log10 of the gradient noise scale (variance over squared norm), SAM
  sharpness over the loss, and log10 of the learning rate times critical sharpness (the step against
  the stability limit);
- ``hessian`` (Lanczos and Hutchinson): log10 of the learning rate times the top eigenvalue, log10 of
  the trace;
- ``fisher`` (one gradient pass with sampled labels): log10 of the learning rate times the Fisher trace.

Each rung has its own ridge regression (median imputation, standardisation, ridge; :class:`RungModel`,
stored as numbers in a JSON file) from those features to the final metric, so the score is a predicted
final metric, on the metric's scale. The decision rule that
goes with it (rungs, keep top K, the learning-rate progress below which a trial is not judged) is part
of the scorer (:attr:`TransferScorer.rule`): it is chosen with the features, by leave-one-task-out
over the sweeps it learns from (``earlyexit.replay.select_transfer``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..names import DEV_METRICS, Signature

GROUPS: dict[str, tuple[str, ...]] = {
    "dev": ("dev_metric", "dev_loss"),
    "cheap": ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "critical_sharpness"),
    "hessian": ("hessian_top_eigenvalue", "hessian_trace"),
    "fisher": ("fisher_trace",),
}
"""Feature groups -> the measured names they read at a rung (context names are free and always read)."""


TRANSFER_FORMAT = 1
"""Version of :meth:`TransferScorer.to_dict`'s layout."""


def feature_names(groups: Sequence[str]) -> list[str]:
    """The names of :func:`transfer_features`' columns, in order."""
    names = {"dev": ["dev_metric", "dev_metric_over_uniform_guess", "dev_loss_over_uniform_loss"],
             "cheap": ["loss_over_uniform_loss", "log10_gradient_norm", "log10_gradient_noise_scale",
                       "sam_sharpness_over_loss", "log10_lr_x_critical_sharpness"],
             "hessian": ["log10_lr_x_top_eigenvalue", "log10_hessian_trace"],
             "fisher": ["log10_lr_x_fisher_trace"]}
    return [n for g in GROUPS if g in groups for n in names[g]]


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 and math.isfinite(x) else math.nan


def transfer_features(values: Mapping[str, float], groups: Sequence[str]) -> list[float]:
    """The scale-free features of one trial at one rung (``values``: its signature at the step)."""
    get = lambda k: float(values.get(k, math.nan)) if values.get(k) is not None else math.nan  # noqa: E731
    uniform = get("uniform_loss")
    lr = get("learning_rate")
    row = []
    if "dev" in groups:
        dev = get("dev_metric")
        row += [dev, dev - math.exp(-uniform), get("dev_loss") / uniform]
    if "cheap" in groups:
        loss, g, v = get("loss"), get("gradient_norm"), get("gradient_variance")
        row += [loss / uniform, _log10(g), _log10(v / g**2) if g > 0 else math.nan,
                get("sam_sharpness") / loss if loss > 0 else math.nan, _log10(lr * get("critical_sharpness"))]
    if "hessian" in groups:
        row += [_log10(lr * get("hessian_top_eigenvalue")), _log10(get("hessian_trace"))]
    if "fisher" in groups:
        row += [_log10(lr * get("fisher_trace"))]
    return row


@dataclass(frozen=True)
class Rule:
    """The decision rule a transfer scorer was chosen with.

    Attributes:
        rungs: decision steps, ascending; a trial kept at one is scored again at the next.
        keep_top: keep a trial unless this many others score higher at the rung.
        min_lr_progress: do not judge a trial that has spent less than this fraction (0..1) of its
            learning-rate schedule.
    """

    rungs: tuple[int, ...]
    keep_top: int = 1
    min_lr_progress: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "rungs", tuple(int(r) for r in self.rungs))
        if not self.rungs or list(self.rungs) != sorted(set(self.rungs)) or self.rungs[0] < 1:
            raise ValueError(f"rungs must be increasing positive steps, but got {self.rungs}.")
        if self.keep_top < 1:
            raise ValueError(f"keep_top must be at least 1, but got {self.keep_top}.")
        if not 0 <= self.min_lr_progress <= 1:
            raise ValueError(f"min_lr_progress must be in [0, 1], but got {self.min_lr_progress}.")

    @property
    def label(self) -> str:
        return (f"rungs {'/'.join(map(str, self.rungs))}, top {self.keep_top}, "
                f"judged from {self.min_lr_progress:.0%} of the learning rate")


OUT_OF_RANGE_MARGIN = 0.25
"""A feature is out of the scorer's range when it lies more than this fraction of its training range
(max - min over the trials it was fitted on) below the minimum or above the maximum."""


@dataclass(frozen=True)
class RungModel:
    """One rung's fitted ridge, as numbers: impute the median, standardise, take the dot product.

    Stored as plain lists so that a scorer file is JSON and loads under any scikit-learn version.

    Attributes:
        medians, means, scales: per feature, from the training trials.
        coef, intercept: the ridge (on standardised features); the prediction is in metric units.
        low, high: each feature's training minimum and maximum (for the out-of-range check).
        trials: how many trials it was fitted on.
    """

    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    low: tuple[float, ...]
    high: tuple[float, ...]
    trials: int

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, alpha: float) -> RungModel:
        from sklearn.linear_model import Ridge

        X = np.clip(np.asarray(X, dtype=float), -1e12, 1e12)
        medians = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else 0.0 for c in X.T])
        filled = np.where(np.isfinite(X), X, medians)
        means, scales = filled.mean(axis=0), filled.std(axis=0)
        scales = np.where(scales > 0, scales, 1.0)
        ridge = Ridge(alpha=alpha).fit((filled - means) / scales, y)
        return cls(*(tuple(float(v) for v in a) for a in (medians, means, scales, ridge.coef_)),
                   float(ridge.intercept_), tuple(float(v) for v in filled.min(axis=0)),
                   tuple(float(v) for v in filled.max(axis=0)), int(len(y)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.clip(np.asarray(X, dtype=float), -1e12, 1e12)
        filled = np.where(np.isfinite(X), X, np.array(self.medians))
        return ((filled - np.array(self.means)) / np.array(self.scales)) @ np.array(self.coef) + self.intercept

    def out_of_range(self, row: Sequence[float], margin: float = OUT_OF_RANGE_MARGIN) -> list[int]:
        """Indices of the features of ``row`` outside the training range widened by ``margin``."""
        out = []
        for i, (x, lo, hi) in enumerate(zip(row, self.low, self.high)):
            pad = margin * (hi - lo)
            if math.isfinite(x) and not lo - pad <= x <= hi + pad:
                out.append(i)
        return out


@dataclass
class TransferScorer:
    """Predict the final metric at each rung from scale-free features (see the module docstring).

    Parameters:
        groups: feature groups to read, a subset of :data:`GROUPS` (``("dev",)``: the dev evaluation).
        rule: the decision rule (rungs are the steps an estimator is fitted for).
        alpha: ridge penalty.

    ``fit(signatures, finals)`` fits one estimator per rung on the trials that reached it;
    ``score(signature, step)`` predicts from the features at ``step`` with the estimator of the largest
    rung at or below it (the first rung's before it); ``reads(steps)`` says what that measures.
    """

    groups: tuple[str, ...]
    rule: Rule
    alpha: float = 10.0
    estimators_: dict[int, RungModel] = field(default_factory=dict, repr=False)
    card: dict = field(default_factory=dict, repr=False)
    versions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.groups = tuple(self.groups)
        bad = [g for g in self.groups if g not in GROUPS]
        if bad or not self.groups:
            raise ValueError(f"groups must be a non-empty subset of {tuple(GROUPS)}, but got {self.groups}.")

    @property
    def names(self) -> tuple[str, ...]:
        """The measured names the features read (probes and dev metrics)."""
        return tuple(n for g in self.groups for n in GROUPS[g])

    def fit(self, signatures: Sequence[Signature], finals: Sequence[float]) -> TransferScorer:
        """Fit one ridge per rung on the trials with a finite final that reached the rung."""
        y_all = np.asarray(finals, dtype=float)
        if len(signatures) != len(y_all):
            raise ValueError(f"{len(signatures)} signatures but {len(y_all)} finals.")
        self.estimators_ = {}
        for rung in self.rule.rungs:
            rows = [(transfer_features(sig[rung], self.groups), y) for sig, y in zip(signatures, y_all)
                    if rung in sig and math.isfinite(y)]
            if len(rows) < 3:
                raise ValueError(f"rung {rung}: {len(rows)} trials reached it with a finite final; need 3.")
            X = np.array([r for r, _ in rows], dtype=float)
            self.estimators_[rung] = RungModel.fit(X, np.array([y for _, y in rows]), self.alpha)
        from ._fit import _versions

        self.versions = _versions()
        return self

    def rung_for(self, step: int) -> int:
        """The rung whose estimator scores at ``step``: the largest at or below it, else the first (the
        features are scale-free, so a study whose decision steps are not the rungs is still scored)."""
        if not self.estimators_:
            raise ValueError("the transfer scorer is not fitted; call fit() first.")
        below = [r for r in self.estimators_ if r <= step]
        return max(below) if below else min(self.estimators_)

    def score(self, signature: Signature, step: int) -> float:
        """The predicted final metric from the features at ``step`` (NaN if nothing was measured there)."""
        if step not in signature:
            return math.nan
        X = np.array([transfer_features(signature[step], self.groups)], dtype=float)
        return float(self.estimators_[self.rung_for(step)].predict(X)[0])

    def out_of_range(self, signature: Signature, step: int) -> list[str]:
        """The features at ``step`` outside what the scorer was fitted on (see :data:`OUT_OF_RANGE_MARGIN`)."""
        if step not in signature:
            return []
        row = transfer_features(signature[step], self.groups)
        names = feature_names(self.groups)
        return [names[i] for i in self.estimators_[self.rung_for(step)].out_of_range(row)]

    def to_dict(self) -> dict:
        """The whole scorer as JSON-able data (see :func:`TransferScorer.from_dict`)."""
        return {"kind": "transfer", "format": TRANSFER_FORMAT, "groups": list(self.groups),
                "rule": {"rungs": list(self.rule.rungs), "keep_top": self.rule.keep_top,
                         "min_lr_progress": self.rule.min_lr_progress},
                "alpha": self.alpha, "features": feature_names(self.groups),
                "rungs": {str(r): m.__dict__ for r, m in sorted(self.estimators_.items())},
                "card": self.card, "versions": self.versions}

    @classmethod
    def from_dict(cls, data: Mapping) -> TransferScorer:
        if data.get("kind") != "transfer" or data.get("format") != TRANSFER_FORMAT:
            raise ValueError(f"not a transfer scorer of format {TRANSFER_FORMAT}: kind {data.get('kind')!r}, "
                             f"format {data.get('format')!r}.")
        scorer = cls(tuple(data["groups"]), Rule(**data["rule"]), float(data["alpha"]))
        scorer.estimators_ = {int(r): RungModel(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in m.items()})
                              for r, m in data["rungs"].items()}
        scorer.card, scorer.versions = dict(data.get("card", {})), dict(data.get("versions", {}))
        return scorer

    def reads(self, decision_steps: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """Each decision step reads the groups' names there (the context names are free)."""
        return {int(d): self.names for d in sorted(set(decision_steps))}

    def check_probes(self, measured: Sequence[str], where: str = "the study") -> None:
        from ._fit import ScorerFileError

        missing = [n for n in self.names if n not in measured and n not in DEV_METRICS]
        if missing:
            raise ScorerFileError(f"the scorer needs probes {missing}, which {where} does not measure; "
                                  f"add them to probes.names or fit a scorer on what you measure.")
