"""The look-ahead: a predictor of each trial's final in every task's own units, plain data, with intervals
that hold on a new task; and a pruner that decides as the replay does, trial for trial."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from earlyexit.protocol import lookahead_row
from earlyexit.pruning import DEFAULT_RULE, LookaheadPruner
from earlyexit.pruning import fallback_margins
from earlyexit.replay._engine import HeldSet, Judge, OptunaJudge, live
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool, fit_predictor, lookahead_rows, predictions
from earlyexit.replay._simulate import Run
from earlyexit.scoring import ScorerFileError
from earlyexit.sweeps import ProbeCosts
from earlyexit.scoring._lookahead import FinalPredictor, load_predictor, save_predictor
from earlyexit.training._schedule import lr_progress

STEPS = (10, 25, 50, 100, 200, 400)
BUDGET = 800


def _held(task: str, seed: int, n_runs: int = 16, classes: int = 2, n_dev: int = 300) -> HeldSet:
    """A synthetic sweep: curves that rise after each run's warmup towards a final set by its learning rate."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_dev).astype(np.int16)
    constant = float(np.bincount(labels).max() / n_dev)
    runs, preds, warm, lrs = [], {}, {}, {}
    for i in range(n_runs):
        rid = f"{task}{i:02d}"
        lr = float(10 ** rng.uniform(-5, -3))
        warmup = float(rng.choice([0.0, 0.1, 0.3]))
        skill = constant + (1 - constant) * (0.9 - 0.6 * abs(math.log10(lr) + 3.7) / 1.3) * rng.uniform(0.9, 1.0)
        signature = {}
        for s in STEPS:
            progress = lr_progress(s, BUDGET, warmup)
            p = constant + (skill - constant) * min(1.0, 2.5 * progress) ** 0.7
            right = rng.random(n_dev) < p
            pred = np.where(right, labels, (labels + 1) % classes).astype(np.int16)
            signature[s] = {"dev_metric": float(right.mean()), "lr_progress": progress,
                            "dev_loss": math.log(classes) * (1.2 - 0.8 * float(right.mean()))}
            preds[(rid, s)] = pred
        final = skill + rng.normal(0, 0.005)
        runs.append(Run(rid, rid, 0, final, BUDGET, signature, {s: float(s) for s in STEPS}, float(BUDGET), False))
        warm[rid], lrs[rid] = warmup, lr
    return HeldSet(task, task, "accuracy", 0, tuple(runs), BUDGET, n_dev, labels, preds, {}, None, warm, STEPS,
                   lrs, classes, constant)


@pytest.fixture(scope="module")
def model():
    return fit_predictor([_held("a", 1), _held("b", 2), _held("c", 3, classes=3)], k=20)


def test_rows_are_in_each_tasks_own_units_and_no_task_is_out_of_range(model):
    six = _held("six", 7, classes=6)
    _, X, _ = lookahead_rows(six)
    assert np.isfinite(model.predict(X)).all()  # six classes, never seen: still a prediction
    row = lookahead_row(dev_metric=0.5, constant=0.5, lr_progress=0.1, step=10, budget=100, learning_rate=1e-4,
                        warmup_ratio=0.2, dev_loss=math.log(2), classes=2)
    assert row[0] == 0 and row[1] == pytest.approx(0.1) and row[3] == pytest.approx(0.5) and row[5] == 1.0


def test_intervals_cover_a_new_task_about_as_often_as_promised(model):
    new = _held("new", 11, n_runs=40)
    keys, X, shares = lookahead_rows(new, fitting=True)
    gain = model.predict(X)
    low, high = model.margins(0.8)
    truth = shares - X[:, 0]
    inside = ((truth >= gain + low) & (truth <= gain + high)).mean()
    assert 0.6 <= inside <= 1.0
    assert high > 0 > low
    early, late = model.margins(0.8, 0.05), model.margins(0.8, 0.6)
    assert early[1] - early[0] > late[1] - late[0]  # less sure early in training than late


def test_the_predictor_is_plain_json_and_refuses_what_is_not(model, tmp_path):
    path = tmp_path / "p.json"
    save_predictor(model, path)
    again = load_predictor(path)
    _, X, _ = lookahead_rows(_held("x", 5))
    assert np.allclose(again.predict(X), model.predict(X), atol=1e-5)
    assert again.margins(0.8) == pytest.approx(model.margins(0.8), abs=1e-5)
    blob = json.loads(path.read_text())
    blob["features"] = ["something", "else"]
    path.write_text(json.dumps(blob))
    with pytest.raises(ScorerFileError, match="not a final predictor file"):
        load_predictor(path)
    with pytest.raises(ScorerFileError, match="no such"):
        load_predictor(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="columns"):
        FinalPredictor().fit(np.zeros((3, 2)), np.zeros(3), ["a"] * 3)
    with pytest.raises(RuntimeError, match="not fitted"):
        FinalPredictor().predict(np.zeros((1, 6)))


@pytest.mark.parametrize("workers,refit", [(1, None), (3, None), (1, 0.25), (3, 0.25)])
def test_the_pruner_decides_as_the_replayed_lookahead_in_a_real_optuna_study(model, workers, refit):
    held = _held("live", 21, n_runs=14)
    gain = predictions(model, held)
    fallback = fallback_margins(model, "study+tasks", 0.8, BUDGET)
    pool = StudyPool(model, held, refit) if refit is not None else None
    pruned_any = False
    for order in range(3):
        replayed = live(held, LookaheadJudge(held, DEFAULT_RULE, gain, fallback=fallback, coverage=0.8, keep=1,
                                             pool=pool), order, workers)
        shipped = live(held, OptunaJudge(held, lambda: LookaheadPruner(model, coverage=0.8, keep=1,
                                                                       calibration="study+tasks", refit=refit,
                                                                       max_resource=BUDGET), order, attrs=True),
                       order, workers)
        assert shipped.kept == replayed.kept and shipped.compute_used == pytest.approx(replayed.compute_used)
        pruned_any |= replayed.compute_used < 0.9
    assert pruned_any  # the comparison says something: the look-ahead prunes here


def test_it_saves_more_than_the_rule_alone_and_loses_nothing_more(model):
    from earlyexit.replay._engine import RuleJudge

    held = _held("more", 31, n_runs=24)
    gain = predictions(model, held)
    fallback = fallback_margins(model, "study+tasks", 0.8, BUDGET)
    ahead = [live(held, LookaheadJudge(held, DEFAULT_RULE, gain, fallback=fallback), o) for o in range(4)]
    rule = [live(held, RuleJudge(held, DEFAULT_RULE), o) for o in range(4)]
    assert np.mean([r.compute_used for r in ahead]) < np.mean([r.compute_used for r in rule])
    # What it loses here the rule loses too (a synthetic winner the rule itself prunes in some orders).
    assert all(a.regret <= r.regret + 1e-9 for a, r in zip(ahead, rule))


def test_a_study_with_lookahead_runs_and_judges_at_warmup_ends(tmp_path):
    from conftest import tiny_spec
    from earlyexit.study import SpecError, load_spec, run_study
    from earlyexit.study._runner import make_pruner

    text = tiny_spec("la", grid={"learning_rate": [3e-3, 1e-5, 1e-3], "warmup_ratio": [0.25]}, max_steps=24,
                     steps=[0, 4], pruner={"kind": "resolution", "lookahead": True})
    (tmp_path / "la.toml").write_text(text)
    spec = load_spec(tmp_path / "la.toml")
    assert isinstance(make_pruner(spec, 24), LookaheadPruner)
    study = run_study(spec, storage=f"sqlite:///{tmp_path}/la.db", show_progress=False)
    assert len(study.trials) == 3
    for t in study.trials:  # evaluated at the rungs and at its warmup's end (step 6 of 24)
        assert 6 in t.intermediate_values or t.state.name == "PRUNED"
    (tmp_path / "bad.toml").write_text(text.replace("lookahead = true", "lookahead = true\nbound = true"))
    with pytest.raises(SpecError, match="lookahead"):
        load_spec(tmp_path / "bad.toml")
    # The study refit from a spec: the pruner reads the study's completed trials as neighbours.
    (tmp_path / "refit.toml").write_text(text.replace("lookahead = true", "lookahead = true\nrefit = 0.25"))
    refit = load_spec(tmp_path / "refit.toml")
    assert make_pruner(refit, 24).refit == 0.25
    study = run_study(refit, storage=f"sqlite:///{tmp_path}/refit.db", show_progress=False)
    assert len(study.trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    (tmp_path / "bad.toml").write_text(text.replace("lookahead = true", "refit = 0.25"))
    with pytest.raises(SpecError, match="refit goes with pruner.lookahead"):
        load_spec(tmp_path / "bad.toml")


def test_a_study_refit_reads_the_studys_own_trials_as_near_neighbours(model):
    held = _held("refit", 41, n_runs=6)
    _, X, finals = lookahead_rows(held)
    # No study readings: the prior's prediction.
    assert model.predict_in_study(X, np.empty((0, 6)), [], 0.25) == pytest.approx(model.predict(X))
    # The study's own readings, equal to the queries, with a gain none of the prior's readings has: at a small
    # shrink they are the nearest (distance 0) and 30 of the k = 20 neighbours: the median is theirs.
    study = np.repeat(X[:1], 30, axis=0)
    near = model.predict_in_study(X[:1], study, np.full(30, 5.0), 0.25)[0]
    assert near == pytest.approx(5.0)
    with pytest.raises(ValueError, match="refit"):
        from earlyexit.pruning import LookaheadPruner
        LookaheadPruner(model, refit=2.0)


def test_a_study_error_is_predicted_without_its_own_trials_readings(model):
    held = _held("own", 43, n_runs=6)
    _, X, _ = lookahead_rows(held)
    Z, d, g = model.prior_neighbours(X[:2])
    # Two readings of trial "a" with gain 5 next to each query, one of trial "b" with gain -5, far away: the
    # query of trial "a" must not see its own trial's readings, the query of trial "b" may.
    study_d = np.array([[0.0, 0.0, 1e9], [0.0, 0.0, 1e9]])
    study_gain = np.array([5.0, 5.0, -5.0])
    true = np.array([1.0, 2.0])
    errors = model.leave_trial_out_errors(d, g, study_d, study_gain, true, ["a", "b"], ["a", "a", "b"])
    prior = model.study_medians(d, g, np.full((2, 0), 0.0), np.empty(0))
    assert errors[0] == pytest.approx(true[0] - prior[0])  # its own readings left out: the prior alone
    assert errors[1] != pytest.approx(true[1] - prior[1])  # trial a's readings are among b's neighbours
    assert np.isinf(study_d).sum() == 0  # the caller's distances are not changed


def test_the_metric_weight_counts_in_the_distance_and_travels_in_the_file(tmp_path):
    sets = [_held("a", 1), _held("b", 2), _held("c", 3, classes=3)]
    plain = fit_predictor(sets, k=20)
    weighted = fit_predictor(sets, k=20, metric_weight=2.0)
    assert weighted.scale_[0] == pytest.approx(plain.scale_[0] / 2)  # the metric's distances count double
    assert np.array_equal(weighted.scale_[1:], plain.scale_[1:])
    _, X, _ = lookahead_rows(_held("new", 9))
    save_predictor(weighted, tmp_path / "p.json")
    again = load_predictor(tmp_path / "p.json")
    assert again.metric_weight == 2.0 and again.predict(X) == pytest.approx(weighted.predict(X), abs=1e-4)
    with pytest.raises(ValueError, match="metric_weight"):
        fit_predictor(sets, metric_weight=0.0)


def test_the_folds_choose_the_neighbours_whose_refit_errs_least():
    from earlyexit.replay._lookahead import fit_predictor_choosing_neighbours
    from earlyexit.scoring import choose_neighbours

    # Gains set by the dev metric alone, sharply: few neighbours and a heavy metric weight predict them best.
    rng = np.random.default_rng(0)
    X, gain, groups, studies, runs = [], [], [], [], []
    for task in "abcd":
        for trial in range(15):
            for share in (0.1, 0.2, 0.4):
                metric = rng.uniform(0, 1)
                X.append([metric, share, share, 1.0, rng.uniform(-5, -3), rng.uniform(0.3, 1)])
                gain.append(np.sin(12 * metric))
                groups.append(task)
                studies.append(task)
                runs.append(f"{task}{trial}")
    (k, weight), scores = choose_neighbours(np.array(X), np.array(gain), groups, studies, runs)
    assert weight == 2.0 and len(scores) == 6  # the gain is the metric's alone: its weight is doubled
    assert scores[f"k {k}, metric weight 2"] == min(scores.values())
    assert scores[f"k {k}, metric weight 2"] < scores["k 40, metric weight 1"]
    assert choose_neighbours(np.array(X), np.array(gain), ["a"] * len(X), studies, runs) == ((40, 1.0), {})
    model = fit_predictor_choosing_neighbours([_held("a", 1), _held("b", 2), _held("c", 3, classes=3)])
    assert (model.k, model.metric_weight) in [(k, w) for k, w in __import__("earlyexit").scoring.NEIGHBOUR_CANDIDATES]
    assert len(model.choice_) == 6


class _Reader(Judge):
    """Reads ``reads`` at every logged step and never prunes."""

    def __init__(self, reads):
        self.reads = reads

    def steps(self, held):
        return held.logged_steps

    def at(self, index, run, step):
        return False


def test_a_lookahead_reading_probe_features_pays_for_their_probes_at_every_step_it_reads():
    costs = ProbeCosts({"forward": 0.5, "gradient": 1.0, "sam": 0.25, "critical": 2.0, "dev_eval": 3.0})
    held = dataclasses.replace(_held("a", 1, n_runs=4), costs=costs)
    judge = LookaheadJudge(held, DEFAULT_RULE, {}, fallback=lambda s: (-math.inf, math.inf),
                           probes=("lr_x_critical_sharpness", "relative_sam"))
    assert judge.reads == ("dev_metric", "critical_sharpness", "sam_sharpness", "loss")
    assert LookaheadJudge(held, DEFAULT_RULE, {}, fallback=lambda s: (-math.inf, math.inf)).reads == ("dev_metric",)
    full = 4 * BUDGET
    for reads, per_step in [(("dev_metric",), 3.0), (judge.reads, 3.0 + 1.0 + 2.0 + 0.25)]:
        used = live(held, _Reader(reads), 0).compute_used
        assert used == pytest.approx((full + 4 * len(STEPS) * per_step) / full)


def test_running_trials_predictions_alone_never_prune_before_keep_trials_have_completed():
    from earlyexit.pruning._lookahead import lookahead_judge

    tight = lambda step: (-0.01, 0.01)  # noqa: E731  (the other tasks' margins: narrow)
    ahead = [(100, 0.90, 0.05)]  # a running trial far ahead, by its prediction
    common = dict(errors={}, running=ahead, fallback=tight, coverage=0.8, z=1.0, headroom=0.5, n=1000)
    assert not lookahead_judge(0.55, 0.0, 100, finals=[], keep=1, **common)
    assert lookahead_judge(0.55, 0.0, 100, finals=[0.60], keep=1, **common)  # one final: the bound judges
    assert not lookahead_judge(0.55, 0.0, 100, finals=[0.60], keep=2, **common)


@pytest.mark.parametrize("workers", [4, 8])
def test_with_many_workers_the_lookahead_still_trains_a_trial_to_the_end(model, workers):
    held = _held("many", 41, n_runs=24)
    gain = predictions(model, held)
    fallback = fallback_margins(model, "study+tasks", 0.8, BUDGET)
    for order in range(6):
        out = live(held, LookaheadJudge(held, DEFAULT_RULE, gain, fallback=fallback, coverage=0.8, keep=1), order,
                   workers)
        assert out.kept, f"order {order}: every trial pruned"


@pytest.mark.parametrize("workers", [1, 3, 8])
def test_the_shipped_rule_decides_as_the_replay_when_trials_run_at_one_pace(workers):
    # Trials started together reach each rung together: the one judged first must meet only the trials that
    # have reached the rung (as the replay's rule does), not the others' earlier readings.
    from earlyexit.pruning import ResolutionPruner
    from earlyexit.replay._engine import RuleJudge

    for seed in (21, 22, 41):
        held = _held("pace", seed, n_runs=14)
        for order in range(4):
            replayed = live(held, RuleJudge(held, DEFAULT_RULE), order, workers)
            shipped = live(held, OptunaJudge(held, lambda: ResolutionPruner(DEFAULT_RULE, max_resource=BUDGET), order,
                                             attrs=True), order, workers)
            assert shipped.kept == replayed.kept, (seed, order)


def test_the_bound_is_silent_where_it_cannot_prune_whatever_the_reading():
    import math

    from earlyexit.pruning import bound_upper, lookahead_judge

    none = lambda step: (-math.inf, math.inf)  # noqa: E731  (study only: no margins before the study has enough)
    errors = {100: [-0.05, -0.02, 0.0, 0.01, 0.03, 0.04, 0.06, 0.08, 0.1]}
    common = dict(fallback=none, coverage=0.8)
    assert math.isnan(bound_upper(100, finals=[], errors=errors, keep=1, **common))  # no final yet
    assert math.isnan(bound_upper(200, finals=[0.9], errors=errors, keep=1, **common))  # no errors at the step
    assert bound_upper(100, finals=[0.9], errors=errors, keep=1, **common) == 0.08  # rank ceil(10 * 0.8) = 8
    # Where it is NaN, no reading is pruned, however far behind; where it is finite, a far-behind one is.
    judge = dict(running=[], z=1.0, headroom=0.5, n=1000, **common)
    assert not lookahead_judge(0.1, -1.0, 200, finals=[0.9], errors=errors, keep=1, **judge)
    assert lookahead_judge(0.1, -1.0, 100, finals=[0.9], errors=errors, keep=1, **judge)


def test_the_live_refit_computes_the_studys_errors_once_per_set_of_completed_trials(model, monkeypatch):
    # Every decision between two completions reads the same completed trials: their leave-own-trial-out errors
    # (quadratic in their readings) are computed once for them, and the decisions stay the replay's.
    held = _held("live", 21, n_runs=14)
    calls = []
    computed = model.leave_trial_out_errors
    monkeypatch.setattr(model, "leave_trial_out_errors", lambda *a: calls.append(len(a[0])) or computed(*a))
    pruners = []

    def make():
        pruners.append(LookaheadPruner(model, coverage=0.8, keep=1, calibration="study+tasks", refit=0.25,
                                       max_resource=BUDGET))
        return pruners[-1]

    judge = OptunaJudge(held, make, 0, attrs=True)
    shipped = live(held, judge, 0, 1)
    computations = len(calls)  # the replay's pool below calls it too
    replayed = live(held, LookaheadJudge(held, DEFAULT_RULE, predictions(model, held),
                                         fallback=fallback_margins(model, "study+tasks", 0.8, BUDGET), coverage=0.8,
                                         keep=1, pool=StudyPool(model, held, 0.25)), 0, 1)
    assert shipped.kept == replayed.kept
    completed = sum(t.state.name == "COMPLETE" for t in judge.study.get_trials(deepcopy=False))
    assert 2 <= completed and 1 <= computations <= completed  # at most one computation per completion
