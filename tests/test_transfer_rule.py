"""The transfer scorer, the rung rule, and the choice of both inside the training tasks."""

import json
import math

import numpy as np
import pytest
from synthetic_sweep import write_synthetic_sweep

from earlyexit.replay._simulate import Run, live_rungs
from earlyexit.replay._transfer_rule import (_Fits, candidates_for, decision_steps, nested_transfer, select_transfer,
                                             studies_of)
from earlyexit.scoring import Rule, RungModel, TransferScorer, rung_gaps, transfer_features
from earlyexit.sweeps import load


def _run(i, final, devs, progress=1.0, steps=1000):
    sig = {d: {"dev_metric": v, "dev_loss": 0.5, "uniform_loss": math.log(2), "lr_progress": progress,
               "learning_rate": 1e-4} for d, v in devs.items()}
    return Run(f"r{i}", f"c{i}", 0, final, steps, sig, {}, float(steps), not math.isfinite(final))


def test_live_rungs_keep_the_top_so_far_judge_late_starters_later_and_charge_what_they_train():
    by_dev = lambda r, d: r.signature[d]["dev_metric"]  # noqa: E731
    runs = [_run(0, 0.80, {100: 0.70, 400: 0.75}), _run(1, 0.85, {100: 0.72, 400: 0.80}),
            _run(2, 0.90, {100: 0.50, 400: 0.85}, progress=0.01),  # a long warmup: behind at step 100
            _run(3, 0.60, {100: 0.60, 400: 0.60})]
    in_order, reversed_order = 1, 3  # order seeds: r0, r1, r2, r3 and r3, r2, r1, r0
    plain = live_rungs((100, 400), 1, by_dev)(runs, in_order)
    # r0 has no rival and r1 leads it at both rungs: both finish; r2 and r3 stop at step 100.
    assert set(plain.kept) == {"r0", "r1"} and plain.regret == pytest.approx(0.05)
    assert plain.compute_used == pytest.approx((1000 + 1000 + 100 + 100) / 4000)
    guarded = live_rungs((100, 400), 1, by_dev, min_lr_progress=0.02)(runs, in_order)
    # r2 is not judged at 100 and leads at 400.
    assert set(guarded.kept) == {"r0", "r1", "r2"} and guarded.regret == 0
    assert guarded.compute_used == pytest.approx(3100 / 4000)
    backwards = live_rungs((100, 400), 1, by_dev)(runs, reversed_order)
    assert set(backwards.kept) == {"r3", "r1"}  # r0 arrives last, behind r1
    # A margin keeps near-ties: r0 (0.70) is not outranked by r1 (0.72) by more than 0.03.
    assert set(live_rungs((100,), 1, by_dev, margin=0.03)(runs, reversed_order).kept) == {"r3", "r1", "r0"}


def test_live_rungs_judge_a_run_that_diverged_at_a_rung_there_and_charge_it_to_the_divergence():
    by_dev = lambda r, d: r.signature[d]["dev_metric"]  # noqa: E731
    diverged = _run(0, math.nan, {100: 0.90}, steps=100)  # diverged at step 100: its reading there still counts
    runs = [diverged, _run(1, 0.80, {100: 0.70, 400: 0.75}), _run(2, 0.85, {100: 0.95, 400: 0.80})]
    out = live_rungs((100, 400), 1, by_dev)(runs, 1)  # order seed 1: r0, r1, r2
    # r1 is behind r0's reading at step 100 and stops there; r2 leads it and finishes.
    assert out.kept == ("r2",) and out.scores["r0"] == 0.90
    assert out.compute_used == pytest.approx((100 + 100 + 1000) / 2100)  # of training each to its end
    # A run that never reported at the first rung is not judged at the later one either.
    gap = _run(3, 0.70, {400: 0.10})
    assert "r3" in live_rungs((100, 400), 1, by_dev)([runs[2], gap], 1).kept


def _in_an_optuna_study(runs, order, score_of, attr, pruner):
    """``runs`` as trials of a real Optuna study with ``pruner``, arriving in the replay's order ``order``:
    each reports ``score_of(run, step)`` at steps 50 and 200, with its signature's ``attr`` as the user
    attribute ``{attr}@{step}``. Returns (run_ids trained to the end, training steps used)."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=pruner)
    kept, used = [], 0
    for i in np.random.default_rng(order).permutation(len(runs)):
        r, trial, stopped = runs[i], study.ask(), None
        for d in (50, 200):
            trial.set_user_attr(f"{attr}@{d}", r.signature[d][attr])
            trial.report(score_of(r, d), d)
            if trial.should_prune():
                stopped = d
                break
        used += r.steps if stopped is None else stopped
        if stopped is None:
            kept.append(r.run_id)
        study.tell(trial, r.final if stopped is None else None,
                   state=optuna.trial.TrialState.COMPLETE if stopped is None else optuna.trial.TrialState.PRUNED)
    return kept, used


def test_live_rungs_is_what_the_geometric_pruner_does_in_an_optuna_study():
    """The replay of the live rule and GeometricPruner in a real study (trials in the same arrival order)
    keep the same trials and charge the same compute; the first arrivals are kept for want of rivals."""
    from earlyexit.pruning import GeometricPruner

    rng = np.random.default_rng(3)
    runs = [_run(i, float(f), {50: float(f - rng.uniform(0, 0.2)), 200: float(f - rng.uniform(0, 0.05))},
                 progress=float(rng.choice([0.01, 0.5])), steps=400) for i, f in enumerate(rng.uniform(0.5, 0.9, 12))]
    by_dev = lambda r, d: r.signature[d]["dev_metric"]  # noqa: E731
    margins = {50: 0.02, 200: 0.0}
    for order in range(4):
        replayed = live_rungs((50, 200), 2, by_dev, min_lr_progress=0.02, margin=margins)(runs, order)
        kept, used = _in_an_optuna_study(runs, order, by_dev, "lr_progress", GeometricPruner(
            decision_steps=(50, 200), keep_top=2, n_startup_trials=0, margin=margins, min_lr_progress=0.02))
        assert set(replayed.kept) == set(kept)
        assert replayed.compute_used == pytest.approx(used / (400 * len(runs)))
    # Arriving one by one, more than keep_top trials finish (the first ones for want of rivals).
    assert len(live_rungs((50, 200), 2, by_dev)(runs, 0).kept) > 2


def test_dev_ties_do_not_prune_a_trial_the_dev_metric_does_not_separate_in_the_replay_and_the_pruner():
    """With dev_ties, a trial is outranked only by trials whose dev metric at the rung is strictly higher: on
    a plateau (every trial at the constant classifier) the scorer's order is not acted on. The live replay
    and GeometricPruner(dev_ties=True) in a real study agree on which trials they keep and what they charge."""
    from earlyexit.pruning import GeometricPruner

    rng = np.random.default_rng(5)
    runs = []
    for i, f in enumerate(rng.uniform(0.5, 0.9, 12)):
        # Half the trials sit at the plateau (dev metric 0.5) at step 50; a scorer ranks them all apart.
        devs = {50: 0.5 if i % 2 else float(f - 0.1), 200: float(f - rng.uniform(0, 0.05))}
        r = _run(i, float(f), devs, steps=400)
        for d in devs:
            r.signature[d]["score"] = float(f + rng.normal(0, 0.05))
        runs.append(r)
    by_score = lambda r, d: r.signature[d]["score"]  # noqa: E731
    plateau = [_run(i, 0.5 + 0.01 * i, {50: 0.5}, steps=400) for i in range(8)]
    assert len(live_rungs((50,), 1, lambda r, d: r.final, dev_ties=True)(plateau, 0).kept) == 8  # none separated
    assert len(live_rungs((50,), 1, lambda r, d: r.final)(plateau, 0).kept) < 8
    for order in range(4):
        replayed = live_rungs((50, 200), 1, by_score, dev_ties=True)(runs, order)
        assert len(replayed.kept) >= len(live_rungs((50, 200), 1, by_score)(runs, order).kept)
        kept, used = _in_an_optuna_study(runs, order, by_score, "dev_metric", GeometricPruner(
            decision_steps=(50, 200), keep_top=1, n_startup_trials=0, dev_ties=True))
        assert set(replayed.kept) == set(kept)
        assert replayed.compute_used == pytest.approx(used / (400 * len(runs)))


def test_transfer_features_are_scale_free_and_the_scorer_validates():
    two = transfer_features({"dev_metric": 0.9, "dev_loss": math.log(2) / 2, "uniform_loss": math.log(2)}, ("dev",))
    six = transfer_features({"dev_metric": 0.9, "dev_loss": math.log(6) / 2, "uniform_loss": math.log(6)}, ("dev",))
    assert two[2] == six[2] == pytest.approx(0.5)  # dev loss against a uniform guess
    assert two[1] == pytest.approx(0.4) and six[1] == pytest.approx(0.9 - 1 / 6)
    with pytest.raises(ValueError, match="groups must be"):
        TransferScorer(("curvature",), Rule((100,)))
    with pytest.raises(ValueError, match="rungs must be increasing"):
        Rule((400, 100))
    scorer = TransferScorer(("dev",), Rule((100, 400))).fit(
        [{100: {"dev_metric": x, "dev_loss": 0.5, "uniform_loss": 0.69}, 400: {"dev_metric": x + 0.1, "dev_loss": 0.4,
                                                                              "uniform_loss": 0.69}}
         for x in np.linspace(0.5, 0.8, 6)], np.linspace(0.6, 0.9, 6))
    assert math.isnan(scorer.score({50: {}}, 60))  # nothing measured at the step
    assert scorer.rung_for(50) == 100 and scorer.rung_for(399) == 100 and scorer.rung_for(1000) == 400
    good, bad = ({"dev_metric": x, "dev_loss": 0.5, "uniform_loss": 0.69} for x in (0.8, 0.5))
    assert scorer.score({200: good}, 200) > scorer.score({200: bad}, 200)
    assert scorer.score({50: good}, 50) == scorer.score({100: good}, 100)  # the first rung's estimator
    assert scorer.reads([400, 100]) == {100: ("dev_metric", "dev_loss"), 400: ("dev_metric", "dev_loss")}


def _as_task(folder, task):
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "task": task}))
    return load(folder)


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    return [_as_task(write_synthetic_sweep(root / f"t{i}", configs=6, seeds=(0,), seed=i), f"task{i}")
            for i in range(3)]


def test_the_choice_is_made_on_other_tasks_only(three_tasks):
    studies = studies_of(three_tasks)
    cands = candidates_for(studies)
    # Synthetic sweeps (budget 1,000 steps) log steps 0-200 and no SAM or critical sharpness: rungs fall on
    # those steps (40% of the budget on 200, the last), and only the groups they can read are candidates.
    assert cands and all(r.unit == "budget" for _, r in cands)
    assert {d for _, r in cands for d in decision_steps(r, three_tasks[0])} == {50, 100, 200}
    assert {g for g, _ in cands} == {("dev",)}
    chosen = select_transfer(studies)
    assert chosen["rule"] in [r for _, r in cands] and len(chosen["candidates"]) == len(cands)
    nested = nested_transfer(studies)
    assert set(nested) == {"t0", "t1", "t2"}
    for figures in nested.values():
        assert 0 <= figures["compute_saved"] <= 1 and figures["regret"] >= 0
        assert figures["choice"]["rule"]["rungs"] and figures["points"]
        assert 0 <= figures["rule_ceiling"] <= 1  # the chosen rule with perfect scores
    from earlyexit.replay._transfer_rule import best_rule_ceilings

    best = best_rule_ceilings(studies)
    # A guard only keeps trials a perfect score would prune: the best unguarded rule saves at least as much.
    assert 0 < best["candidates"]["compute_saved"] <= best["unguarded"]["compute_saved"] < 1
    assert "judged from 0%" in best["unguarded"]["rule"]
    with pytest.raises(ValueError, match="at least three tasks"):
        nested_transfer(studies[:2])


def test_the_default_scorer_replays_and_prints_its_card(three_tasks, capsys):
    from earlyexit.cli import main

    assert main(["scorer", "info"]) == 0
    card = capsys.readouterr().out
    from earlyexit.scoring import load_scorer

    default = load_scorer("default")
    assert f"reads at each rung: {', '.join(default.names)}" in card and "leave-one-task-out" in card
    assert main(["replay", str(three_tasks[0].path), "--scorer", "default", "--orders", "1", "--no-pareto",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policies"]["earlyexit"]["compute_saved"] is not None
    assert out["protocol"]["feature_sets"]["earlyexit"]["0"]["feature_set"] == "+".join(default.groups)
    # Replayed at its own rule: its rungs on the sweep's probe steps in its budget (1,000 steps).
    assert out["protocol"]["feature_sets"]["earlyexit"]["0"]["steps"] == list(
        default.rule.steps_for(1000, three_tasks[0].probe_steps))


def test_rungs_in_fractions_of_the_budget_fall_on_probe_steps_and_the_same_rung_judges_there():
    rule = Rule((0.05, 0.2, 0.4), keep_top=2, margin_quantile=0.5, unit="budget")
    steps = (0, 10, 25, 50, 100, 200, 400)
    # TREC's budget (465 steps): 23 -> 10, 93 -> 50, 186 -> 100; SST-2's (2,105): 105 -> 100, 421 and 842 -> 400.
    assert rule.steps_for(465, steps) == (10, 50, 100)
    assert rule.steps_for(2105, steps) == (100, 400)
    assert [rule.rung_at(d, 465) for d in (10, 50, 100)] == [0.05, 0.2, 0.4]
    assert [rule.rung_at(d, 2105) for d in (100, 400, 1000)] == [0.05, 0.2, 0.4]
    assert rule.label == "rungs 5%/20%/40% of the budget, top 2, margin q50%, judged from 0% of the learning rate"
    with pytest.raises(ValueError, match="needs the budget"):
        rule.steps_for(None, steps)
    with pytest.raises(ValueError, match="fractions of the budget in"):
        Rule((0.5, 1.5), unit="budget")
    with pytest.raises(ValueError, match="margin_quantile"):
        Rule((0.5,), margin_quantile=1.0, unit="budget")
    with pytest.raises(ValueError, match="unit must be"):
        Rule((100,), unit="epochs")


def test_slopes_come_from_differences_within_a_study():
    # Two studies: within each, a higher dev metric ends higher; across them, the study with the higher dev
    # metrics ends lower (a harder task's finals, say). A pooled fit learns the second; the within fit the first.
    X = np.array([[0.50], [0.55], [0.60], [0.80], [0.85], [0.90]])
    y = np.array([0.80, 0.82, 0.84, 0.60, 0.62, 0.64])
    studies = np.array([0, 0, 0, 1, 1, 1])
    assert RungModel(0.1).fit(X, y).coef_[0] < 0
    within = RungModel(0.1).fit(X, y, studies)
    assert within.coef_[0] > 0 and within.intercept_ == pytest.approx(y.mean())
    # A study's level does not move the slopes.
    assert RungModel(0.1).fit(X, y + 0.3 * studies, studies).coef_ == pytest.approx(within.coef_)


def _signatures(devs, budget=1000.0):
    return [{100: {"dev_metric": x, "dev_loss": 0.5, "uniform_loss": math.log(2), "budget_steps": budget}}
            for x in devs]


def test_a_margin_is_measured_on_tasks_the_scorer_did_not_see_and_keeps_more():
    rng = np.random.default_rng(0)
    devs = rng.uniform(0.5, 0.9, 24)
    finals = devs + rng.normal(0, 0.03, 24)  # the dev metric at the rung says the final, noisily
    studies, tasks = np.repeat(np.arange(4), 6), np.repeat(["a", "a", "b", "b"], 6)
    X = np.c_[devs]
    gaps = rung_gaps(X, finals, studies, tasks, keep_top=1, alpha=1.0)
    assert len(gaps) == 4 * 3 and (gaps >= 0).all()  # the three best finals of each of the four studies
    rule = Rule((0.1,), keep_top=1, margin_quantile=0.8, unit="budget")
    with pytest.raises(ValueError, match="at least two tasks"):
        TransferScorer(("dev",), rule).fit(_signatures(devs), finals, studies=studies)
    scorer = TransferScorer(("dev",), rule).fit(_signatures(devs), finals, studies=studies, tasks=tasks)
    full = rung_gaps(np.array([transfer_features(s[100], ("dev",)) for s in _signatures(devs)]), finals, studies,
                     tasks, keep_top=1, alpha=scorer.alpha)
    assert scorer.margins_[0.1] == pytest.approx(np.quantile(full, 0.8)) and scorer.margins_[0.1] > 0
    assert scorer.margin_at(100, 1000) == scorer.margins_[0.1]
    # The file keeps the rule and the margins; a format-1 file (rungs in steps, no margins) still loads.
    again = TransferScorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    assert again.rule == rule and again.margins_ == scorer.margins_
    sig = _signatures([0.7])[0]
    assert again.score(sig, 100) == scorer.score(sig, 100)
    old = {**scorer.to_dict(), "format": 1, "rule": {"rungs": [100], "keep_top": 1, "min_lr_progress": 0.0},
           "rungs": {"100": scorer.estimators_[0.1].to_dict()}}
    old.pop("margins")
    v1 = TransferScorer.from_dict(json.loads(json.dumps(old)))
    assert v1.rule.unit == "steps" and v1.margin_at(100) == 0 and v1.score(sig, 100) == scorer.score(sig, 100)
    # Without the budget in the signature, a rule in fractions cannot say which rung judges.
    with pytest.raises(ValueError, match="budget"):
        scorer.score({100: {"dev_metric": 0.7, "dev_loss": 0.5, "uniform_loss": 0.69}}, 100)


def test_the_selection_fits_margins_as_the_scorer_does(three_tasks):
    studies = studies_of(three_tasks)
    rule = Rule((0.1,), keep_top=1, margin_quantile=0.5, unit="budget")
    shared = _Fits().scorer(studies, ("dev",), rule)
    runs = [r for s in studies for r in s.runs]
    direct = TransferScorer(("dev",), rule).fit(
        [r.signature for r in runs], [r.final for r in runs],
        studies=[i for i, s in enumerate(studies) for _ in s.runs], tasks=[s.task for s in studies for _ in s.runs])
    assert shared.margins_ == pytest.approx(direct.margins_)
    assert shared.estimators_[0.1].coef_ == pytest.approx(direct.estimators_[0.1].coef_)


def test_probes_earn_their_place_in_the_choice(monkeypatch, three_tasks):
    from earlyexit.replay import _transfer_rule as tr

    dev, cheap = ("dev",), ("dev", "cheap")
    rules = [Rule((0.1,), k, 0.02, unit="budget") for k in (1, 2)]
    figures = {(dev, rules[0]): (0.95, 2.0), (dev, rules[1]): (0.70, 0.3), (cheap, rules[0]): (0.90, 0.2)}
    monkeypatch.setattr(tr, "candidates_for", lambda studies: list(figures))
    monkeypatch.setattr(tr, "leave_one_task_out_rule",
                        lambda studies, g, r, fits: {"s": figures[(g, r)]})
    studies = studies_of(three_tasks)
    chosen = select_transfer(studies)
    # The dev evaluation alone meets the bounds (0.3 points), so the probes' extra savings do not buy them in.
    assert chosen["groups"] == dev and chosen["rule"] == rules[1]
    figures[(dev, rules[1])] = (0.70, 1.5)
    chosen = select_transfer(studies)
    assert chosen["groups"] == cheap and chosen["within_bounds"]


def test_the_targets_compare_compute_within_a_regret_budget_and_each_sweep_with_the_prefix_rule():
    from earlyexit.replay._transfer import format_targets, targets

    within = lambda saved: {b: {"compute_saved": saved, "regret": 0.4} for b in ("0.5", "1")}  # noqa: E731
    aggregate = {"earlyexit_transfer": {"mean_regret": 0.4, "worst_regret": 1.2, "mean_compute_saved": 0.85,
                                        "mean_rule_ceiling": 0.9, "saved_within": {**within(0.8), "0": None}},
                 "prefix_accuracy": {"saved_within": within(0.5)}, "best_optuna": {"saved_within": within(0.7)}}
    held_out = {"a": {"earlyexit_transfer": {"regret": 1.2, "compute_saved": 0.8}},
                "b": {"earlyexit_transfer": {"regret": 0.1, "compute_saved": 0.8}}}
    points = {"a": {"prefix_accuracy": [("step 10, top 1", 0.9, 0.5), ("step 100, top 1", 0.6, 0.0)]},
              "b": {"prefix_accuracy": [("step 10, top 1", 0.85, 0.3)]}}
    out = targets(held_out, aggregate, points, {"a": {"regret": 0.4, "spearman": 0.9}})
    assert not out["at_default"]["met"]  # the worst sweep is 1.2 points off
    assert out["compute_vs_prefix_accuracy"]["0.5"]["ratio"] == pytest.approx(0.2 / 0.5)
    assert out["compute_vs_prefix_accuracy"]["0.5"]["met"]
    assert not out["compute_vs_best_optuna"]["1"]["met"]  # 0.2 / 0.3 > 1/3
    a, b = out["per_sweep_vs_prefix_accuracy"]["a"], out["per_sweep_vs_prefix_accuracy"]["b"]
    # Sweep a: the prefix rule at no more compute (saved >= 80%) loses 0.5; 1.2 - 0.5 = 0.7 > its ceiling 0.4.
    assert a["gap"] == pytest.approx(0.7) and not a["met"] and a["ceiling_from"] == "this sweep"
    # Sweep b has one seed: the mean ceiling of the two-seed sweeps stands in.
    assert b["gap"] == pytest.approx(-0.2) and b["met"] and b["ceiling_from"] == "mean"
    text = format_targets({"targets": out})
    assert "NOT met" in text and "ratio 0.40" in text and "perfect scores: 90.0%" in text
