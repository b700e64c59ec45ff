"""One rung's ridge regression as plain numbers (:class:`RungModel`), and the safety margin measured on tasks it
did not see (:func:`rung_gaps`, :func:`margin_from`): the fitted parts of a
:class:`~earlyexit.scoring.TransferScorer`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ._common import Params

OUT_OF_RANGE_MARGIN = 0.25
"""A feature is out of the scorer's range when it lies more than this fraction of its training range
(max - min over the trials it was fitted on) below the minimum or above the maximum."""


class RungModel(Params):
    """One rung's ridge, fitted and stored as numbers: impute the median, standardise, take the dot product.

    scikit-learn's estimator contract (``RungModel(alpha).fit(X, y, groups)`` returns the model; what it learns
    ends in ``_``); :meth:`to_dict` / :meth:`from_dict` are plain lists, so that a scorer file is JSON and loads
    under any scikit-learn version.

    Parameters:
        alpha: the ridge's penalty.

    Attributes (after :meth:`fit`):
        medians_, means_, scales_: per feature, from the training trials.
        coef_, intercept_: the ridge (on standardised features); the prediction is in metric units.
        low_, high_: each feature's training minimum and maximum (for the out-of-range check).
        trials_: how many trials it was fitted on.
    """

    LEARNT = ("medians", "means", "scales", "coef", "intercept", "low", "high", "trials")
    """What :meth:`fit` learns, by the names of the stored layout (each attribute is the name plus ``_``)."""

    PARAMS = ("alpha",)

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray, groups: Sequence | None = None) -> RungModel:
        """Fit on rows ``X`` (features) and finals ``y``. With ``groups`` (the study of each row), the slopes
        come from differences *within* a study only (features and finals centred per study): a study decides
        among its own trials, and a pooled fit would learn that one task's trials end higher than another's
        (which the features only partly say) as if it were a property of good trials. The intercept puts the
        prediction at the mean final of the training trials."""
        from sklearn.linear_model import Ridge

        X = np.clip(np.asarray(X, dtype=float), -1e12, 1e12)
        y = np.asarray(y, dtype=float)
        medians = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else 0.0 for c in X.T])
        filled = np.where(np.isfinite(X), X, medians)
        means, scales = filled.mean(axis=0), filled.std(axis=0)
        scales = np.where(scales > 0, scales, 1.0)
        Z = (filled - means) / scales
        Zc, yc = Z.copy(), y - y.mean()
        if groups is not None:
            groups = np.asarray(groups)
            for g in np.unique(groups):
                rows = groups == g
                Zc[rows] -= Z[rows].mean(axis=0)
                yc[rows] = y[rows] - y[rows].mean()
        coef = Ridge(alpha=self.alpha, fit_intercept=False).fit(Zc, yc).coef_
        self.medians_, self.means_, self.scales_, self.coef_ = (tuple(float(v) for v in a)
                                                                for a in (medians, means, scales, coef))
        self.intercept_ = float(y.mean())
        self.low_, self.high_ = tuple(float(v) for v in filled.min(axis=0)), tuple(float(v) for v in filled.max(axis=0))
        self.trials_ = int(len(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.clip(np.asarray(X, dtype=float), -1e12, 1e12)
        filled = np.where(np.isfinite(X), X, np.array(self.medians_))
        return ((filled - np.array(self.means_)) / np.array(self.scales_)) @ np.array(self.coef_) + self.intercept_

    def out_of_range(self, row: Sequence[float], margin: float = OUT_OF_RANGE_MARGIN) -> list[int]:
        """Indices of the features of ``row`` outside the training range widened by ``margin``."""
        out = []
        for i, (x, lo, hi) in enumerate(zip(row, self.low_, self.high_)):
            pad = margin * (hi - lo)
            if math.isfinite(x) and not lo - pad <= x <= hi + pad:
                out.append(i)
        return out

    def to_dict(self) -> dict:
        """What it learnt as plain numbers (the transfer scorer file's ``rungs`` entries; ``alpha`` is the
        scorer's)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k in self.LEARNT for v in [getattr(self, k + "_")]}

    @classmethod
    def from_dict(cls, data: Mapping, alpha: float = 1.0) -> RungModel:
        """A fitted model from :meth:`to_dict`'s layout."""
        model = cls(alpha)
        for k in cls.LEARNT:
            v = data[k]
            setattr(model, k + "_", tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v)
        return model


GAP_TOP = 3
"""The trials per study whose gaps :func:`rung_gaps` measures: those with the three highest finals."""


def rung_gaps(X: np.ndarray, y: np.ndarray, studies: np.ndarray, tasks: np.ndarray, keep_top: int,
              alpha: float, top: int = GAP_TOP) -> np.ndarray:
    """How far, in metric units, a study's best trials fall below its K-th best prediction when the model
    never saw their task: for each task, a ridge fitted (within studies) on the other tasks predicts that
    task's trials; in each of its studies, for each of the ``top`` trials with the highest finals, the gap
    ``max(0, K-th highest prediction - its prediction)``. A margin at a quantile of these gaps keeps that
    share of good trials a transferred scorer would have ranked out."""
    gaps = []
    for task in np.unique(tasks):
        train, test = tasks != task, tasks == task
        if train.sum() < 3:
            continue
        model = RungModel(alpha).fit(X[train], y[train], studies[train])
        predicted = model.predict(X[test])
        for study in np.unique(studies[test]):
            rows = studies[test] == study
            p, f = predicted[rows], y[test][rows]
            if len(p) <= keep_top:
                continue
            kth = np.sort(p)[::-1][keep_top - 1]
            gaps += [max(0.0, float(kth - p[i])) for i in np.argsort(-f)[:top]]
    return np.array(gaps, dtype=float)


def margin_from(gaps: np.ndarray, quantile: float) -> float:
    """The margin at ``quantile`` of :func:`rung_gaps`' gaps, in metric units (0 where there are none)."""
    return float(np.quantile(gaps, quantile)) if len(gaps) else 0.0
