"""Leave-one-task-out: each task's sweeps replayed with scorers fitted on the other tasks' sweeps."""

import json

import pytest
from synthetic_sweep import write_synthetic_sweep

from earlyexit.cli import main
from earlyexit.replay import leave_one_task_out
from earlyexit.sweeps import load


def _as_task(folder, task):
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "task": task}))
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    write_synthetic_sweep(root / "a1", configs=5, seeds=(0, 1), seed=1)
    _as_task(write_synthetic_sweep(root / "b1", configs=5, seeds=(0,), seed=2), "other")
    _as_task(write_synthetic_sweep(root / "b2", configs=6, seeds=(0, 1), seed=3), "other")
    return root


def test_each_task_is_held_out_and_fitted_on_the_others(base):
    sweeps = [load(base / n) for n in ("a1", "b1", "b2")]
    result = leave_one_task_out(sweeps, orders=2, prefix=50)
    assert result["protocol"]["tasks"] == {"sst2": ["a1"], "other": ["b1", "b2"]}
    assert set(result["held_out"]) == {"a1", "b1", "b2"}
    assert "fit on" in result["replays"]["a1"]["held_out"] and "b1" in result["replays"]["a1"]["held_out"]
    assert "a1" in result["replays"]["b2"]["held_out"] and "b1" not in result["replays"]["b2"]["held_out"]
    agg = result["aggregate"]
    for name in ("earlyexit", "loss_only", "prefix_accuracy", "best_optuna", "oracle"):
        assert set(agg[name]) >= {"mean_compute_saved", "mean_regret", "worst_regret", "saved_within"}
        assert set(agg[name]["saved_within"]) == {"0", "0.1", "0.5", "1"}
    assert agg["oracle"]["mean_regret"] == 0 and agg["oracle"]["worst_regret"] == 0
    regrets = [h["earlyexit"]["regret"] for h in result["held_out"].values()]
    assert agg["earlyexit"]["worst_regret"] == max(regrets)
    assert agg["earlyexit"]["mean_regret"] == pytest.approx(sum(regrets) / 3)
    assert set(result["noise_ceiling"]) == {"a1", "b2"}  # two seeds each


def test_one_task_is_an_error_and_the_cli_prints_the_table(base, capsys, tmp_path):
    with pytest.raises(ValueError, match="at least two tasks"):
        leave_one_task_out([load(base / "b1"), load(base / "b2")])
    png = tmp_path / "t.png"
    assert main(["replay", "--leave-one-task-out", str(base), "--orders", "2", "--prefix", "50",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "leave-one-task-out over sst2, other" in out and "mean of 3" in out and png.exists()
