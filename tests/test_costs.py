"""Probe costs: shared parts are paid once, the replay charges exactly the probes a policy uses."""

import json
import math

import numpy as np
import pytest

from earlyexit.cli import main
from earlyexit.replay import replay
from earlyexit.sweeps import ProbeCosts, SweepFormatError, load, write_probe_costs

from synthetic_sweep import STEPS, write_synthetic_sweep

PARTS = {"forward": 0.3, "gradient": 1.0, "gradient_with_graph": 1.5, "sam": 0.25, "critical": 2.0,
         "lanczos": 6.0, "trace": 14.0, "dev_eval": 3.0}


def test_shared_parts_are_paid_once():
    costs = ProbeCosts(PARTS)
    assert costs.of([]) == 0.0 and costs.of(["dev_accuracy", "dev_loss"]) == pytest.approx(3.0)
    assert ProbeCosts({"forward": 0.3, "gradient": 1.0}).of(["dev_accuracy"]) == 0.0  # not measured: free
    assert costs.of(["loss"]) == pytest.approx(0.3)
    assert costs.of(["loss", "gradient_norm", "gradient_variance"]) == pytest.approx(1.0)
    assert costs.of(["gradient_norm", "sam_sharpness", "critical_sharpness"]) == pytest.approx(3.25)
    assert costs.of(["hessian_trace", "hessian_top_eigenvalue", "loss"]) == pytest.approx(21.5)
    assert costs.of(["hessian_trace"]) == pytest.approx(21.5)  # the trace deflates Lanczos's basis
    assert costs.of(["hessian_top_eigenvalue", "gradient_norm"]) == pytest.approx(7.5)
    assert costs.of(["hessian_trace", "critical_sharpness"]) == pytest.approx(23.5)


@pytest.mark.parametrize("parts, match", [
    ({"gradient": 1.0}, "lack part"),
    ({**PARTS, "sam": -1.0}, "non-negative"),
    ({**PARTS, "sam": math.nan}, "finite"),
    ({**PARTS, "teleport": 1.0}, "unknown probe-cost part"),
])
def test_bad_costs_are_refused(parts, match):
    with pytest.raises(ValueError, match=match):
        ProbeCosts(parts)


def test_a_probe_whose_part_was_not_measured_is_an_error():
    costs = ProbeCosts({"forward": 0.3, "gradient": 1.0})
    with pytest.raises(ValueError, match=r"no cost was measured for part\(s\) \['critical'\]"):
        costs.of(["critical_sharpness"])
    with pytest.raises(ValueError, match="no cost is known"):
        costs.of(["magic"])


@pytest.fixture(scope="module")
def costed(tmp_path_factory):
    path = write_synthetic_sweep(tmp_path_factory.mktemp("costed") / "syn")
    write_probe_costs(path, ProbeCosts(PARTS, {"command": "test"}))
    return path


def test_replay_charges_measured_probe_costs(costed):
    sweep = load(costed)
    assert sweep.probe_costs is not None
    out = replay(sweep, orders=2, prefix=50, keep_top=1, pareto=False)
    pol, proto = out["policies"], out["protocol"]
    runs = sweep.runs
    full = float(runs["steps"].sum())
    # loss_only: every run pays its steps to 50 plus the loss at the checkpoints 0, 10, 50;
    # the survivor trains on without probing past its decision step.
    per_seed = []
    for _, group in runs.groupby("seed"):
        steps_to_50 = sum(min(50, s) for s in group["steps"])
        checkpoints = sum(sum(1 for c in STEPS if c <= min(50, s)) for s in group["steps"])
        per_seed.append((steps_to_50, checkpoints, float(group["steps"].sum())))
    assert proto["probe_cost_steps"]["loss_only"] == pytest.approx(0.3)
    assert proto["probe_cost_steps"]["prefix_accuracy"] == pytest.approx(3.0)
    assert proto["probe_cost_steps"]["optuna pruners"] == pytest.approx(3.0)
    # earlyexit_all reads every probe and a dev evaluation at every checkpoint; earlyexit reads what its
    # cost-aware fit chose, per held-out seed.
    assert proto["probes"]["earlyexit_all"] == ["loss", "gradient_norm", "hessian_trace", "dev_accuracy"]
    assert proto["probe_cost_steps"]["earlyexit_all"] == pytest.approx(24.5)
    chosen = proto["feature_sets"]["earlyexit"]
    assert set(chosen) == {"0", "1", "2"}
    for c in chosen.values():
        assert c["feature_set"] and c["steps"][-1] == 50 and set(c["steps"]) <= {0, 10, 50}
    # prefix_accuracy pays its steps to 50 plus one dev evaluation per config (none for diverged runs
    # that stopped before 50), and its survivor trains on.
    cps = sweep.checkpoints
    used = 0.0
    for _, group in runs.groupby("seed"):
        at50 = cps[(cps["step"] == 50) & cps["run_id"].isin(group["run_id"])].set_index("run_id")["dev_accuracy"]
        trained = []
        for run_id in at50.sort_values(ascending=False, kind="stable").index:
            trained.append(run_id)
            if group.set_index("run_id").loc[run_id, "status"] == "completed":
                break
        for _, r in group.iterrows():
            evals = 3.0 if r["steps"] >= 50 else 0.0
            used += (r["steps"] if r["run_id"] in trained else min(50, r["steps"])) + evals
    assert 1 - pol["prefix_accuracy"]["compute_saved"] == pytest.approx(used / full, rel=1e-6)
    assert full == sum(p[2] for p in per_seed)
    assert pol["prefix_accuracy"]["compute_saved"] > pol["earlyexit_all"]["compute_saved"]


def test_cost_aware_and_read_everything_differ_only_by_what_they_read(tmp_path):
    # No run diverges and every run reaches step 50, so every survivor trains to the same end: the two
    # scorer policies differ in compute only by their probes. Each held-out seed pays its own scorer's choice.
    path = write_synthetic_sweep(tmp_path / "syn", diverge=False)
    write_probe_costs(path, ProbeCosts(PARTS))
    out = replay(load(path), orders=2, prefix=50, keep_top=1, pareto=False)
    pol, chosen = out["policies"], out["protocol"]["feature_sets"]["earlyexit"]
    configs, full = 8, 8 * 1000
    costs = ProbeCosts(PARTS)
    diff = sum(configs * (3 * 24.5 - len(c["steps"]) * costs.of(c["names"])) for c in chosen.values())
    diff /= len(chosen) * full
    assert pol["earlyexit"]["compute_saved"] - pol["earlyexit_all"]["compute_saved"] == pytest.approx(diff, rel=1e-6)


def test_replay_without_costs_says_so(tmp_path):
    sweep = load(write_synthetic_sweep(tmp_path / "syn"))
    out = replay(sweep, orders=1, prefix=50, pareto=False)
    assert "no probe_costs.json" in out["protocol"]["probe_cost"]
    assert "earlyexit_all" not in out["policies"]  # nothing to be cost-aware with
    assert all(c["steps"] == [0, 10, 50] for c in out["protocol"]["feature_sets"]["earlyexit"].values())


def test_broken_cost_file_names_itself(costed, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(costed, copy)
    (copy / "probe_costs.json").write_text(json.dumps({"parts": {"gradient": 1.0}}))
    with pytest.raises(SweepFormatError, match="probe_costs.json"):
        load(copy)


def test_bench_spec_writes_costs_the_loader_reads(tmp_path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text("""
[study]
name = "tiny"
sampler = "grid"
[data]
max_length = 32
[train]
batch_size = 8
max_steps = 8
[probes]
steps = [0, 2, 4, 6]
names = ["loss", "gradient_norm", "sam_sharpness", "hessian_trace", "critical_sharpness"]
batches = 2
batch_size = 4
[search.grid]
learning_rate = [1e-3]
[pruner]
kind = "none"
""")
    assert main(["bench", "probes", "--spec", str(spec), "--until", "1"]) == 2
    assert "at least two probe steps" in capsys.readouterr().err
    assert main(["bench", "probes", "--spec", str(spec), "--write", "--until", "4", "--json"]) == 0
    costs = json.loads(capsys.readouterr().out)
    assert set(costs["parts"]) == {"forward", "gradient", "gradient_with_graph", "sam", "critical", "lanczos", "dev_eval",
                                   "trace"}
    assert all(v > 0 for v in costs["parts"].values())
    saved = json.loads((tmp_path / "tiny" / "probe_costs.json").read_text())
    assert saved["parts"] == costs["parts"] and saved["provenance"]["probe_steps"] == [0, 2, 4]


def test_fit_on_chosen_probes_only(costed, tmp_path, capsys):
    from earlyexit.scoring import load_scorer

    out = tmp_path / "cheap.joblib"
    assert main(["fit", str(costed), "-o", str(out), "--prefixes", "50", "--no-hessian", "--all-features", "--json"]) == 0
    capsys.readouterr()
    assert load_scorer(out, allow_pickle=True).names == ("loss", "gradient_norm", "dev_accuracy")
    assert main(["fit", str(costed), "-o", str(out), "--prefixes", "50", "--probes", "loss", "--all-features"]) == 0
    assert load_scorer(out, allow_pickle=True).names == ("loss", "dev_accuracy")
    assert main(["fit", str(costed), "-o", str(out), "--probes", "hessian_top_eigenvalue"]) == 2
    assert "not measured by every sweep" in capsys.readouterr().err


def test_a_seed_still_being_logged_is_not_held_out(tmp_path, capsys):
    path = write_synthetic_sweep(tmp_path / "syn", seeds=(0, 1, 2, 3))
    lines = (path / "runs.csv").read_text().splitlines(keepends=True)
    (path / "runs.csv").write_text("".join(lines[:-5]))  # seed 3: 3 of 8 runs logged so far
    gone = {line.split(",")[0] for line in lines[-5:]}
    cps = (path / "checkpoints.csv").read_text().splitlines(keepends=True)
    (path / "checkpoints.csv").write_text("".join(c for c in cps if c.split(",")[0] not in gone))
    out = replay(load(path), orders=1, prefix=50, pareto=False)
    assert out["protocol"]["seeds"] == [0, 1, 2]
    assert out["protocol"]["incomplete_seeds_skipped"] == {3: 3}
    assert main(["replay", str(path), "--prefix", "50", "--orders", "1", "--no-pareto"]) == 0
    captured = capsys.readouterr()
    assert "seed 3 (3 of 8 runs)" in captured.out
    assert "27 of 32 planned runs logged" in captured.err  # the command says so before any figure


def test_fit_on_the_decision_step_alone(costed, tmp_path, capsys):
    from earlyexit.scoring import load_scorer

    out = tmp_path / "last.joblib"
    assert main(["fit", str(costed), "-o", str(out), "--prefixes", "50", "100", "--decision-step-only"]) == 0
    scorer = load_scorer(out, allow_pickle=True)
    assert {p: s.steps for p, s in scorer.schemas.items()} == {50: (50,), 100: (100,)}
    # Only the decision step's values matter: changing an earlier checkpoint changes nothing.
    sig = {0: {"loss": 0.7, "gradient_norm": 1.0, "hessian_trace": 5.0, "dev_accuracy": 0.5},
           50: {"loss": 0.5, "gradient_norm": 2.0, "hessian_trace": 9.0, "dev_accuracy": 0.6}}
    other = {**sig, 0: {k: v * 3 for k, v in sig[0].items()}}
    assert scorer.score(sig, 50) == scorer.score(other, 50)


def test_baselines_only_needs_no_scorer(tmp_path, capsys):
    path = write_synthetic_sweep(tmp_path / "one", seeds=(0,))  # one seed: nothing to fit a scorer on
    with pytest.raises(ValueError, match="at least 2 seeds"):
        replay(load(path), orders=1, prefix=50, pareto=False)
    out = replay(load(path), orders=2, prefix=50, pareto=True, baselines_only=True)
    assert not any(name.startswith("earlyexit") for name in out["policies"])
    assert {"prefix_accuracy", "loss_only", "median", "oracle"} <= set(out["policies"])
    assert set(out["pareto"]) == {"loss_only", "prefix_accuracy"}
    assert main(["replay", str(path), "--baselines-only", "--prefix", "50", "--orders", "1"]) == 0
    assert "baselines only" in capsys.readouterr().out


def test_screen_breaks_ties_by_arrival_order(tmp_path):
    from earlyexit.replay._simulate import runs_of, screen

    runs = [r for r in runs_of(load(write_synthetic_sweep(tmp_path / "syn", seeds=(0,)))) if not r.diverged]
    policy = screen(50, 1, lambda run, step: 0.5)  # every config ties
    kept = {policy(runs, order).kept for order in range(20)}
    assert len(kept) > 3  # not always the first config logged
    assert {policy(runs, 7).kept for _ in range(3)} == {policy(runs, 7).kept}  # an order is reproducible


def test_cost_aware_fit_reads_the_cheapest_set_that_is_as_good(tmp_path):
    """A cheap probe that reveals the final as well as an expensive one is chosen; a useless one is not."""
    from earlyexit.scoring import fit_scorer

    rng = np.random.default_rng(0)
    q = rng.random(60)
    finals = 0.8 + 0.05 * q
    groups = np.repeat([0, 1, 2], 20)
    cost = lambda names, steps: len(steps) * sum({"loss": 1.0, "hessian_trace": 10.0, "dev_accuracy": 5.0}[n]
                                                  for n in names)

    def signatures(loss_signal):
        return [{s: {"loss": (0.7 - 0.2 * qi if loss_signal else rng.normal()) + rng.normal(0, 1e-3),
                     "hessian_trace": 10 - 8 * qi + rng.normal(0, 1e-3), "dev_accuracy": 0.5}
                 for s in (0, 50)} for qi in q]

    kw = dict(names=["loss", "hessian_trace", "dev_accuracy"], steps=[0, 50], prefixes=[50], cost=cost)
    both = fit_scorer(signatures(True), finals, groups, **kw)
    assert both.schemas[50].names == ("loss",) and both.schemas[50].steps == (50,)
    assert both.report[50]["cost"] == 1.0 and both.report[50]["heldout_regret"] <= 0.001
    # Every model ranks this one linear feature perfectly: the simplest (the stiffest ridge) is kept.
    assert both.report[50]["chosen"] == "ridge(alpha=10)"
    only_trace = fit_scorer(signatures(False), finals, groups, **kw)
    assert "hessian_trace" in only_trace.schemas[50].names
    assert only_trace.report[50]["heldout_regret"] <= 0.001
    table = {r["feature_set"]: r for r in only_trace.report[50]["feature_sets"]}
    assert table["loss@at_prefix"]["regret"] > 0.005  # the loss is noise here: picking by it loses
    everything = fit_scorer(signatures(False), finals, groups, **{**kw, "cost": None})
    assert everything.schemas[50].names == ("loss", "hessian_trace", "dev_accuracy")


def test_topk_regret_averages_ties_over_orders():
    from earlyexit.scoring._select import topk_regret

    y, g = np.array([0.80, 0.85, 0.70, 0.90]), np.zeros(4)
    assert topk_regret(y, np.array([1.0, 2.0, 0.0, 3.0]), g) == 0.0
    assert topk_regret(y, np.ones(4), g) == pytest.approx(0.9 - y.mean())  # a random pick
    assert topk_regret(y, np.array([3.0, 1.0, 1.0, 0.0]), g, keep_top=2) == pytest.approx((0.05 + 0.10) / 2)
    assert topk_regret(y, np.array([1.0, 0.0, 2.0, 3.0]), np.array([0, 0, 1, 1])) == pytest.approx(0.025)


def test_frontier_is_the_most_saved_within_each_regret_budget():
    from earlyexit.replay import frontier

    result = {"pareto": {"a": [{"prefix": 50, "keep_top": 1, "compute_saved": 0.9, "regret": 0.004},
                               {"prefix": 100, "keep_top": 1, "compute_saved": 0.85, "regret": 0.0},
                               {"prefix": 100, "keep_top": 2, "compute_saved": 0.80, "regret": 0.0}]},
              "policies": {"a": {"compute_saved": 0.85, "regret": 0.0},
                           "median": {"compute_saved": 0.5, "regret": 0.002},
                           "none": {"compute_saved": None, "regret": None}}}
    f = frontier(result, budgets=(0.0, 0.005))
    assert f["a"]["0.0"] == {"compute_saved": 0.85, "regret": 0.0, "setting": "step 100, top 1"}
    assert f["a"]["0.005"]["compute_saved"] == 0.9
    assert f["median"]["0.0"] is None and f["median"]["0.005"]["setting"] == "as replayed"
    assert "none" not in f


def test_replay_markdown_tables(costed, capsys):
    assert main(["replay", str(costed), "--prefix", "50", "--orders", "1", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| policy | compute saved | regret (pts) | spearman |" in out
    assert "| policy | regret <= 0 pts | regret <= 0.1 pts | regret <= 0.5 pts | regret <= 1 pts |" in out
    assert "earlyexit reads, per held-out seed" in out
