"""A trial's final predicted from one reading, in units every task shares, with calibrated intervals.

:class:`FinalPredictor` follows scikit-learn's estimator contract (settings in ``__init__``, ``fit(X, y, groups)``,
fitted state in attributes ending in ``_``) and is plain data: :meth:`FinalPredictor.to_dict` and
:meth:`FinalPredictor.from_dict` write and read it as JSON (numbers and names only), so it loads under any
scikit-learn version and cannot run code.

Scale-free by construction. A reading is put in the task's own units before anything is compared:

- the dev metric as a share of the headroom over the constant classifier, ``h = (v - c) / (1 - c)`` (``c`` the
  majority class's accuracy, or 0 for MCC), so a 6-class task and a 2-class one, accuracy and MCC, share a scale;
- the step as a share of the trial's budget, the share of the learning-rate schedule spent, the share of the
  warmup done, so a 300-step study and a 2,000-step one share a clock;
- the dev loss over the loss of a uniform prediction (ln of the number of classes), and log10 of the peak
  learning rate.

No raw budget and no number of classes is read, so no task is out of range. The target is the trial's gain from
the reading to its final, in the same headroom units. The prediction is the median gain of the ``k`` nearest
readings of the sweeps it was fitted on (standardized features): a nearest-neighbour quantile, whose whole
state is those readings. Its intervals are split-conformal: each task is left out in turn, the readings of the
others predict its gains, and the errors (true minus predicted gain) are kept, sorted, so that a bound at any
coverage is read off them without a refit. A study calibrates its own intervals once it has completed enough
trials (:mod:`earlyexit.pruning._lookahead`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._common import Params

from ..names import PROBE_FEATURE_NAMES

from ..protocol import FEATURES, MIN_HEADROOM, headroom, lookahead_row  # noqa: F401  (what a reading is)

FORMAT = "earlyexit.final_predictor/2"
SHARE_BINS = (0.1, 0.25, 0.5)
"""Where the errors are split by the reading's share of the budget: before 10%, 10-25%, 25-50%, after 50%."""


def conformal(scores: np.ndarray, coverage: float, *, upper: bool = True) -> float:
    """The ``coverage`` quantile of ``scores`` at split conformal's finite-sample rank (``upper``), or the
    ``1 - coverage`` one from below; +-inf where there are too few scores for that rank."""
    ordered = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = len(ordered)
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        return math.inf if upper else -math.inf
    return float(ordered[rank - 1]) if upper else float(ordered[n - rank])


class FinalPredictor(Params):
    """A trial's gain to its final, in headroom units, from one reading (see the module docstring).

    Parameters:
        k: neighbours the median is taken over.
        probes: probe features (:data:`~earlyexit.names.PROBE_FEATURE_NAMES`) read after the
            :data:`FEATURES`, in this order; none by default.
        metric_weight: how much the dev metric's column counts in the distance, against 1 for every other
            standardized column (folded into ``scale_``, so a fitted predictor's file needs nothing more).

    Attributes (after ``fit``):
        X_: the fitted readings (standardized), y_: their gains, center_/scale_: the standardization,
        scores_: the leave-one-task-out errors (true minus predicted gain), sorted; groups_: the tasks.
    """

    PARAMS = ("k", "probes", "metric_weight")

    def __init__(self, k: int = 40, probes: tuple[str, ...] = (), metric_weight: float = 1.0):
        self.k = k
        self.probes = probes
        self.metric_weight = metric_weight

    @property
    def features(self) -> tuple[str, ...]:
        """What one row is: the :data:`FEATURES`, then the probe features."""
        return tuple(FEATURES) + tuple(self.probes)

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        names = self.features
        if X.ndim != 2 or X.shape[1] != len(names):
            raise ValueError(f"FinalPredictor expects rows of {len(names)} columns {names}, but got shape "
                             f"{X.shape}.")
        return X

    def fit(self, X, y, groups) -> FinalPredictor:
        """Fit on readings ``X`` (:data:`FEATURES`), their trials' final headroom shares ``y``, tasks ``groups``."""
        X, y, groups = self._check(X), np.asarray(y, dtype=float), np.asarray(groups)
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ValueError(f"k must be a positive integer, but got {self.k!r}.")
        unknown = [n for n in self.probes if n not in PROBE_FEATURE_NAMES]
        if unknown or isinstance(self.probes, str):
            raise ValueError(f"probes must be a tuple of probe features of {list(PROBE_FEATURE_NAMES)}, but got "
                             f"{self.probes!r}.")
        if len(y) != len(X) or len(groups) != len(X):
            raise ValueError(f"X, y and groups must have one entry per row, but got {len(X)}, {len(y)}, {len(groups)}.")
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        X, gain, groups = X[ok], y[ok] - X[ok, 0], groups[ok]
        if len(X) < self.k:
            raise ValueError(f"FinalPredictor needs at least k = {self.k} complete readings, but got {len(X)}.")
        if not (isinstance(self.metric_weight, (int, float)) and 0 < self.metric_weight < math.inf):
            raise ValueError(f"metric_weight must be a positive number, but got {self.metric_weight!r}.")
        self.center_, self.scale_ = standardization(X, self.metric_weight)
        Z = (X - self.center_) / self.scale_
        tasks = sorted(set(groups.tolist()))
        scores, shares = [], []
        for t in tasks if len(tasks) >= 2 else []:
            held = groups == t
            if (~held).sum() >= self.k:
                scores.append(gain[held] - self._median(Z[held], Z[~held], gain[~held]))
                shares.append(X[held, 1])
        order = np.argsort(np.concatenate(scores)) if scores else np.array([], dtype=int)
        self.scores_ = np.concatenate(scores)[order] if scores else np.array([])
        self.score_shares_ = np.concatenate(shares)[order] if scores else np.array([])
        self.X_, self.y_, self.groups_ = Z, gain, tuple(tasks)
        return self

    def _median(self, Q: np.ndarray, Z: np.ndarray, gain: np.ndarray) -> np.ndarray:
        return row_medians(gain[nearest(Q, Z, self.k)[1]])

    def predict(self, X) -> np.ndarray:
        """Each reading's predicted gain to its final, in headroom units (NaN where a feature is unknown)."""
        if not hasattr(self, "X_"):
            raise RuntimeError("FinalPredictor is not fitted: call fit(X, y, groups) first.")
        X = self._check(X)
        out = np.full(len(X), np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            out[ok] = self._median((X[ok] - self.center_) / self.scale_, self.X_, self.y_)
        return out

    def margins(self, coverage: float, share: float | None = None) -> tuple[float, float]:
        """``(lower, upper)``: what to add to a predicted gain for a pessimistic and an optimistic final at
        ``coverage`` each side, from the other tasks' errors (+-inf with too few); with ``share`` (the reading's
        step as a share of its budget), from the errors of readings in the same part of training only
        (:data:`SHARE_BINS`): a prediction early in training is less sure than one late."""
        scores = self.scores_
        if share is not None and len(self.score_shares_):
            edges = np.asarray(SHARE_BINS)
            same = np.searchsorted(edges, self.score_shares_, side="right") == np.searchsorted(edges, share,
                                                                                                side="right")
            scores = scores[same]
        return conformal(scores, coverage, upper=False), conformal(scores, coverage)

    # -- inside a study: its completed trials join the neighbours --------------------------------------
    def prior_neighbours(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each reading standardized, with the squared distances and gains of its ``k`` nearest fitted readings:
        ``(Z, distances, gains)`` (rows of NaN where a feature is unknown). What :func:`study_medians` reads."""
        if not hasattr(self, "X_"):
            raise RuntimeError("FinalPredictor is not fitted: call fit(X, y, groups) first.")
        X = self._check(X)
        k = min(self.k, len(self.X_))
        Z = (X - self.center_) / self.scale_
        d, g = np.full((len(X), k), np.nan), np.full((len(X), k), np.nan)
        ok = np.isfinite(X).all(axis=1)
        d[ok], index = nearest(Z[ok], self.X_, k)
        g[ok] = self.y_[index]
        return Z, d, g

    def predict_in_study(self, X, study_X, study_gain, shrink: float) -> np.ndarray:
        """:meth:`predict` with the study's own completed readings (``study_X``, their true gains ``study_gain``)
        among the neighbours, their distances shrunk by ``shrink`` (< 1: the study's own trials count as nearer).
        Rows of ``study_X`` are taken in the order given (a tie at the k-th neighbour is broken by position)."""
        Z, d, g = self.prior_neighbours(X)
        Zs = (self._check(study_X) - self.center_) / self.scale_ if len(study_X) else \
            np.empty((0, len(self.features)))
        return study_medians(d, g, study_distances(Z, Zs, shrink), np.asarray(study_gain, dtype=float), self.k)

    @staticmethod
    def study_distances(Z: np.ndarray, Zs: np.ndarray, shrink: float) -> np.ndarray:
        """:func:`study_distances` (for callers that hold standardized readings)."""
        return study_distances(Z, Zs, shrink)

    def study_medians(self, prior_d, prior_g, study_d, study_gain) -> np.ndarray:
        """:func:`study_medians` at this predictor's ``k`` (for callers that computed the distances)."""
        return study_medians(prior_d, prior_g, study_d, study_gain, self.k)

    def leave_trial_out_errors(self, prior_d, prior_g, study_d, study_gain, true, row_trials, pool_trials
                               ) -> np.ndarray:
        """True minus predicted gain of each query (``true``: its true gain), predicted with the study's readings
        but those of its own trial (``row_trials``: each query's trial; ``pool_trials``: each study reading's):
        the study's conformal errors, NaN where a query cannot be predicted. The one place the leave-own-trial-out
        rule is written: the pruner and the replay both call it."""
        own = np.asarray(row_trials)[:, None] == np.asarray(pool_trials)[None, :]
        masked = np.where(own, np.inf, study_d)
        return np.asarray(true, dtype=float) - self.study_medians(prior_d, prior_g, masked, study_gain)

    # -- plain data ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        if not hasattr(self, "X_"):
            raise RuntimeError("FinalPredictor is not fitted.")
        return {"format": FORMAT, "features": list(self.features),
                "params": {"k": self.k, "metric_weight": self.metric_weight},
                "center": self.center_.tolist(), "scale": self.scale_.tolist(),
                "X": np.round(self.X_, 6).tolist(), "y": np.round(self.y_, 6).tolist(),
                "scores": np.round(self.scores_, 6).tolist(), "score_shares": np.round(self.score_shares_, 6).tolist(),
                "groups": list(self.groups_)}

    @classmethod
    def from_dict(cls, d: dict) -> FinalPredictor:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a final predictor of format {FORMAT!r}")
        names = list(d.get("features", []))
        if names[:len(FEATURES)] != list(FEATURES) or not set(names[len(FEATURES):]) <= set(PROBE_FEATURE_NAMES):
            raise ValueError(f"its features {d.get('features')} are not {list(FEATURES)} followed by probe features "
                             f"of {list(PROBE_FEATURE_NAMES)}")
        model = cls(k=int(d["params"]["k"]), probes=tuple(names[len(FEATURES):]),
                    metric_weight=float(d["params"].get("metric_weight", 1.0)))
        model.center_, model.scale_ = np.asarray(d["center"], float), np.asarray(d["scale"], float)
        model.X_, model.y_ = np.asarray(d["X"], float).reshape(-1, len(names)), np.asarray(d["y"], float)
        model.scores_, model.groups_ = np.asarray(d["scores"], float), tuple(d["groups"])
        model.score_shares_ = np.asarray(d["score_shares"], float)
        if len(model.X_) != len(model.y_) or len(model.center_) != len(names) or \
                len(model.scores_) != len(model.score_shares_):
            raise ValueError("its arrays do not agree in length")
        return model


def standardization(X: np.ndarray, metric_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` of the readings ``X``: each column's mean and standard deviation (1 where it is
    constant), the dev metric's scale divided by ``metric_weight`` so that it counts that many times in a
    distance. The one place the predictor's distance is defined."""
    center = X.mean(axis=0)
    scale = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
    scale[0] /= metric_weight
    return center, scale


def squared_distances(Q: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of ``Q`` to each row of ``Z``, summed one column at a time in
    column order: the same numbers as ``((Q[:, None] - Z[None]) ** 2).sum(axis=2)``, bit for bit, without the
    three-dimensional temporary (a fourth of the time on the look-ahead's six columns)."""
    dist = np.zeros((len(Q), len(Z)))
    for j in range(Q.shape[1]):
        dist += (Q[:, None, j] - Z[None, :, j]) ** 2
    return dist


def nearest(Q: np.ndarray, Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(squared distances, indices)`` of each query's ``k`` nearest rows of ``Z`` (fewer where ``Z`` has fewer),
    unordered; computed 512 queries at a time, so that memory stays bounded on a large fit."""
    k = min(k, len(Z))
    d, index = np.empty((len(Q), k)), np.empty((len(Q), k), dtype=np.intp)
    for start in range(0, len(Q), 512):
        dist = squared_distances(Q[start:start + 512], Z)
        near = np.argpartition(dist, k - 1, axis=1)[:, :k]
        d[start:start + 512], index[start:start + 512] = np.take_along_axis(dist, near, axis=1), near
    return d, index


def study_distances(Z: np.ndarray, Zs: np.ndarray, shrink: float) -> np.ndarray:
    """Squared distances from standardized readings ``Z`` to the study's ``Zs``, shrunk: the distance times
    ``shrink`` (so the squared distance times its square). The one place the refit's convention is written."""
    return squared_distances(Z, Zs) * shrink ** 2


def study_medians(prior_d: np.ndarray, prior_g: np.ndarray, study_d: np.ndarray, study_gain: np.ndarray,
                  k: int) -> np.ndarray:
    """Each query's median gain over its ``k`` nearest among its prior neighbours (``prior_d``, ``prior_g``: one row
    per query) and the study's readings (``study_d``: the query's squared distance to each, already shrunk;
    ``study_gain``: their true gains). NaN for a query whose prior row is NaN (a feature unknown)."""
    n, kp = prior_d.shape
    d = np.concatenate([prior_d, study_d], axis=1) if study_d.shape[1] else prior_d
    out = np.full(n, np.nan)
    ok = np.isfinite(prior_d).all(axis=1)
    if ok.any():
        kk = min(k, d.shape[1])  # the same arrays give the same neighbours (introselect is deterministic)
        near = np.argpartition(d[ok], kk - 1, axis=1)[:, :kk]
        # Each neighbour's gain, read where it lives (column < kp: a prior neighbour of that query; else a
        # study reading) instead of from a concatenated copy of every gain.
        study_gain = np.asarray(study_gain, dtype=float)
        prior = prior_g[np.flatnonzero(ok)[:, None], np.minimum(near, kp - 1)]
        out[ok] = row_medians(np.where(near < kp, prior, study_gain[np.maximum(near - kp, 0)])
                              if len(study_gain) else prior)
    return out


def row_medians(v: np.ndarray) -> np.ndarray:
    """``np.median(v, axis=1)``, bit for bit (the mean of the two middle values of an even row; NaN where a row
    holds one), at a fraction of its cost on the look-ahead's short rows."""
    s = np.sort(v, axis=1)
    m = s.shape[1] // 2
    middle = s[:, m] if s.shape[1] % 2 else (s[:, m - 1] + s[:, m]) / 2
    return np.where(np.isnan(v).any(axis=1), np.nan, middle)


PREDICTOR_FILE = Path(__file__).resolve().parent.parent / "assets" / "final_predictor.json"


def save_predictor(model: FinalPredictor, path: str | Path) -> None:
    import json

    Path(path).write_text(json.dumps(model.to_dict(), separators=(",", ":")) + "\n")


def load_predictor(path: str | Path = PREDICTOR_FILE) -> FinalPredictor:
    """Read a predictor written by :func:`save_predictor` (JSON: it cannot run code); a bad file is a clear error."""
    import json

    from ._common import ScorerFileError

    remedy = "`earlyexit fit SWEEPS --predictor`"
    try:
        return FinalPredictor.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ScorerFileError(f"{path}: no such final predictor file; make one with {remedy}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ScorerFileError(f"{path}: not a final predictor file ({exc}); make one with {remedy}.") from None
