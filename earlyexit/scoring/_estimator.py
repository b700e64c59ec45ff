"""``SignatureRegressor``: a scikit-learn estimator from probe-signature features to final accuracy."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

MODELS = ("ridge", "gradient_boosting", "gaussian_process")


class SignatureRegressor(RegressorMixin, BaseEstimator):
    """Predict a trial's final metric from its probe-signature features.

    A pipeline of median imputation (probes that failed or were +inf become
    NaN/large), standardisation, and one of three regressors chosen by
    ``model``; ``earlyexit fit`` picks the model by grouped cross-validation.

    Parameters:
        model: ``"ridge"``, ``"gradient_boosting"`` or ``"gaussian_process"``.
        alpha: ridge penalty (ridge only).
        n_estimators, max_depth, learning_rate: gradient boosting settings.
        random_state: seed of the boosting model.

    Attributes:
        pipeline_: the fitted sklearn Pipeline.
        n_features_in_: number of features seen in ``fit``.

    Examples:
        >>> import numpy as np
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0.5, 0.6, 0.7, 0.8])
        >>> SignatureRegressor(alpha=1e-6).fit(X, y).predict(np.array([[4.0]])).round(3)
        array([0.9])
    """

    def __init__(self, model: str = "ridge", *, alpha: float = 1.0, n_estimators: int = 200, max_depth: int = 2,
                 learning_rate: float = 0.05, random_state: int | None = 0):
        self.model = model
        self.alpha = alpha
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def _validate_params_here(self):
        if self.model not in MODELS:
            raise ValueError(f"The 'model' parameter of SignatureRegressor must be one of {MODELS}. "
                             f"Got {self.model!r} instead.")
        if not self.alpha > 0:
            raise ValueError(f"The 'alpha' parameter of SignatureRegressor must be positive. Got {self.alpha!r} instead.")
        if self.n_estimators < 1 or self.max_depth < 1 or not self.learning_rate > 0:
            raise ValueError("n_estimators and max_depth must be at least 1 and learning_rate positive; got "
                             f"{self.n_estimators=}, {self.max_depth=}, {self.learning_rate=}.")

    def _build(self):
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.model == "ridge":
            from sklearn.linear_model import Ridge

            head = Ridge(alpha=self.alpha)
        elif self.model == "gradient_boosting":
            from sklearn.ensemble import GradientBoostingRegressor

            head = GradientBoostingRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                             learning_rate=self.learning_rate, random_state=self.random_state)
        else:
            from sklearn.gaussian_process import GaussianProcessRegressor
            from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

            head = GaussianProcessRegressor(ConstantKernel() * RBF() + WhiteKernel(), normalize_y=True,
                                            random_state=self.random_state)
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), head)

    def fit(self, X, y):
        """Fit on features ``X`` (n_trials, n_features) and final metrics ``y``; returns self."""
        self._validate_params_here()
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", y_numeric=True)
        X = np.clip(X, -1e12, 1e12)
        self.pipeline_ = self._build().fit(X, y)
        return self

    def predict(self, X):
        """Predicted final metric for each row of ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.pipeline_.predict(np.clip(X, -1e12, 1e12))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
