"""Study specs and the study runner: spec errors, a resumed study, a diverging trial."""

import json
import math

import optuna
import pytest

from earlyexit.names import DEV_METRICS
from earlyexit.cli import main
from earlyexit.study import SpecError, load_spec, run_study

TINY = """
[study]
name = "t"
n_trials = {n_trials}
seed = 0
sampler = "grid"

[data]
max_length = 32
group_by_length = true

[train]
batch_size = 16
max_steps = 10
eval_batch_size = 512

[probes]
steps = [0, 4, 8]
names = ["loss", "gradient_norm", "critical_sharpness"]
batches = 2
batch_size = 4

[search.grid]
learning_rate = {grid}

[pruner]
kind = "geometric"
scorer = "rank"
decision_steps = [4]
keep_top = 1
n_startup_trials = 1
"""


def _spec(tmp_path, n_trials=3, grid="[1e-3, 3e-4, 1e-4]", extra=""):
    path = tmp_path / "s.toml"
    path.write_text(TINY.format(n_trials=n_trials, grid=grid) + extra)
    return path


def test_quickstart_spec_is_valid():
    spec = load_spec("studies/quickstart.toml")
    assert spec.n_trials >= 8 and spec.pruner.kind == "resolution"
    assert spec.train.model == "earlyexit:tiny-bert"


@pytest.mark.parametrize("text, match", [
    ("[study]\nnmae = 'x'\n", r"unknown key\(s\) study.nmae"),
    ("[bogus]\n", r"unknown key\(s\) bogus"),
    ("[train]\nmax_steps = 'many'\n", "train.max_steps must be int"),
    ("[train]\nwarmup_ratio = 2.0\n[search]\nlearning_rate = { type = 'float', low = 1e-5, high = 1e-3 }\n",
     "warmup_ratio"),
    ("[search]\nlearning_rate = { type = 'float', low = 1e-3, high = 1e-5 }\n", "low must be below"),
    ("[search]\nlearning_rate = { type = 'float', low = 0.0, high = 1e-3, log = true }\n", "positive on a log"),
    ("[search]\ndepth = { type = 'int', low = 1, high = 3 }\n", "search.depth cannot be searched"),
    ("[search.grid]\nlearning_rate = []\n", "non-empty list"),
    ("[search.grid]\nlearning_rate = [-1.0]\n", "learning_rate must be positive"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'geometric'\ndecision_steps = [33]\n", "not probe steps"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'geometric'\nrank_probe = 'vibes'\n", "not a probe"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkeep_top = 0\n", "keep_top must be at least 1"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nrungs = [0.5, 0.1]\n", "rungs must be increasing fractions"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'median'\nz = 2.0\n",
     r"pruner.z belong to pruner.kind = 'resolution', not 'median' \(which reads n_startup_trials\)"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\ndecision_steps = [50]\n",
     "pruner.decision_steps belong to pruner.kind = 'geometric', not 'resolution'"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'hyperband'\nkeep_fraction = 0.5\n",
     r"belong to pruner.kind = 'geometric' or 'percentile', not 'hyperband' \(which reads no other key\)"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'geometric'\nmode = 'synchronous'\n",
     "pruner.mode = 'synchronous' needs pruner.kind = 'resolution'"),
    ("[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'sometimes'\n", "pruner.kind must be one of resolution"),
    ("this is = = not toml", "not valid TOML"),
])
def test_spec_errors_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=match) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_the_default_pruner_is_the_resolution_rule_and_its_settings_override_the_shipped_ones(tmp_path):
    from earlyexit.pruning import DEFAULT_RULE, ResolutionPruner
    from earlyexit.study._runner import make_pruner

    plain = tmp_path / "plain.toml"
    plain.write_text("[search.grid]\nlearning_rate = [1e-3]\n[train]\nmax_steps = 200\n")
    spec = load_spec(plain)
    assert spec.pruner.kind == "resolution" and spec.pruner.rule() == DEFAULT_RULE
    pruner = make_pruner(spec, 200)
    assert isinstance(pruner, ResolutionPruner) and pruner.decision_steps == (10, 20, 50, 100)
    own = tmp_path / "own.toml"
    own.write_text("[search.grid]\nlearning_rate = [1e-3]\n[train]\nmax_steps = 200\n"
                   "[pruner]\nrungs = [0.2, 0.4]\nkeep_top = 2\nz = 2.0\neta = 3.0\nprogress_match = true\n")
    rule = load_spec(own).pruner.rule()
    assert (rule.rungs, rule.keep, rule.z, rule.eta, rule.progress_match) == ((0.2, 0.4), 2, 2.0, 3.0, True)
    assert make_pruner(load_spec(own), 200).decision_steps == (40, 80)


def test_missing_spec_file_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_interrupted_study_resumes(tmp_path):
    path = _spec(tmp_path, n_trials=3)
    storage = f"sqlite:///{tmp_path}/s.db"
    spec = load_spec(path)
    seen = []
    study = run_study(spec, storage=storage, n_trials=2, show_progress=False,
                      callbacks=[lambda s, t: seen.append(t.number)])
    first = [(t.number, t.params, t.state) for t in study.trials]
    assert len(first) == 2 and seen == [0, 1]  # the caller's callbacks see each finished trial
    # The same command again continues the study to its target.
    study = run_study(spec, storage=storage, show_progress=False)
    states = [t.state for t in study.trials]
    assert len(states) == 3
    assert [(t.number, t.params, t.state) for t in study.trials[:2]] == first
    assert sorted(t.params["learning_rate"] for t in study.trials) == [1e-4, 3e-4, 1e-3]  # grid, no repeats
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:
        assert t.user_attrs["steps"] == 4 and "ranked" in t.user_attrs["pruned_reason"]
    for t in study.trials:
        # probes.measure = "pruner": the rank rule reads the loss at step 4, so that is all a trial measures
        # (no other probe, no dev evaluation, no checkpoint at 0 or 8).
        assert "score@4" in t.user_attrs and "probes@0" not in t.user_attrs and "probes@8" not in t.user_attrs
        assert set(t.user_attrs["probes@4"]) == {"loss"} and t.user_attrs["dev_accuracy@4"] == "nan"
        # The rank rule ranks by its score (minus the loss); what the trial reports is on the metric's scale:
        # the dev accuracy, not evaluated at this step (the rule reads only the loss), so NaN.
        assert t.user_attrs["score@4"] == -t.user_attrs["probes@4"]["loss"]
        assert math.isnan(t.intermediate_values[4])
    # Nothing left to do: a third run adds no trials.
    assert len(run_study(spec, storage=storage, show_progress=False).trials) == 3


def test_diverging_trial_is_pruned_and_the_study_goes_on(tmp_path, capsys):
    path = _spec(tmp_path, n_trials=2, grid="[1e30, 1e-3]", extra="")
    text = path.read_text().replace("n_startup_trials = 1", "n_startup_trials = 5")
    path.write_text(text)
    rc = main(["run", str(path), "--storage", f"sqlite:///{tmp_path}/d.db", "--no-progress", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["complete"] == 1 and out["pruned"] == 1
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/d.db")
    diverged = [t for t in study.trials if t.params["learning_rate"] == 1e30][0]
    assert diverged.state == optuna.trial.TrialState.PRUNED
    assert diverged.user_attrs["pruned_reason"] == "diverged"
    assert out["best"]["params"]["learning_rate"] == 1e-3


def test_study_with_a_fitted_scorer_reports_predicted_accuracy(tmp_path):
    from synthetic_sweep import write_synthetic_sweep

    from earlyexit.replay import runs_of
    from earlyexit.replay import fit_on_runs
    from earlyexit.scoring import save_scorer
    from earlyexit.sweeps import load

    sweep = load(write_synthetic_sweep(tmp_path / "syn"))
    scorer = fit_on_runs(runs_of(sweep), sweep.probes, sweep.probe_steps, [10])
    save_scorer(scorer, tmp_path / "s.joblib")
    text = TINY.format(n_trials=2, grid="[1e-3, 3e-4]").replace('scorer = "rank"\n', "").replace(
        'steps = [0, 4, 8]\nnames = ["loss", "gradient_norm", "critical_sharpness"]',
        'steps = [0, 10]\nnames = ["loss", "gradient_norm", "hessian_trace"]').replace(
        "decision_steps = [4]", f"decision_steps = [10]\nscorer = \"{tmp_path / 's.joblib'}\"\nallow_pickle = true").replace(
        "max_steps = 10", "max_steps = 12")
    path = tmp_path / "fitted.toml"
    path.write_text(text)
    study = run_study(load_spec(path), storage=f"sqlite:///{tmp_path}/f.db", show_progress=False)
    for t in study.trials:
        assert t.intermediate_values[10] == pytest.approx(scorer.score(
            {s: {**t.user_attrs[f"probes@{s}"], "dev_accuracy": t.user_attrs[f"dev_accuracy@{s}"]}
             for s in (0, 10)}, 10), rel=1e-6)
        assert t.user_attrs["dev_metric@10"] == t.user_attrs["dev_accuracy@10"]  # accuracy is the metric here
    # A scorer that needs a probe the study does not measure is refused before any training.
    path.write_text(text.replace('"hessian_trace"]', '"sam_sharpness"]'))
    with pytest.raises(ValueError, match=r"needs probes \['hessian_trace'\]"):
        run_study(load_spec(path), storage=f"sqlite:///{tmp_path}/g.db", show_progress=False)


def test_study_with_a_transfer_scorer_reports_a_predicted_metric_and_its_lr_progress(tmp_path):
    from earlyexit.scoring import save_scorer
    from earlyexit.scoring._transfer import Rule, TransferScorer

    ctx = {"uniform_loss": 0.69, "lr_progress": 0.5, "learning_rate": 1e-4}
    # Dev losses around a uniform guess's, as a tiny model's are at step 10 (inside the scorer's range).
    signatures = [{10: {"dev_metric": x, "dev_loss": 1.0 - x / 2, **ctx}} for x in (0.5, 0.6, 0.7, 0.8)]
    scorer = TransferScorer(("dev",), Rule((10,), keep_top=1, min_lr_progress=0.02)).fit(
        signatures, [0.55, 0.65, 0.75, 0.85])
    save_scorer(scorer, tmp_path / "t.joblib")
    text = TINY.format(n_trials=3, grid="[1e-3, 3e-4, 1e-4]").replace('scorer = "rank"\n', "").replace(
        'steps = [0, 4, 8]', 'steps = [0, 10]').replace(
        "decision_steps = [4]", f"decision_steps = [10]\nscorer = \"{tmp_path / 't.joblib'}\"\nallow_pickle = true\n"
                                "min_lr_progress = 0.02").replace("max_steps = 10", "max_steps = 12").replace(
        "n_startup_trials = 1", "n_startup_trials = 0")
    path = tmp_path / "transfer.toml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.pruner.min_lr_progress == 0.02
    study = run_study(spec, storage=f"sqlite:///{tmp_path}/t.db", show_progress=False)
    for t in study.trials:
        # Warmup-free linear decay over 12 steps: 10 updates spent (12+11+...+3)/78 of the learning rate.
        assert t.user_attrs["lr_progress@10"] == pytest.approx(75 / 78)
        value = t.intermediate_values[10]
        assert 0.0 <= value <= 1.0 and value == t.user_attrs["score@10"]  # a predicted accuracy
    # A pruned trial's last report is on the metric's scale too (what a dashboard draws beside the finals).
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(0.0 <= t.intermediate_values[max(t.intermediate_values)] <= 1.0 for t in pruned)


def test_a_trial_outside_the_scorers_range_is_kept_and_its_report_stays_in_the_metrics_range(tmp_path, capsys):
    from earlyexit.scoring import save_scorer
    from earlyexit.scoring._transfer import Rule, TransferScorer

    # Fitted where the dev loss was ten times a uniform guess's: any real run is far outside, and the
    # steep fit extrapolates past accuracy 1 or below 0.
    ctx = {"uniform_loss": 0.69, "lr_progress": 0.5, "learning_rate": 1e-4}
    signatures = [{10: {"dev_metric": 0.5, "dev_loss": 6.9 + x / 100, **ctx}} for x in range(4)]
    scorer = TransferScorer(("dev",), Rule((10,))).fit(signatures, [0.5, 0.6, 0.7, 0.8])
    save_scorer(scorer, tmp_path / "t.joblib.json")
    text = TINY.format(n_trials=3, grid="[1e-3, 3e-4, 1e-4]").replace('scorer = "rank"\n', "").replace(
        'steps = [0, 4, 8]', 'steps = [0, 10]').replace(
        "decision_steps = [4]", f"decision_steps = [10]\nscorer = \"{tmp_path / 't.joblib.json'}\"").replace(
        "n_startup_trials = 1", "n_startup_trials = 0").replace("max_steps = 10", "max_steps = 12")
    path = tmp_path / "outside.toml"
    path.write_text(text)
    study = run_study(load_spec(path), storage=f"sqlite:///{tmp_path}/o.db", show_progress=False)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)  # none judged
    for t in study.trials:
        assert "dev_loss_over_uniform_loss" in t.user_attrs["out_of_range@10"]
        assert 0.0 <= t.intermediate_values[10] <= 1.0
    assert "outside the range the scorer was fitted on" in capsys.readouterr().err


def test_keep_fraction_replaces_keep_top(tmp_path):
    base = "[search.grid]\nlearning_rate = [1e-3]\n[pruner]\nkind = 'geometric'\n"
    path = tmp_path / "f.toml"
    path.write_text(base + "keep_fraction = 0.25\n")
    spec = load_spec(path)
    assert spec.pruner.keep_top is None and spec.pruner.keep_fraction == 0.25
    path.write_text(base + "keep_fraction = 0.25\nkeep_top = 2\n")
    with pytest.raises(SpecError, match="not both"):
        load_spec(path)


def test_storage_that_does_not_connect_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EARLYEXIT_STORAGE_PATIENCE", "0")  # a server that is down is waited for; not here
    path = _spec(tmp_path)
    rc = main(["run", str(path), "--storage", "postgresql://nobody@127.0.0.1:1/none", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "postgresql://nobody@127.0.0.1:1/none" in err and "does not connect" in err


def test_failed_probes_do_not_prune(tmp_path, monkeypatch):
    import earlyexit.training._loop as loop

    def broken(*args, **kwargs):
        raise RuntimeError("double backward is not supported by this model")

    monkeypatch.setattr(loop, "measure", broken)
    study = run_study(load_spec(_spec(tmp_path)), storage=f"sqlite:///{tmp_path}/p.db", show_progress=False)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert all("double backward" in t.user_attrs["probe_error@4"] for t in study.trials)


def test_bad_model_or_data_path_exits_2_and_writes_nothing(tmp_path, capsys):
    path = _spec(tmp_path, extra='\n[model]\nname = "./no/such/model"\n')
    db = tmp_path / "never.db"
    assert main(["run", str(path), "--storage", f"sqlite:///{db}", "--no-progress"]) == 2
    assert "./no/such/model" in capsys.readouterr().err and not db.exists()
    path = _spec(tmp_path, extra='\n[data]\n')  # duplicate table: invalid TOML
    assert main(["run", str(path), "--storage", f"sqlite:///{db}"]) == 2
    assert "not valid TOML" in capsys.readouterr().err and not db.exists()
    text = TINY.format(n_trials=1, grid="[1e-3]").replace("group_by_length = true",
                                                          'group_by_length = true\npath = "./no/data"')
    path.write_text(text)
    assert main(["run", str(path), "--storage", f"sqlite:///{db}"]) == 2
    assert "./no/data" in capsys.readouterr().err and not db.exists()


def test_screen_mode_trains_every_config_to_the_prefix_then_the_top_k(tmp_path):
    path = _spec(tmp_path, n_trials=3).read_text().replace("n_startup_trials = 1", 'n_startup_trials = 1\nmode = "screen"')
    (tmp_path / "screen.toml").write_text(path)
    spec = load_spec(tmp_path / "screen.toml")
    study = run_study(spec, storage=f"sqlite:///{tmp_path}/scr.db", show_progress=False)
    screened = [t for t in study.trials if t.user_attrs.get("earlyexit:phase") == "screen"]
    finals = [t for t in study.trials if t.user_attrs.get("earlyexit:phase") == "final"]
    assert len(screened) == 3 and all(t.state == optuna.trial.TrialState.PRUNED for t in screened)
    assert all(t.user_attrs["steps"] == 4 and t.user_attrs["pruned_reason"] == "screened at step 4" for t in screened)
    best = max(screened, key=lambda t: t.user_attrs["score@4"])
    assert len(finals) == 1 and finals[0].state == optuna.trial.TrialState.COMPLETE
    assert finals[0].params == best.params and finals[0].user_attrs["steps"] == 10
    # Running it again changes nothing.
    again = run_study(spec, storage=f"sqlite:///{tmp_path}/scr.db", show_progress=False)
    assert len(again.trials) == 4


def test_measurement_plan_follows_the_pruner(tmp_path):
    from earlyexit.scoring import FeatureSchema, FittedScorer
    from earlyexit.study._runner import make_scorer, measurement_plan

    spec = load_spec(_spec(tmp_path))
    assert measurement_plan(spec, make_scorer(spec)) == {4: ("loss",)}
    path = _spec(tmp_path).parent / "all.toml"
    path.write_text(_spec(tmp_path).read_text().replace("batch_size = 4\n", "batch_size = 4\nmeasure = \"all\"\n"))
    assert measurement_plan(load_spec(path), None) is None
    text = _spec(tmp_path).read_text()
    path.write_text(text[: text.index("[pruner]")] + '[pruner]\nkind = "median"\nn_startup_trials = 1\n')
    median = load_spec(path)
    assert measurement_plan(median, None) == {s: DEV_METRICS for s in (0, 4, 8)}  # one dev evaluation each
    path.write_text(_spec(tmp_path).read_text().replace("batch_size = 4\n", "batch_size = 4\nmeasure = \"some\"\n"))
    with pytest.raises(SpecError, match="probes.measure must be"):
        load_spec(path)
    # A fitted scorer: each decision step reads its prefix's schema (largest prefix at or below it).
    scorer = FittedScorer({50: FeatureSchema(("loss",), (50,)),
                           100: FeatureSchema(("gradient_norm", "dev_accuracy"), (50, 100))}, {})
    assert scorer.reads([50, 200]) == {50: ("loss", "gradient_norm", "dev_accuracy"),
                                       100: ("gradient_norm", "dev_accuracy"), 200: ()}
    assert scorer.reads([75]) == {50: ("loss",), 75: ()}


def test_default_threads_share_the_free_cores_among_parallel_trials(monkeypatch):
    import os

    from earlyexit.study import default_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 3.0))
    assert default_threads(1) == 5 and default_threads(2) == 2 and default_threads(8) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 20.0, 20.0))
    assert default_threads(1) == 1  # a fully busy machine still gets one thread


def test_the_summary_says_what_pruning_saved(tmp_path, capsys):
    spec, db = _spec(tmp_path), f"sqlite:///{tmp_path}/saved.db"
    assert main(["run", str(spec), "--no-progress", "--storage", db]) == 0
    assert "against 30 to train every finished trial to the end: pruning saved" in capsys.readouterr().out
    assert main(["run", str(spec), "--no-progress", "--storage", db, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["full_training_steps"] == 30
    assert result["compute_saved"] == pytest.approx(1 - result["compute_steps"] / 30)
    assert result["pruned"] >= 1 and result["compute_saved"] > 0


def test_a_transfer_scorers_rule_fills_in_what_the_spec_leaves_out(tmp_path):
    from earlyexit.scoring._transfer import Rule, TransferScorer
    from earlyexit.study._runner import with_scorer_rule

    scorer = TransferScorer(("dev",), Rule((4, 400), keep_top=2, min_lr_progress=0.05, dev_ties=True))
    bare = tmp_path / "bare.toml"
    bare.write_text(TINY.format(n_trials=2, grid="[1e-3]").replace("decision_steps = [4]\nkeep_top = 1\n", "")
                    .replace('scorer = "rank"\n', ""))
    resolved = with_scorer_rule(load_spec(bare), scorer)
    # Rungs that are probe steps of the spec (4, not 400), the rule's keep-top and guard.
    assert resolved.pruner.decision_steps == (4,) and resolved.pruner.keep_top == 2
    assert resolved.pruner.min_lr_progress == 0.05 and resolved.pruner.dev_ties
    untied = tmp_path / "untied.toml"
    untied.write_text(bare.read_text().replace("[pruner]\n", "[pruner]\ndev_ties = false\n"))
    assert not with_scorer_rule(load_spec(untied), scorer).pruner.dev_ties
    # What the spec sets stays; the rank rule has no rule to give.
    explicit = with_scorer_rule(load_spec(_spec(tmp_path)), scorer)
    assert explicit.pruner.decision_steps == (4,) and explicit.pruner.keep_top == 1
    assert explicit.pruner.min_lr_progress == 0.05
    # A scorer without a rule leaves the default decision step (50), not a probe step here: a clear error.
    from earlyexit.scoring import ProbeRankScorer

    with pytest.raises(SpecError, match=r"decision_steps \[50\] are not probe steps"):
        with_scorer_rule(load_spec(bare), ProbeRankScorer())
    # A rule in fractions of the budget: placed on the probe steps (0, 4, 8) of a 10-step budget, with its
    # margin at each decision step; the live pruner decides with them.
    budget_rule = TransferScorer(("dev",), Rule((0.4, 0.8), keep_top=2, margin_quantile=0.5, unit="budget"))
    budget_rule.estimators_ = {0.4: None, 0.8: None}
    budget_rule.margins_ = {0.4: 0.01, 0.8: 0.002}
    placed = with_scorer_rule(load_spec(bare), budget_rule, max_steps=10)
    assert placed.pruner.decision_steps == (4, 8) and placed.pruner.margin == {4: 0.01, 8: 0.002}
    from earlyexit.study._runner import make_pruner

    pruner = make_pruner(placed, 10)
    assert pruner.margin_at(4) == 0.01 and pruner.margin_at(8) == 0.002 and pruner.margin_at(6) == 0
    with pytest.raises(ValueError, match="needs the study's budget"):
        with_scorer_rule(load_spec(bare), budget_rule)


def test_a_rule_in_fractions_of_the_budget_is_placed_in_the_studys_budget(tmp_path):
    from earlyexit.scoring import save_scorer
    from earlyexit.scoring._transfer import Rule, TransferScorer

    ctx = {"uniform_loss": 0.69, "lr_progress": 0.5, "learning_rate": 1e-4, "budget_steps": 10.0}
    signatures = [{4: {"dev_metric": x, "dev_loss": 1.0 - x / 2, **ctx}, 8: {"dev_metric": x, "dev_loss": 1.0 - x / 2,
                                                                            **ctx}} for x in (0.5, 0.6, 0.7, 0.8)]
    scorer = TransferScorer(("dev",), Rule((0.5, 0.9), keep_top=1, unit="budget")).fit(
        signatures, [0.55, 0.65, 0.75, 0.85])
    save_scorer(scorer, tmp_path / "b.json")
    # The spec leaves the decision steps and keep-top out: the rule's rungs land on probe steps 4 (half of
    # the 10-step budget is 5) and 8 (9).
    text = TINY.format(n_trials=2, grid="[1e-3, 1e-4]").replace("decision_steps = [4]\nkeep_top = 1\n", "").replace(
        'scorer = "rank"', f'scorer = "{tmp_path / "b.json"}"').replace("n_startup_trials = 1", "n_startup_trials = 0")
    path = tmp_path / "budget.toml"
    path.write_text(text)
    study = run_study(load_spec(path), storage=f"sqlite:///{tmp_path}/b.db", show_progress=False)
    assert study.pruner.decision_steps == (4, 8)
    first = study.trials[0]
    assert set(first.intermediate_values) == {4, 8} and 0 <= first.intermediate_values[4] <= 1


EASY_SPEC = """
[study]
name = "easy"
n_trials = 4
seed = {seed}
sampler = "grid"
[model]
name = "earlyexit:tiny-bert"
[data]
train = "{train}"
dev = "{dev}"
max_length = 16
[train]
batch_size = 8
max_steps = 24
[search.grid]
learning_rate = [3e-3, 1e-7, 2e-3, 2e-7]
"""


def test_a_study_with_the_default_pruner_prunes_only_on_leads_the_dev_set_resolves(tmp_path):
    """`earlyexit run`'s default: per-example records stored, rungs on the budget, pruned only behind a resolved lead."""
    from earlyexit.pruning import DEFAULT_RULE, lead_resolved, Reading
    from earlyexit.sweeps._format import decode_classes

    rows = [(f"{w} {n}", int(w == "good")) for n in ("film", "plot", "cast", "score") for w in ("good", "bad")] * 8
    for split in ("train", "dev"):
        (tmp_path / f"{split}.csv").write_text("sentence,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    spec_path = tmp_path / "easy.toml"
    spec_path.write_text(EASY_SPEC.format(seed=0, train=tmp_path / "train.csv", dev=tmp_path / "dev.csv"))
    study = run_study(load_spec(spec_path), storage=f"sqlite:///{tmp_path}/e.db", show_progress=False)
    labels = decode_classes(study.user_attrs["earlyexit:dev_labels"])
    assert len(labels) == len(rows)
    rungs = DEFAULT_RULE.rung_steps(24)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "a learner and a non-learner of the same study: the non-learner is pruned once a learner leads"
    for t in study.trials:
        assert set(t.intermediate_values) <= set(rungs)  # a dev evaluation at the rungs only
        # what the bound on a trial's final reads ([pruner] bound = true): dev loss, peak rate, warmup
        assert all(f"dev_loss@{s}" in t.user_attrs for s in t.intermediate_values)
        assert t.user_attrs["earlyexit:learning_rate"] == t.params["learning_rate"]
        assert t.user_attrs["earlyexit:warmup_ratio"] == 0.0
    for t in pruned:
        step = t.last_step
        assert t.params["learning_rate"] < 1e-6 and "SE (paired)" in t.user_attrs["pruned_reason"]
        mine = Reading(t.intermediate_values[step], np_array(t.user_attrs[f"dev_predictions@{step}"]))
        leaders = [o for o in study.trials if o.number < t.number and step in o.intermediate_values
                   and lead_resolved(Reading(o.intermediate_values[step],
                                             np_array(o.user_attrs[f"dev_predictions@{step}"])),
                                     mine, n=len(labels), z=DEFAULT_RULE.z, labels=np_array(labels))[0]]
        assert len(leaders) >= DEFAULT_RULE.keep


def np_array(values):
    import numpy as np

    from earlyexit.sweeps._format import decode_classes

    return np.asarray(decode_classes(values) if isinstance(values, str) else values, dtype=np.int16)


def test_a_synchronous_study_judges_each_rung_with_its_whole_cohort(tmp_path):
    """`mode = "synchronous"`: every trial at once, each judged at a rung against all the cohort's readings there."""
    from earlyexit.pruning import DEFAULT_RULE, lead_resolved, Reading
    from earlyexit.sweeps._format import decode_classes

    rows = [(f"{w} {n}", int(w == "good")) for n in ("film", "plot", "cast", "score") for w in ("good", "bad")] * 8
    for split in ("train", "dev"):
        (tmp_path / f"{split}.csv").write_text("sentence,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    spec_path = tmp_path / "sync.toml"
    spec_path.write_text(EASY_SPEC.format(seed=0, train=tmp_path / "train.csv", dev=tmp_path / "dev.csv")
                         + '[pruner]\nmode = "synchronous"\n')
    study = run_study(load_spec(spec_path), storage=f"sqlite:///{tmp_path}/s.db", show_progress=False)
    labels = np_array(decode_classes(study.user_attrs["earlyexit:dev_labels"]))
    assert len(study.trials) == 4 and len({t.user_attrs["earlyexit:cohort"] for t in study.trials}) == 1
    assert sorted(t.params["learning_rate"] for t in study.trials) == [1e-7, 2e-7, 2e-3, 3e-3]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    # Judged together, both non-learners are pruned whatever order the trials started in (live, a non-learner
    # that reports before any learner has nothing to be judged against); a learner may be too, where the other
    # leads it by more than one standard error (trials in threads share torch's random state: not bit-reproducible).
    assert {1e-7, 2e-7} <= {t.params["learning_rate"] for t in pruned}
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for t in pruned:
        step = t.last_step
        assert "judged with its cohort" in t.user_attrs["pruned_reason"]
        alive = [o for o in study.trials if o.number != t.number
                 and (o.state == optuna.trial.TrialState.COMPLETE or o.last_step >= step)]
        assert all(step in o.intermediate_values for o in alive)  # the whole cohort had reported there
        mine = Reading(t.intermediate_values[step], np_array(t.user_attrs[f"dev_predictions@{step}"]))
        leaders = [o for o in alive if lead_resolved(Reading(o.intermediate_values[step],
                                                             np_array(o.user_attrs[f"dev_predictions@{step}"])),
                                                     mine, n=len(labels), z=DEFAULT_RULE.z, labels=labels)[0]]
        assert len(leaders) >= DEFAULT_RULE.keep


@pytest.mark.parametrize("pruner, message", [('kind = "median"', "needs pruner.kind"),
                                             ("progress_match = true", "goes with the live rule")])
def test_synchronous_mode_needs_the_resolution_pruner_without_progress_matching(tmp_path, pruner, message):
    spec_path = tmp_path / "bad.toml"
    spec_path.write_text(EASY_SPEC.format(seed=0, train=tmp_path / "t.csv", dev=tmp_path / "d.csv")
                         + f'[pruner]\n{pruner}\nmode = "synchronous"\n')
    with pytest.raises(SpecError, match=message):
        load_spec(spec_path)


def test_the_bound_option_loads_the_package_bound_and_goes_with_the_live_rule_only(tmp_path):
    from earlyexit.scoring import FinalInterval, ScorerFileError, load_bound
    from earlyexit.study._runner import make_pruner

    base = EASY_SPEC.format(seed=0, train=tmp_path / "t.csv", dev=tmp_path / "d.csv")
    (tmp_path / "ok.toml").write_text(base + "[pruner]\nbound = true\n")
    pruner = make_pruner(load_spec(tmp_path / "ok.toml"), 24)
    assert isinstance(pruner.bound, FinalInterval) and pruner.coverage == 0.8
    (tmp_path / "bad.toml").write_text(base + '[pruner]\nbound = true\nmode = "synchronous"\n')
    with pytest.raises(SpecError, match="bound"):
        load_spec(tmp_path / "bad.toml")
    with pytest.raises(ScorerFileError, match="no such bound file"):
        load_bound(tmp_path / "missing.joblib")
    (tmp_path / "foreign.joblib").write_text("not a bound")
    with pytest.raises(ScorerFileError, match="not a bound file"):
        load_bound(tmp_path / "foreign.joblib", allow_pickle=True)


def test_an_sqlite_url_whose_folder_is_a_file_fails_with_one_line(tmp_path):
    from earlyexit.study import make_storage

    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="cannot make the database's folder") as err:
        make_storage(f"sqlite:///{tmp_path}/a-file/study.db")
    assert "\n" not in str(err.value)
