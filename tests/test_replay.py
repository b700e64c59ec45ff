"""Scorer fitting and the replay on a synthetic sweep with a planted signal."""

import json
import math
from pathlib import Path

import pytest

from earlyexit.cli import main
from earlyexit.scoring import ScorerFileError, load_scorer
from earlyexit.sweeps import load

from synthetic_sweep import write_synthetic_sweep

POLICIES = {"earlyexit", "loss_only", "prefix_accuracy", "no_pruning", "oracle", "median", "percentile",
            "successive_halving", "hyperband", "wilcoxon"}


@pytest.fixture(scope="module")
def sweep_path(tmp_path_factory):
    return write_synthetic_sweep(tmp_path_factory.mktemp("syn") / "syn")


@pytest.fixture(scope="module")
def replayed(sweep_path):
    from earlyexit.replay import replay

    return replay(load(sweep_path), orders=3, prefix=50, keep_top=1, pareto=True)


def test_replay_json_has_every_policy_and_sane_limits(replayed):
    pol = replayed["policies"]
    assert POLICIES <= set(pol)
    assert pol["no_pruning"]["compute_saved"] == pytest.approx(0.0, abs=1e-9)
    assert pol["no_pruning"]["regret"] == 0.0 and pol["oracle"]["regret"] == 0.0
    assert pol["oracle"]["compute_saved"] > pol["earlyexit"]["compute_saved"]
    for name, r in pol.items():
        assert r["compute_saved"] <= 1.0 and (r["regret"] is None or r["regret"] >= -1e-12), name


def test_planted_signal_is_found_where_early_accuracy_misleads(replayed):
    pol = replayed["policies"]
    # The probes reveal quality at step 50; dev accuracy at step 50 favours fast starters.
    assert pol["earlyexit"]["spearman"] > 0.8
    assert pol["earlyexit"]["regret"] < pol["prefix_accuracy"]["regret"]
    assert pol["earlyexit"]["compute_saved"] == pytest.approx(pol["prefix_accuracy"]["compute_saved"], abs=0.05)


def test_pareto_curves_cover_prefixes_and_keep_top(replayed):
    pts = replayed["pareto"]["earlyexit"]
    assert {p["keep_top"] for p in pts} == {1, 2, 3, 4}
    assert {p["prefix"] for p in pts} == {10, 50, 100, 200}
    # Keeping more configs never saves more compute at the same prefix.
    at50 = sorted((p for p in pts if p["prefix"] == 50), key=lambda p: p["keep_top"])
    assert all(a["compute_saved"] >= b["compute_saved"] for a, b in zip(at50, at50[1:]))


def test_fit_and_replay_commands(sweep_path, tmp_path, capsys):
    scorer_file = tmp_path / "s.joblib"
    assert main(["fit", str(sweep_path), "-o", str(scorer_file), "--prefixes", "50", "100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert set(report) == {"50", "100"} and report["50"]["heldout_spearman"] > 0.8
    scorer = load_scorer(scorer_file, allow_pickle=True)
    assert scorer.names[-1] == "dev_accuracy"
    assert main(["replay", str(sweep_path), "--scorer", str(scorer_file), "--allow-pickle", "--prefix", "50", "--orders", "2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"]["held_out"] == "given scorer" and POLICIES <= set(out["policies"])
    assert (sweep_path / "replay_pareto.png").stat().st_size > 1000
    assert (sweep_path / "correlations.png").stat().st_size > 1000  # the probe x step heatmap, beside it


def test_fit_on_another_sweep(sweep_path, tmp_path, capsys):
    other = write_synthetic_sweep(tmp_path / "other", seeds=(5,), seed=1)
    assert main(["replay", str(other), "--fit-on", str(sweep_path), "--prefix", "50", "--orders", "2",
                 "--no-pareto"]) == 0
    out = capsys.readouterr().out
    assert "fit on" in out and "earlyexit" in out
    from earlyexit.sweeps import load

    assert f"{sweep_path} ({len(load(sweep_path).runs)} runs logged)" in out  # which runs the scorer learnt from


def test_a_sweep_with_one_run_a_seed_is_a_clear_error(sweep_path, tmp_path, capsys):
    early = write_synthetic_sweep(tmp_path / "early", configs=1, seeds=(0, 1), seed=2)
    assert main(["replay", str(early), "--fit-on", str(sweep_path), "--no-pareto"]) != 0
    assert "at least two runs of one seed" in capsys.readouterr().err


def test_scorer_file_errors(tmp_path, sweep_path):
    with pytest.raises(ScorerFileError, match="no such scorer file"):
        load_scorer(tmp_path / "missing.joblib")
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ScorerFileError, match="not a scorer file"):
        load_scorer(bad, allow_pickle=True)
    import joblib

    joblib.dump({"format": 0, "scorer": None}, tmp_path / "old.joblib")
    with pytest.raises(ScorerFileError, match="refit"):
        load_scorer(tmp_path / "old.joblib", allow_pickle=True)


def test_leave_one_seed_out_needs_two_seeds(tmp_path, capsys):
    one = write_synthetic_sweep(tmp_path / "one", seeds=(0,))
    assert main(["replay", str(one), "--prefix", "50", "--no-pareto"]) == 2
    assert "at least 2 seeds" in capsys.readouterr().err


def test_two_seeds_fit_each_scorer_on_the_other_seed_with_configs_held_out(tmp_path):
    from earlyexit.replay import fit_on_runs
    from earlyexit.replay._simulate import runs_of

    runs = runs_of(load(write_synthetic_sweep(tmp_path / "two", seeds=(0, 1))))
    one_seed = [r for r in runs if r.seed == 0]
    scorer = fit_on_runs(one_seed, ["loss", "hessian_trace"], [0, 10, 50], [50])
    # Cross-validated over 4 folds of configs within the one seed: every config predicted once, held out.
    assert math.isfinite(scorer.report[50]["heldout_spearman"])
    assert scorer.report[50]["heldout_spearman"] > 0.5  # the planted trace signal ranks unseen configs


def test_hyperparameter_surrogate_decides_before_training(replayed):
    # The synthetic sweep repeats the same configs in every seed, so a surrogate fitted on the other seeds'
    # (learning rate, final) pairs knows each held-out config already: it keeps one before any training,
    # saving what the oracle saves, and ranks the configs well.
    pol = replayed["policies"]
    assert pol["hyperparameters"]["compute_saved"] == pytest.approx(pol["oracle"]["compute_saved"])
    assert pol["hyperparameters"]["spearman"] > 0.8
    assert replayed["protocol"]["hyperparameters"] == ["log10_learning_rate"]
    pts = replayed["pareto"]["hyperparameters"]
    assert [p["keep_top"] for p in pts] == [1, 2, 3, 4] and {p["prefix"] for p in pts} == {0}
    assert pts[1]["regret"] <= pts[0]["regret"] and pts[1]["compute_saved"] < pts[0]["compute_saved"]
    # Beside it, the noise ceiling of the same held-out seeds, in the replay's units (metric, not points).
    ceiling = replayed["noise_ceiling"]
    assert ceiling["seeds"] == 3 and len(ceiling["per_seed"]) == 3
    assert ceiling["spearman"] > 0.9 and 0 <= ceiling["regret"] < 0.01


def test_encode_params_and_shared_columns():
    from earlyexit.replay._simulate import Run
    from earlyexit.replay._surrogate import as_param_runs, encode_params, feature_names

    assert encode_params({"learning_rate": 1e-4, "warmup_ratio": 0.1, "schedule": "cosine"}) == {
        "log10_learning_rate": pytest.approx(-4.0), "warmup_ratio": 0.1, "schedule=cosine": 1.0}

    def run(**params):
        return Run("r", "c", 0, 0.8, 10, {}, {}, 10.0, False, params)

    grid = [run(learning_rate=1e-5, weight_decay=0.0)]
    wide = [run(learning_rate=3e-4, schedule="cosine", hidden_dropout=0.1), run(learning_rate=1e-3, schedule="linear")]
    # Only what both sides have: the grid never varied the schedule or the dropout.
    assert feature_names(grid, wide) == ["log10_learning_rate"]
    both = feature_names(wide, wide)
    assert both == ["hidden_dropout", "log10_learning_rate", "schedule=cosine", "schedule=linear"]
    sig = as_param_runs(wide, both)[1].signature[0]
    assert sig["schedule=cosine"] == 0.0 and sig["schedule=linear"] == 1.0 and math.isnan(sig["hidden_dropout"])


def test_optuna_replays_are_reproducible(sweep_path):
    # Hyperband assigns trials to brackets by a hash of the study's name: an auto-generated name would
    # make the same order replay differently from one process (or call) to the next.
    import optuna

    from earlyexit.replay import runs_of
    from earlyexit.replay._optuna_replay import dev_metric_value, study_replay

    runs = runs_of(load(sweep_path))
    max_steps = max(r.steps for r in runs)
    policy = study_replay(lambda: optuna.pruners.HyperbandPruner(min_resource=10, max_resource=max_steps,
                                                                 reduction_factor=2), dev_metric_value)
    for order_seed in range(6):
        first, again = policy(runs, order_seed), policy(runs, order_seed)
        assert (first.compute_used, first.kept) == (again.compute_used, again.kept)


REPLAY_SHA256 = "82465dc893b928644fbe2cb9f1dcd6a20844da954c23310dbea8314024cb463c"
"""The replay JSON of two synthetic sweeps, as the replay before its rebuild as a table of policies
(commit 265f77d) wrote it: the rebuild must not move a figure."""


def test_replay_json_is_byte_identical_to_the_pinned_output(tmp_path, monkeypatch):
    import hashlib
    import json

    from earlyexit.replay import replay
    from earlyexit.sweeps import load

    monkeypatch.chdir(tmp_path)  # relative paths: the JSON names them
    folder = write_synthetic_sweep(Path("syn"), configs=6, seeds=(0, 1, 2))
    other = write_synthetic_sweep(Path("other"), configs=5, seeds=(0, 1), seed=7)
    a = replay(load(folder), orders=3, prefix=50, keep_top=1)
    b = replay(load(folder), fit_on=[load(other)], orders=3, prefix=50, keep_top=2, pareto=False)
    text = json.dumps([{**a, "sweep": "syn"}, {**b, "sweep": "syn"}])
    assert hashlib.sha256(text.encode()).hexdigest() == REPLAY_SHA256


def test_the_nested_plot_keeps_an_outlier_at_its_edge_and_names_it(tmp_path):
    from earlyexit.replay import plot_nested

    def fig(saved, regret):
        return {"mean_compute_saved": saved, "mean_regret": regret}

    result = {"protocol": {"sweeps": ["a", "b"], "workers": 1, "trials": None},
              "aggregate": {"default": {"nested": fig(0.5, 0.15), "best_case": fig(0.52, 0.12)},
                            "median": {"nested": fig(0.34, 0.17), "best_case": fig(0.5, 0.2)},
                            "hyperparameters": {"nested": fig(0.78, 2.84), "best_case": fig(0.89, 2.9)}}}
    path = tmp_path / "nested.png"
    assert plot_nested(result, path) == ["hyperparameters"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_nested(result, tmp_path / "wide.png", x_max=5.0) == []
