"""Probe features for the look-ahead's predictor: their values, their choice inside the training data, their file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from earlyexit.pruning import LookaheadPruner
from earlyexit.replay._engine import HeldSet
from earlyexit.replay._lookahead import fit_predictor, fit_predictor_choosing_probes, lookahead_rows
from earlyexit.replay._simulate import Run
from earlyexit.scoring import PROBE_FEATURES, FinalPredictor, probe_feature_row, probes_read
from earlyexit.scoring._probe_features import PROBES_READ
from earlyexit.training._schedule import lr_progress

STEPS = (25, 50, 100, 200, 400)
BUDGET = 800


def _held(task: str, seed: int, informative: bool, n_runs: int = 14) -> HeldSet:
    """Curves that look alike early; what each run gains later is ``late``, which the critical sharpness shows
    (``informative``) or which nothing shows (the probes are noise)."""
    rng = np.random.default_rng(seed)
    n_dev = 400
    labels = rng.integers(0, 2, n_dev).astype(np.int16)
    constant = float(np.bincount(labels).max() / n_dev)
    runs, warm, lrs = [], {}, {}
    for i in range(n_runs):
        rid = f"{task}{i:02d}"
        lr = float(10 ** rng.uniform(-4.5, -3.5))
        late = float(rng.uniform(0.0, 0.3))
        signature = {}
        for s in STEPS:
            progress = lr_progress(s, BUDGET, 0.0)
            value = constant + (1 - constant) * (0.4 * min(1.0, 4 * progress) + late * progress ** 2)
            crit = (10 ** (2 * late) if informative else 10 ** rng.uniform(0, 0.6)) / lr
            signature[s] = {"dev_metric": value, "lr_progress": progress, "dev_loss": 0.69 * (1 - 0.5 * value),
                            "loss": 0.5, "gradient_norm": 1.0, "gradient_variance": float(rng.uniform(1, 2)),
                            "sam_sharpness": 0.01, "hessian_top_eigenvalue": 10.0, "hessian_trace": 100.0,
                            "critical_sharpness": crit, "uniform_loss": math.log(2)}
        final = constant + (1 - constant) * (0.4 + late)
        runs.append(Run(rid, rid, 0, final, BUDGET, signature, {s: float(s) for s in STEPS}, float(BUDGET), False))
        warm[rid], lrs[rid] = 0.0, lr
    return HeldSet(task, task, "accuracy", 0, tuple(runs), BUDGET, n_dev, labels, {}, {}, None, warm, STEPS, lrs, 2,
                   constant)


def test_each_probe_feature_is_the_documented_ratio_and_nan_where_a_probe_is_missing():
    values = {"loss": 0.5, "gradient_norm": 2.0, "gradient_variance": 0.4, "sam_sharpness": 0.05,
              "hessian_top_eigenvalue": 20.0, "hessian_trace": 400.0, "critical_sharpness": 1000.0,
              "uniform_loss": math.log(2)}
    row = dict(zip(PROBE_FEATURES, probe_feature_row(values, 1e-4, list(PROBE_FEATURES))))
    assert row["lr_x_top_eigenvalue"] == pytest.approx(math.log10(2e-3))
    assert row["lr_x_critical_sharpness"] == pytest.approx(-1.0)
    assert row["gradient_noise"] == pytest.approx(math.log10(0.1))
    assert row["trace_over_top"] == pytest.approx(math.log10(20))
    assert row["relative_sam"] == pytest.approx(-1.0)
    assert row["relative_train_loss"] == pytest.approx(0.5 / math.log(2))
    missing = probe_feature_row({"loss": 0.5}, 1e-4, ["lr_x_critical_sharpness", "relative_train_loss"])
    assert math.isnan(missing[0]) and math.isnan(missing[1])
    with pytest.raises(ValueError, match="unknown probe feature"):
        probe_feature_row(values, 1e-4, ["curvature"])


def test_each_feature_reads_exactly_the_probes_it_is_charged_for():
    values = {"loss": 0.5, "gradient_norm": 2.0, "gradient_variance": 0.4, "sam_sharpness": 0.05,
              "hessian_top_eigenvalue": 20.0, "hessian_trace": 400.0, "critical_sharpness": 1000.0}
    for name in PROBE_FEATURES:
        own = {p: values[p] for p in PROBES_READ[name]} | {"uniform_loss": math.log(2)}
        assert math.isfinite(probe_feature_row(own, 1e-4, [name])[0]), name
        for p in PROBES_READ[name]:
            assert math.isnan(probe_feature_row({q: v for q, v in own.items() if q != p}, 1e-4, [name])[0]), (name, p)
    assert probes_read(["trace_over_top", "lr_x_top_eigenvalue", "relative_train_loss"]) == (
        "hessian_trace", "hessian_top_eigenvalue", "loss")


def test_the_choice_takes_a_probe_that_carries_the_late_gain_and_none_that_is_noise():
    informative = [_held(t, s, True) for t, s in (("a", 1), ("b", 2), ("c", 3), ("d", 4))]
    noise = [_held(t, s, False) for t, s in (("a", 1), ("b", 2), ("c", 3), ("d", 4))]
    chosen = fit_predictor_choosing_probes(informative)
    assert "lr_x_critical_sharpness" in chosen.probes
    assert chosen.choice_["lr_x_critical_sharpness"] < chosen.choice_["none"]
    plain = fit_predictor_choosing_probes(noise)
    assert plain.probes == ()
    assert plain.choice_["none"] <= min(plain.choice_.values())


def test_a_predictor_with_probes_is_plain_json_and_the_optuna_pruner_refuses_it():
    sets = [_held(t, s, True) for t, s in (("a", 1), ("b", 2), ("c", 3))]
    model = fit_predictor(sets, k=10, probes=("lr_x_critical_sharpness",))
    again = FinalPredictor.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.probes == ("lr_x_critical_sharpness",)
    _, X, _ = lookahead_rows(sets[0], probes=again.probes)
    assert X.shape[1] == 7
    assert np.allclose(again.predict(X), model.predict(X), atol=1e-5)  # the file rounds to 6 decimals
    with pytest.raises(ValueError, match="7 columns"):
        again.predict(X[:, :6])
    bad = model.to_dict() | {"features": model.to_dict()["features"][:6] + ["curvature"]}
    with pytest.raises(ValueError, match="probe features"):
        FinalPredictor.from_dict(bad)
    with pytest.raises(ValueError, match="does not report"):
        LookaheadPruner(again)
    with pytest.raises(ValueError, match="probes must be"):
        FinalPredictor(probes=("curvature",)).fit(X, np.zeros(len(X)), ["a"] * len(X))


def test_distances_are_the_broadcast_sum_bit_for_bit_and_every_k_at_once_is_each_k_alone():
    from earlyexit.scoring._lookahead import squared_distances
    from earlyexit.scoring._probe_features import refit_errors, refit_errors_by_k

    rng = np.random.default_rng(3)
    Q, Z = rng.normal(size=(37, 6)), rng.normal(size=(91, 6))
    assert np.array_equal(squared_distances(Q, Z), ((Q[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2))
    train_X, train_gain = rng.normal(size=(300, 6)), rng.normal(size=300)
    X, gain = rng.normal(size=(60, 6)), rng.normal(size=60)
    runs = np.repeat([f"r{i}" for i in range(12)], 5)
    together = refit_errors_by_k(train_X, train_gain, X, gain, runs, ks=(40, 20, 10), metric_weight=2.0)
    for k in (40, 20, 10):
        alone = refit_errors(train_X, train_gain, X, gain, runs, k=k, metric_weight=2.0)
        assert np.array_equal(together[k], alone)
    assert not np.array_equal(together[40], together[10])


def test_study_medians_read_each_neighbour_where_it_lives_and_equal_the_concatenated_median_bit_for_bit():
    from earlyexit.scoring._lookahead import row_medians, study_medians

    def by_concatenation(prior_d, prior_g, study_d, study_gain, k):
        d = np.concatenate([prior_d, study_d], axis=1)
        g = np.concatenate([prior_g, np.broadcast_to(study_gain, study_d.shape)], axis=1)
        out = np.full(len(d), np.nan)
        ok = np.isfinite(prior_d).all(axis=1)
        if ok.any():
            near = np.argpartition(d[ok], min(k, d.shape[1]) - 1, axis=1)[:, :min(k, d.shape[1])]
            out[ok] = np.median(np.take_along_axis(g[ok], near, axis=1), axis=1)
        return out

    rng = np.random.default_rng(1)
    for _ in range(400):
        n, kp, p, k = rng.integers(1, 5), rng.integers(1, 45), rng.integers(0, 60), rng.integers(1, 50)
        pd, pg = rng.random((n, kp)), rng.normal(size=(n, kp))
        sd, sg = rng.random((n, p)), rng.normal(size=p)
        if rng.random() < 0.3:  # ties
            pd, sd = np.round(pd, 1), np.round(sd, 1)
        if rng.random() < 0.2:  # a feature unknown
            pd[0, 0] = np.nan
        if rng.random() < 0.2 and p:  # a gain unknown
            sg[0] = np.nan
        if rng.random() < 0.2:  # readings masked out (a trial's own)
            sd[:, : p // 2] = np.inf
        assert np.array_equal(study_medians(pd, pg, sd, sg, k), by_concatenation(pd, pg, sd, sg, k), equal_nan=True)
    v = rng.normal(size=(50, 40))
    v[3, 7] = np.nan
    for w in (v, v[:, :39]):
        assert np.array_equal(row_medians(w), np.median(w, axis=1), equal_nan=True)
