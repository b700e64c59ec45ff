"""A fitted gradient-boosted tree ensemble as plain numbers: what a bound file stores instead of a pickle.

:class:`Trees` holds scikit-learn's ``HistGradientBoostingRegressor`` after ``fit`` as arrays (each node's feature,
threshold, side for a missing value, children and leaf value) and predicts with numpy alone, adding the trees'
leaf values to the baseline in the order scikit-learn adds them, so its predictions are scikit-learn's to the bit
(``tests/test_interval.py`` checks it). Its JSON loads under any scikit-learn version, or none, and cannot run code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_FIELDS = ("feature", "threshold", "missing_left", "left", "right", "leaf", "value")


class Trees:
    """A regression tree ensemble: ``predict(X) = baseline + sum of each tree's leaf value`` (see the module).

    Attributes:
        baseline: the constant the trees start from.
        trees: one dict of equal-length arrays per tree, node 0 the root: ``feature``, ``threshold`` (go left
            where ``x <= threshold``), ``missing_left`` (where a NaN goes), ``left``, ``right``, ``leaf``,
            ``value`` (a leaf's).
        n_features: the number of columns a row has.
    """

    def __init__(self, baseline: float, trees: list[dict[str, np.ndarray]], n_features: int):
        self.baseline, self.trees, self.n_features = float(baseline), trees, int(n_features)

    @classmethod
    def from_hist_gradient_boosting(cls, model) -> Trees:
        """The numbers of a fitted single-output ``HistGradientBoostingRegressor`` on numeric features.

        scikit-learn has no public export of its trees: this reads its fitted predictors (``_predictors``,
        ``_baseline_prediction``), the one place the package reads them, at fit time only."""
        if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            raise ValueError("Trees reads numeric features only; the model has categorical ones.")
        if getattr(model, "_preprocessor", None) is not None:
            raise ValueError("Trees reads a model fitted on numbers, without scikit-learn's preprocessor.")
        trees = []
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            trees.append({"feature": nodes["feature_idx"].astype(np.int64),
                          "threshold": nodes["num_threshold"].astype(np.float64),
                          "missing_left": nodes["missing_go_to_left"].astype(bool),
                          "left": nodes["left"].astype(np.int64), "right": nodes["right"].astype(np.int64),
                          "leaf": nodes["is_leaf"].astype(bool), "value": nodes["value"].astype(np.float64)})
        return cls(float(np.ravel(model._baseline_prediction)[0]), trees, int(model.n_features_in_))

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"Trees expects rows of {self.n_features} columns, but got shape {X.shape}.")
        out = np.full(len(X), self.baseline)
        rows = np.arange(len(X))
        for t in self.trees:
            node = np.zeros(len(X), dtype=np.int64)
            while True:
                inner = ~t["leaf"][node]
                if not inner.any():
                    break
                n = node[inner]
                x = X[rows[inner], t["feature"][n]]
                left = np.where(np.isnan(x), t["missing_left"][n], x <= t["threshold"][n])
                node[inner] = np.where(left, t["left"][n], t["right"][n])
            out += t["value"][node]
        return out

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "n_features": self.n_features,
                "trees": [{k: t[k].tolist() for k in _FIELDS} for t in self.trees]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Trees:
        trees = []
        for t in data["trees"]:
            arrays = {k: np.asarray(t[k], dtype=bool if k in ("missing_left", "leaf") else
                                    np.int64 if k in ("feature", "left", "right") else np.float64) for k in _FIELDS}
            n = len(arrays["value"])
            if any(len(a) != n for a in arrays.values()) or n == 0:
                raise ValueError("a tree's arrays do not agree in length")
            inner = ~arrays["leaf"]
            index = np.flatnonzero(inner)
            if ((arrays["left"][inner] <= index) | (arrays["right"][inner] <= index) | (arrays["left"][inner] >= n)
                    | (arrays["right"][inner] >= n) | (arrays["feature"][inner] < 0)
                    | (arrays["feature"][inner] >= int(data["n_features"]))).any():
                raise ValueError("a tree's node points outside the tree")
            trees.append(arrays)
        return cls(float(data["baseline"]), trees, int(data["n_features"]))
