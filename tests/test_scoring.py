"""The scorer is a well-behaved scikit-learn estimator, and its features are what they claim."""

import math

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from earlyexit.scoring import FeatureSchema, SignatureRegressor, grouped_spearman, signature_matrix


@parametrize_with_checks([SignatureRegressor(), SignatureRegressor(model="gradient_boosting", n_estimators=20)])
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_usable_in_pipeline_and_grid_search():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] * 0.1 + 0.8
    search = GridSearchCV(make_pipeline(FunctionTransformer(), SignatureRegressor()),
                          {"signatureregressor__alpha": [0.01, 10.0]}, cv=3).fit(X, y)
    assert search.best_params_["signatureregressor__alpha"] == 0.01
    with pytest.raises(ValueError, match="'model' parameter"):
        SignatureRegressor(model="forest").fit(X, y)


def test_signature_features_log_and_delta():
    schema = FeatureSchema(("loss", "hessian_trace"), (0, 50))
    assert schema.columns == ["log:loss@0", "log:loss@50", "delta:loss@50", "log:hessian_trace@0",
                              "log:hessian_trace@50", "delta:hessian_trace@50"]
    X = signature_matrix([{0: {"loss": 1.0, "hessian_trace": -3.0}, 50: {"loss": 0.5}}], schema)
    assert X[0, 0] == pytest.approx(math.log(2)) and X[0, 1] == pytest.approx(math.log(1.5))
    assert X[0, 2] == pytest.approx(math.log(1.5) - math.log(2))
    assert X[0, 3] == pytest.approx(-math.log(4)) and math.isnan(X[0, 4]) and math.isnan(X[0, 5])
    with pytest.raises(ValueError, match="increasing"):
        FeatureSchema(("loss",), (50, 0))


def test_grouped_spearman_is_within_groups():
    y = np.array([1, 2, 3, 10, 20, 30.0])
    pred = np.array([3, 2, 1, 30, 20, 10.0])  # perfectly reversed within each group
    groups = np.array([0, 0, 0, 1, 1, 1])
    assert grouped_spearman(y, pred, groups) == pytest.approx(-1.0)
    assert grouped_spearman(y, -pred, groups) == pytest.approx(1.0)


def test_centring_by_study_keeps_a_study_level_probe_from_deciding_the_ranking():
    from earlyexit.scoring import fit_scorer

    # Six studies whose overall accuracy differs (0.70 .. 0.95); one probe tracks the study's level
    # plus noise unrelated to the trial, the other is the within-study signal. Uncentred, the model
    # spends its weight on the study-level probe and its noise scrambles the order within a study.
    rng = np.random.default_rng(0)
    signatures, finals, groups = [], [], []
    for g in range(6):
        level = 0.70 + 0.05 * g
        for _ in range(10):
            signal, noise = rng.normal(), rng.normal()
            signatures.append({10: {"signal": signal, "level": 10 * level + noise}})
            finals.append(level + 0.002 * signal)
            groups.append(g)
    kwargs = dict(names=["signal", "level"], steps=[10], prefixes=[10],
                  candidates={"ridge": {"model": "ridge", "alpha": 1.0}})
    centred = fit_scorer(signatures, finals, groups, center_groups=True, **kwargs)
    raw = fit_scorer(signatures, finals, groups, **kwargs)
    assert centred.report[10]["heldout_spearman"] > 0.9
    assert raw.report[10]["heldout_spearman"] < centred.report[10]["heldout_spearman"] - 0.2
    assert centred.report[10]["centred_by_study"] and not raw.report[10]["centred_by_study"]
