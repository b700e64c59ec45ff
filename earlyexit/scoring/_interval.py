"""A trial's final dev metric predicted from one rung reading, with an optimistic bound calibrated on held-out tasks.

:class:`FinalInterval` follows scikit-learn's estimator contract (``fit(X, y, groups)`` then
``predict_upper(X)``; settings in ``__init__``, fitted state in attributes ending in ``_``). One row of ``X`` is
one trial at one rung, its columns :data:`INTERVAL_FEATURES` then :data:`RANGE_ONLY` (what
:func:`interval_row` builds); ``y`` is that trial's final dev metric; ``groups`` names the task of each row.

The model predicts the trial's remaining gain as a share of its headroom, ``(final - v) / (1 - v)`` (``v`` the
dev metric at the rung; metrics are at most 1), at a quantile (``quantile``) with gradient-boosted trees. The
bound is then widened by split-conformal calibration across tasks: each task is left out in turn, the model
fitted on the others scores it (score = true share minus predicted share), and the ``coverage`` quantile of
those held-out scores is added to every prediction. So a bound holds on a task none of the fits saw about as
often as ``coverage`` says, as far as the tasks it was calibrated on are like the new one.

Out of range, it says nothing: where a row's features (or the task's number of classes and budget,
:data:`RANGE_ONLY`) fall outside what the fit saw by more than ``range_margin`` of the seen range, the bound is
``+inf`` (no trial can be pruned by it). A task with more classes than any seen, or a budget far from every
sweep's, is a new regime rather than a point to extrapolate to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import Params

INTERVAL_FEATURES = ("dev_metric", "lift", "lr_progress", "budget_share", "log10_learning_rate", "warmup_done",
                     "relative_dev_loss")
"""What the prediction reads at a rung: the dev metric there; its lift over the constant classifier (the
majority class's accuracy; 0 for MCC); the fraction (0..1) of the learning-rate schedule's area spent; the
step as a fraction of the budget; log10 of the peak learning rate; the fraction (0..1) of the warmup done; the
dev loss over the loss of a uniform prediction (ln of the number of classes)."""
RANGE_ONLY = ("log_classes", "log10_budget")
"""Checked against the fit's range but not read by the model: ln(number of classes), log10(budget in steps)."""
COLUMNS = INTERVAL_FEATURES + RANGE_ONLY

from ..protocol import interval_row  # noqa: E402,F401  (the bound's row: where the pruner builds it too)
from ._trees import Trees  # noqa: E402
MIN_HEADROOM = 0.02
"""The headroom ``1 - v`` is floored here (2 points) so that a trial near a perfect score has a finite share."""


def _headroom(v: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - v, MIN_HEADROOM)


class FinalInterval(Params):
    """Optimistic bound of a trial's final dev metric from one rung reading (see the module).

    Parameters:
        coverage: the share (0..1) of held-out tasks' rows whose final the bound should cover.
        quantile: the quantile (0..1) the trees predict before calibration.
        range_margin: how far outside the fit's range, as a fraction of that range, a feature may fall
            before the bound becomes ``+inf``.
        max_iter, learning_rate, random_state: the trees' (scikit-learn's HistGradientBoostingRegressor).

    Attributes (after ``fit``):
        model_: the trees, fitted on every row, as plain numbers (:class:`~earlyexit.scoring._trees.Trees`:
            scikit-learn's predictions to the bit, written as JSON by :func:`save_bound`).
        scores_: the held-out tasks' calibration scores (true minus predicted share of headroom), sorted.
        margin_: the calibration's addition to the predicted share at ``coverage`` (headroom units). It is read
            off ``scores_`` when asked, so ``set_params(coverage=...)`` on a fitted model needs no refit.
        low_, high_: each column's range in the fit's rows.
        groups_: the tasks it was fitted on.
    """

    PARAMS = ("coverage", "quantile", "range_margin", "max_iter", "learning_rate", "random_state")

    def __init__(self, coverage: float = 0.9, quantile: float = 0.9, range_margin: float = 0.1,
                 max_iter: int = 150, learning_rate: float = 0.05, random_state: int = 0):
        self.coverage = coverage
        self.quantile = quantile
        self.range_margin = range_margin
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _trees(self):
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(loss="quantile", quantile=self.quantile, max_iter=self.max_iter,
                                             learning_rate=self.learning_rate, max_leaf_nodes=15,
                                             min_samples_leaf=20, random_state=self.random_state)

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(COLUMNS):
            raise ValueError(f"FinalInterval expects rows of {len(COLUMNS)} columns {COLUMNS}, but got shape "
                             f"{X.shape}.")
        return X

    def fit(self, X, y, groups, *, fitted: Mapping | None = None) -> FinalInterval:
        """Fit on rows ``X`` (see :data:`COLUMNS`), finals ``y``, tasks ``groups``; at least two tasks.

        ``fitted``: trees fitted before, by :meth:`tree_key` (from :meth:`fit_trees` on the same rows, say the rows
        of a subset of the tasks); a fit whose rows and settings have a key there is read, not repeated, and
        gives the same numbers. The nested comparison shares its many overlapping fits this way."""
        X, y, groups = self._check(X), np.asarray(y, dtype=float), np.asarray(groups)
        if not 0 < self.coverage < 1 or not 0 < self.quantile < 1:
            raise ValueError(f"coverage and quantile must be in (0, 1), but got {self.coverage}, {self.quantile}.")
        if len(y) != len(X) or len(groups) != len(X):
            raise ValueError(f"X, y and groups must have one entry per row, but got {len(X)}, {len(y)}, "
                             f"{len(groups)}.")
        ok = np.isfinite(y) & np.isfinite(X[:, : len(INTERVAL_FEATURES)]).all(axis=1)
        X, y, groups = X[ok], y[ok], groups[ok]
        tasks = sorted(set(groups.tolist()))
        if len(tasks) < 2:
            raise ValueError(f"FinalInterval calibrates across tasks and needs rows of two or more, got {tasks}.")
        features, share = self._targets(X, y)
        fitted = {} if fitted is None else fitted
        scores = []
        for t in tasks:
            held = groups == t
            key = self.tree_key(features[~held], share[~held])
            trees = fitted[key] if key in fitted else self._fit_trees(features[~held], share[~held])
            scores.append(share[held] - trees.predict(features[held]))
        self.scores_ = np.sort(np.concatenate(scores))
        key = self.tree_key(features, share)
        self.model_ = fitted[key] if key in fitted else self._fit_trees(features, share)
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)
        self.groups_ = tuple(tasks)
        return self

    @staticmethod
    def _targets(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the trees read and predict: the features, and the gain as a share of the headroom."""
        return X[:, : len(INTERVAL_FEATURES)], (y - X[:, 0]) / _headroom(X[:, 0])

    def _fit_trees(self, features: np.ndarray, share: np.ndarray) -> Trees:
        return Trees.from_hist_gradient_boosting(self._trees().fit(features, share))  # plain numbers

    def tree_key(self, features: np.ndarray, share: np.ndarray) -> str:
        """A digest of the rows one tree fit reads and of the settings that shape it: equal keys, equal trees."""
        import hashlib

        h = hashlib.sha256(repr((features.shape, self.quantile, self.max_iter, self.learning_rate,
                                 self.random_state)).encode())
        h.update(np.ascontiguousarray(features, dtype=float).tobytes())
        h.update(np.ascontiguousarray(share, dtype=float).tobytes())
        return h.hexdigest()

    def fit_trees(self, X, y) -> tuple[str, Trees]:
        """``(key, trees)`` fitted on every usable row of ``X`` and ``y`` (the fit :meth:`fit` makes on all its rows):
        what a later ``fit(..., fitted={key: trees})`` on a superset of these tasks' rows reads instead of
        refitting."""
        X, y = self._check(X), np.asarray(y, dtype=float)
        ok = np.isfinite(y) & np.isfinite(X[:, : len(INTERVAL_FEATURES)]).all(axis=1)
        features, share = self._targets(X[ok], y[ok])
        return self.tree_key(features, share), self._fit_trees(features, share)

    @property
    def margin_(self) -> float:
        n = len(self.scores_)
        rank = math.ceil((n + 1) * self.coverage)  # split conformal's finite-sample rank
        return math.inf if rank > n else float(self.scores_[rank - 1])

    def predict_gain(self, X) -> np.ndarray:
        """Each row's predicted gain from its dev metric to its final, in the metric's units, before calibration
        (NaN out of range or where a feature is missing)."""
        if not hasattr(self, "model_"):
            raise RuntimeError("FinalInterval is not fitted: call fit(X, y, groups) first.")
        X = self._check(X)
        features = X[:, : len(INTERVAL_FEATURES)]
        gain = np.full(len(X), np.nan)
        usable = np.isfinite(features).all(axis=1) & ~self.out_of_range(X)
        if usable.any():
            gain[usable] = self.model_.predict(features[usable]) * _headroom(features[usable, 0])
        return gain

    def out_of_range(self, X) -> np.ndarray:
        """Whether each row has a column outside the fit's range by more than ``range_margin`` of that range."""
        X = self._check(X)
        span = np.maximum(self.high_ - self.low_, 1e-12)
        return ((X < self.low_ - self.range_margin * span) | (X > self.high_ + self.range_margin * span)).any(axis=1)

    def predict_upper(self, X) -> np.ndarray:
        """The optimistic bound of each row's final dev metric (``+inf`` out of range or where a feature is missing)."""
        X = self._check(X)
        gain = self.predict_gain(X)
        v = X[:, 0]
        with np.errstate(invalid="ignore"):
            upper = v + gain + self.margin_ * _headroom(v)
        return np.where(np.isfinite(upper), upper, np.inf)


BOUND_FILE = Path(__file__).resolve().parent.parent / "assets" / "final_interval.json"
"""The package's fitted bound (``earlyexit fit --bound``), read by ``[pruner] bound = true``."""
BOUND_FORMAT = 2
"""2: JSON, plain numbers (1: a joblib pickle, read only with ``allow_pickle``)."""


def bound_to_dict(model: FinalInterval) -> dict:
    """A fitted :class:`FinalInterval` as JSON-able numbers and names."""
    if not hasattr(model, "model_"):
        raise ValueError("save_bound needs a fitted FinalInterval.")
    return {"params": model.get_params(), "trees": model.model_.to_dict(), "scores": model.scores_.tolist(),
            "low": model.low_.tolist(), "high": model.high_.tolist(), "groups": list(model.groups_),
            "columns": list(COLUMNS)}


def bound_from_dict(data: dict) -> FinalInterval:
    if list(data.get("columns", [])) != list(COLUMNS):
        raise ValueError(f"its columns {data.get('columns')} are not {list(COLUMNS)}")
    model = FinalInterval(**data["params"])
    model.model_ = Trees.from_dict(data["trees"])
    model.scores_ = np.sort(np.asarray(data["scores"], dtype=float))
    model.low_, model.high_ = np.asarray(data["low"], dtype=float), np.asarray(data["high"], dtype=float)
    model.groups_ = tuple(data["groups"])
    if len(model.low_) != len(COLUMNS) or len(model.high_) != len(COLUMNS) or \
            model.model_.n_features != len(INTERVAL_FEATURES):
        raise ValueError("its arrays do not agree with its columns")
    return model


def save_bound(model: FinalInterval, path: str | Path = BOUND_FILE, *, sweeps: tuple[str, ...] = ()) -> None:
    """Write a fitted :class:`FinalInterval` as JSON (plain numbers: it loads under any scikit-learn version and
    cannot run code), with the scikit-learn version it was fitted with and the sweeps it was fitted on."""
    import json

    import sklearn

    if Path(path).suffix == ".joblib":
        raise ValueError(f"{path}: a bound is written as JSON now; name a .json file.")
    Path(path).write_text(json.dumps({"format": BOUND_FORMAT, "kind": "final_interval", "bound": bound_to_dict(model),
                                      "fitted_with": {"sklearn": sklearn.__version__}, "sweeps": list(sweeps)},
                                     separators=(",", ":")) + "\n")


def load_bound(path: str | Path = BOUND_FILE, *, allow_pickle: bool = False) -> FinalInterval:
    """Load a bound written by :func:`save_bound` (default: the package's): JSON, which cannot run code. A bound
    pickled by an older version (``.joblib``, format 1) is read only with ``allow_pickle`` (loading a pickle runs
    the code it holds) and under the scikit-learn minor version it was written with. A missing or foreign file
    is a clear error (refit with ``earlyexit fit SWEEPS --bound``)."""
    import json

    from ._common import ScorerFileError, read_joblib, same_minor

    remedy = "`earlyexit fit SWEEPS --bound`"
    path = Path(path)
    if path.suffix == ".joblib":
        blob = read_joblib(path, "bound", remedy, allow_pickle=allow_pickle)
        if not isinstance(blob, dict) or blob.get("format") != 1 or not isinstance(blob.get("bound"), FinalInterval):
            raise ScorerFileError(f"{path}: not a bound file; make one with {remedy}.")
        same_minor(blob.get("sklearn"), path, remedy)
        return blob["bound"]
    try:
        blob = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScorerFileError(f"{path}: no such bound file; make one with {remedy}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScorerFileError(f"{path}: not a bound file (not JSON: {exc}); make one with {remedy}.") from None
    if not isinstance(blob, dict) or blob.get("kind") != "final_interval" or blob.get("format") != BOUND_FORMAT:
        raise ScorerFileError(f"{path}: not a bound file of format {BOUND_FORMAT}; make one with {remedy}.")
    try:
        return bound_from_dict(blob["bound"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ScorerFileError(f"{path}: not a bound file ({exc}); make one with {remedy}.") from None
