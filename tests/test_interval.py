"""The bound on a trial's final: calibrated coverage across groups, no bound out of range, and the judge built on it."""

import json
import math

import numpy as np
import pytest

from earlyexit.cli import main
from earlyexit.pruning._default import DEFAULT_RULE
from earlyexit.replay._engine import live
from earlyexit.replay._interval import IntervalJudge
from earlyexit.scoring._interval import COLUMNS, FinalInterval, interval_row
from test_resolution import _held


def _rows(n, group_shift=0.0, seed=0):
    """Rows whose share of headroom gained is a function of the features plus noise; finals from it."""
    rng = np.random.default_rng(seed)
    rows, finals = [], []
    for _ in range(n):
        v, p, lr = rng.uniform(0.5, 0.9), rng.uniform(0.0, 0.6), rng.uniform(3e-6, 1e-3)
        row = interval_row(dev_metric=v, constant=0.5, lr_progress=p, step=int(p * 800) + 1, budget=800,
                           learning_rate=lr, warmup_ratio=0.1, dev_loss=0.5, classes=2)
        share = np.clip(0.8 * (1 - p) * (np.log10(lr) + 6) / 3 + group_shift + rng.normal(0, 0.1), -0.5, 1.0)
        rows.append(row)
        finals.append(v + share * (1 - v))
    return np.array(rows), np.array(finals)


def _grouped(groups=4, n=150):
    X, y, g = [], [], []
    for k in range(groups):
        x, f = _rows(n, group_shift=0.03 * (k - groups / 2), seed=k)
        X.append(x)
        y.append(f)
        g += [f"task{k}"] * n
    return np.vstack(X), np.concatenate(y), np.array(g)


def test_the_bound_covers_a_new_group_about_as_often_as_asked_and_more_when_asked_more():
    X, y, groups = _grouped(n=120)
    model = FinalInterval(coverage=0.9, max_iter=40).fit(X, y, groups)
    Xn, yn = _rows(300, seed=99)
    covered = {}
    for coverage in (0.6, 0.9):
        model.set_params(coverage=coverage)  # calibration scores are kept: no refit
        covered[coverage] = float(np.mean(yn <= model.predict_upper(Xn)))
    assert 0.8 <= covered[0.9] <= 1.0
    assert covered[0.6] < covered[0.9]
    assert model.groups_ == ("task0", "task1", "task2", "task3")


def test_out_of_range_or_missing_features_give_no_bound_and_too_few_scores_give_none_either():
    X, y, groups = _grouped(groups=3, n=60)
    model = FinalInterval(max_iter=30).fit(X, y, groups)
    six_classes = interval_row(dev_metric=0.7, constant=0.2, lr_progress=0.2, step=100, budget=800,
                               learning_rate=1e-4, warmup_ratio=0.1, dev_loss=1.0, classes=6)
    long_budget = interval_row(dev_metric=0.7, constant=0.5, lr_progress=0.2, step=400, budget=8000,
                               learning_rate=1e-4, warmup_ratio=0.1, dev_loss=0.5, classes=2)
    unknown_rate = interval_row(dev_metric=0.7, constant=0.5, lr_progress=0.2, step=100, budget=800,
                                learning_rate=math.nan, warmup_ratio=0.1, dev_loss=0.5, classes=2)
    upper = model.predict_upper(np.array([six_classes, long_budget, unknown_rate, X[0]]))
    assert np.isinf(upper[:3]).all() and np.isfinite(upper[3]) and upper[3] > X[0, 0] - 1
    model.set_params(coverage=1 - 1 / (len(y) + 5))  # a rank past the last score: no finite margin
    assert math.isinf(model.margin_) and np.isinf(model.predict_upper(X[:5])).all()


def test_bad_input_is_refused_with_a_message():
    X, y, groups = _grouped(groups=2, n=40)
    with pytest.raises(ValueError, match="columns"):
        FinalInterval().fit(X[:, :3], y, groups)
    with pytest.raises(ValueError, match="two or more"):
        FinalInterval().fit(X, y, np.array(["one"] * len(y)))
    with pytest.raises(ValueError, match="one entry per row"):
        FinalInterval().fit(X, y[:-1], groups)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        FinalInterval(coverage=1.5).fit(X, y, groups)
    with pytest.raises(RuntimeError, match="not fitted"):
        FinalInterval().predict_upper(X)
    with pytest.raises(ValueError, match="no parameter"):
        FinalInterval().set_params(colour="red")
    assert len(COLUMNS) == X.shape[1]


def _exact_gains(held):
    """A perfect predictor: each reading's gain is exactly its final minus its dev metric."""
    return {(r.run_id, s): (sig["dev_metric"], r.final - sig["dev_metric"])
            for r in held.runs for s, sig in r.signature.items() if 0 < s < held.budget}


def test_the_judge_prunes_a_warming_up_trial_below_the_best_completed_final_and_never_before_calibration():
    held = _held(n_runs=12)
    gain = _exact_gains(held)
    slow = next(r for r in held.runs if held.warmup[r.run_id] == 0.3)
    best = max(held.runs, key=lambda r: r.final)
    step = min(s for s in DEFAULT_RULE.rung_steps(held.budget, held.logged_steps) if held.reading(slow, s).warming_up)
    judge = IntervalJudge(held, DEFAULT_RULE, gain, keep=1, calibration="study", coverage=0.8)
    assert not judge.at(0, slow, step)  # nothing completed yet: no bound
    judge.end(1, best, True)
    assert not judge.at(2, slow, step)  # one completed trial: the 80% rank does not exist yet
    others = [r for r in held.runs if r not in (slow, best)][:4]
    for i, r in enumerate(others, 3):
        judge.end(i, r, True)
    assert judge.at(10, slow, step) == (slow.final < best.final)  # exact gains: errors 0, bound = own final
    by_tasks = IntervalJudge(held, DEFAULT_RULE, gain, keep=1, calibration="tasks", margin=math.inf)
    by_tasks.end(1, best, True)
    assert not by_tasks.at(2, slow, step)  # an infinite margin: the rule alone decides
    with pytest.raises(ValueError, match="calibration"):
        IntervalJudge(held, DEFAULT_RULE, gain, calibration="vibes")


@pytest.mark.parametrize("workers", [1, 3])
def test_with_exact_gains_the_bound_saves_more_than_the_rule_and_loses_nothing(workers):
    gained = 0.0
    for seed in range(3):
        held = _held(n_runs=16, seed=seed)
        gain = _exact_gains(held)
        for order in range(4):
            rule = live(held, IntervalJudge(held, DEFAULT_RULE, {}, calibration="study"), order, workers)
            bound = live(held, IntervalJudge(held, DEFAULT_RULE, gain, calibration="study", coverage=0.8), order,
                         workers)
            assert bound.compute_used <= rule.compute_used + 1e-12
            assert bound.regret <= rule.regret + 1e-9  # a pruned trial was below a completed final
            gained += rule.compute_used - bound.compute_used
    assert gained > 0.05  # the bound judges trials the rule lets pass (warming up, or behind by less than it resolves)


def test_the_nested_command_fits_the_bound_inside_the_training_folds(tmp_path, capsys):
    from test_nested import _three_task_folders

    folders = _three_task_folders(tmp_path)
    assert main(["replay", "--leave-one-task-out", *folders, "--nested", "--orders", "2",
                 "--policies", "default", "interval", "interval_tasks", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for policy in ("interval", "interval_tasks"):
        figures = out["aggregate"][policy]["nested"]
        assert figures["sweeps"] == 3 and figures["worst_regret"] >= figures["mean_regret"] >= 0
    assert "on the study" in out["held_out"]["alpha-sweep"]["interval"]["nested"]["choice"]
    assert "other tasks" in out["held_out"]["alpha-sweep"]["interval_tasks"]["nested"]["choice"]
    assert {"interval", "interval_tasks", "bound tree fits", "bound and predictor fits"} <= \
        set(out["protocol"]["work_seconds"])


def _with_bound_features(held, task):
    """A synthetic seed with what the bound reads: a dev loss per reading, peak learning rates, the constant score."""
    import dataclasses

    rng = np.random.default_rng(len(task))
    peak = {}
    for r in held.runs:
        peak[r.run_id] = float(10 ** rng.uniform(-5, -3))
        for s, sig in r.signature.items():
            sig["dev_loss"] = 0.69 * (1.2 - sig["dev_metric"])
    constant = float(np.bincount(held.labels.astype(int)).max() / len(held.labels))
    return dataclasses.replace(held, task=task, sweep=f"{task}-sweep", peak_lr=peak, classes=2, constant=constant)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_pruner_with_the_bound_decides_as_the_replayed_interval_policy(workers):
    """ResolutionPruner(bound=...) in a real Optuna study against the replay's IntervalJudge, trial for trial."""
    import optuna

    from earlyexit.pruning import ResolutionPruner
    from earlyexit.replay._engine import OptunaJudge
    from earlyexit.replay._interval import fit_interval, gains

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = [_with_bound_features(_held(n_runs=14, seed=s), t) for s, t in ((1, "a"), (2, "b"), (3, "c"))]
    model = fit_interval(train, max_iter=30)
    held = _with_bound_features(_held(n_runs=16, seed=7), "d")
    gain = gains(model, held)
    assert gain, "the bound speaks for the held-out set's readings"
    bound_pruned = 0.0
    for order in range(3):
        replayed = live(held, IntervalJudge(held, DEFAULT_RULE, gain, calibration="study", coverage=0.8), order,
                        workers)
        rule_only = live(held, IntervalJudge(held, DEFAULT_RULE, {}), order, workers)
        bound_pruned += rule_only.compute_used - replayed.compute_used
        pruner = ResolutionPruner.for_budget(DEFAULT_RULE, held.budget, eval_steps=held.logged_steps, bound=model,
                                             coverage=0.8)
        real = live(held, OptunaJudge(held, lambda: pruner, order, attrs=True), order, workers)
        assert real.kept == replayed.kept and real.compute_used == pytest.approx(replayed.compute_used)
    assert bound_pruned > 0  # the bound decided something the rule alone would not have


def test_the_constant_classifier_is_read_from_labels_fractions_or_step_0_by_the_number_of_classes():
    from types import SimpleNamespace

    import pandas as pd

    from earlyexit.sweeps._report import constant_accuracy

    at0 = pd.DataFrame({"step": [0, 0, 10], "dev_accuracy": [0.10, 0.23, 0.9]})
    six = SimpleNamespace(manifest={"num_labels": 6}, checkpoints=at0)
    assert constant_accuracy(six) == 0.23  # more classes: the largest step-0 accuracy, not 1 - 0.10
    binary = SimpleNamespace(manifest={}, checkpoints=pd.DataFrame({"step": [0, 0], "dev_accuracy": [0.3, 0.45]}))
    assert constant_accuracy(binary) == pytest.approx(0.7)  # an untrained head on one class: max(a, 1 - a)
    assert constant_accuracy(SimpleNamespace(manifest={"dev_class_fractions": [0.2, 0.8]}, checkpoints=at0)) == 0.8
    assert constant_accuracy(six, labels=[1, 1, 2, 0]) == 0.5


def test_the_bound_is_plain_numbers_that_predict_as_scikit_learn_does(tmp_path):
    import json

    from sklearn.ensemble import HistGradientBoostingRegressor

    from earlyexit.scoring import ScorerFileError, load_bound, save_bound
    from earlyexit.scoring._trees import Trees

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the side the trees learnt
    y = np.nan_to_num(X[:, 0]) - 2 * np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 400)
    fitted = HistGradientBoostingRegressor(loss="quantile", quantile=0.9, max_iter=30, random_state=0).fit(X, y)
    trees = Trees.from_dict(json.loads(json.dumps(Trees.from_hist_gradient_boosting(fitted).to_dict())))
    Q = rng.normal(size=(2000, 3)) * 2
    Q[rng.random(Q.shape) < 0.1] = np.nan
    assert np.array_equal(trees.predict(Q), fitted.predict(Q))  # to the bit
    bad = trees.to_dict()
    bad["trees"][0]["left"][0] = 0  # a node pointing at itself
    with pytest.raises(ValueError, match="outside the tree"):
        Trees.from_dict(bad)
    # The package's bound is JSON, loads without unpickling anything, and round-trips.
    bound = load_bound()
    save_bound(bound, tmp_path / "b.json", sweeps=("x",))
    again = load_bound(tmp_path / "b.json")
    R = np.array([[0.7, 0.2, 0.3, 0.25, -3.5, 1.0, 0.5, 0.69, 2.8]])
    assert again.predict_upper(R) == pytest.approx(bound.predict_upper(R)) and np.isfinite(bound.predict_upper(R)).all()
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ScorerFileError, match="not a bound file"):
        load_bound(tmp_path / "c.json")


def test_a_fit_reads_trees_fitted_before_on_its_tasks_and_gives_the_same_numbers():
    X, y, g = _grouped(groups=3, n=60)
    plain = FinalInterval(max_iter=10).fit(X, y, g)
    # Trees fitted first on the rows of each two of the three tasks (the calibration's fits) and on all three.
    fitted = dict(FinalInterval(max_iter=10).fit_trees(X[g != t], y[g != t]) for t in sorted(set(g)))
    fitted.update([FinalInterval(max_iter=10).fit_trees(X, y)])
    assert len(fitted) == 4
    shared = FinalInterval(max_iter=10).fit(X, y, g, fitted=fitted)
    assert np.array_equal(shared.scores_, plain.scores_)
    assert np.array_equal(shared.predict_upper(X), plain.predict_upper(X))
    # Other settings, other trees: a fit never reads trees made with different settings.
    other = FinalInterval(max_iter=11)
    key, _ = other.fit_trees(X, y)
    assert key not in fitted
