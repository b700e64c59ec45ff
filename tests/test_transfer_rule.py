"""The transfer scorer, the rung rule, and the choice of both inside the training tasks."""

import json
import math

import numpy as np
import pytest
from synthetic_sweep import write_synthetic_sweep

from earlyexit.replay._simulate import Run, rungs
from earlyexit.replay._transfer_rule import candidates_for, nested_transfer, select_transfer, studies_of
from earlyexit.scoring._transfer import Rule, TransferScorer, transfer_features
from earlyexit.sweeps import load


def _run(i, final, devs, progress=1.0, steps=1000):
    sig = {d: {"dev_metric": v, "dev_loss": 0.5, "uniform_loss": math.log(2), "lr_progress": progress,
               "learning_rate": 1e-4} for d, v in devs.items()}
    return Run(f"r{i}", f"c{i}", 0, final, steps, sig, {}, float(steps), not math.isfinite(final))


def test_rungs_keep_the_top_judge_late_starters_later_and_charge_what_they_train():
    by_dev = lambda r, d: r.signature[d]["dev_metric"]  # noqa: E731
    runs = [_run(0, 0.80, {100: 0.70, 400: 0.75}), _run(1, 0.85, {100: 0.72, 400: 0.80}),
            _run(2, 0.90, {100: 0.50, 400: 0.85}, progress=0.01),  # a long warmup: behind at step 100
            _run(3, 0.60, {100: 0.60, 400: 0.60})]
    plain = rungs((100, 400), 1, by_dev)(runs, 0)
    assert plain.kept == ("r1",) and plain.regret == pytest.approx(0.05)
    # Trained: r1 to 1000, the others to 100: (1000 + 3 * 100) / 4000.
    assert plain.compute_used == pytest.approx(1300 / 4000)
    guarded = rungs((100, 400), 1, by_dev, min_lr_progress=0.02)(runs, 0)
    # r2 is not judged at 100 and wins at 400; r1 stops there.
    assert guarded.kept == ("r2",) and guarded.regret == 0
    assert guarded.compute_used == pytest.approx((400 + 1000 + 100 + 100) / 4000)
    # A margin keeps near-ties.
    assert set(rungs((100,), 1, by_dev, margin=0.03)(runs, 0).kept) == {"r0", "r1"}


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
    # Synthetic sweeps log steps 0-200 and no SAM or critical sharpness: only rungs and groups they can read.
    assert cands and all(set(r.rungs) <= {10, 50, 100, 200} for _, r in cands)
    assert {g for g, _ in cands} == {("dev",)}
    chosen = select_transfer(studies)
    assert chosen["rule"] in [r for _, r in cands] and len(chosen["candidates"]) == len(cands)
    nested = nested_transfer(studies)
    assert set(nested) == {"t0", "t1", "t2"}
    for figures in nested.values():
        assert 0 <= figures["compute_saved"] <= 1 and figures["regret"] >= 0
        assert figures["choice"]["rule"]["rungs"] and figures["points"]
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
