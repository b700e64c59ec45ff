"""The fair comparison: settings chosen inside the training folds, the command's JSON, study sizes, errors."""

import json

import pytest

from earlyexit.cli import main
from earlyexit.replay._nested import MEAN_BOUND, WORST_BOUND, choose, nested
from synthetic_sweep import write_synthetic_sweep


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory):
    return _three_task_folders(tmp_path_factory.mktemp("nested"))


def _three_task_folders(root):
    """Three small synthetic sweeps, one per task (alpha, beta, gamma)."""
    folders = []
    for i, task in enumerate(("alpha", "beta", "gamma")):
        folder = write_synthetic_sweep(root / f"{task}-sweep", configs=6, seeds=(0,), seed=i)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["task"] = task
        (folder / "manifest.json").write_text(json.dumps(manifest))
        folders.append(str(folder))
    return folders


def test_the_choice_saves_most_within_the_bounds_and_otherwise_risks_least():
    # two training sweeps x three candidates: (saved, regret, test regret)
    safe, greedy, middling = (0.3, 0.0, 0.0), (0.9, WORST_BOUND + 1.0, 0.0), (0.5, MEAN_BOUND, 0.0)
    assert choose([[safe, greedy, middling], [safe, greedy, middling]]) == 2
    assert choose([[(0.3, 2.0, 0), (0.9, 3.0, 0)], [(0.3, 2.0, 0), (0.9, 3.0, 0)]]) == 0  # none within: least regret


def test_a_held_out_task_is_replayed_at_the_setting_its_training_folds_chose():
    # Candidate 1 wins on tasks a and b but loses 5 points on c: c's choice is made on a and b only.
    figures = {"a1": {"p": [(0.2, 0.0, 0.0), (0.8, 0.1, 0.0)]}, "b1": {"p": [(0.2, 0.0, 0.0), (0.8, 0.1, 0.0)]},
               "c1": {"p": [(0.2, 0.0, 0.0), (0.8, 5.0, 0.0)]}}
    out = nested(figures, {"a1": "a", "b1": "b", "c1": "c"}, ["p"])
    assert out["held_out"]["c1"]["p"]["nested"]["regret"] == 5.0  # chosen on a and b, replayed on c
    assert out["held_out"]["a1"]["p"]["nested"]["compute_saved"] == 0.2  # b and c together rule candidate 1 out
    assert out["aggregate"]["p"]["nested"]["worst_regret"] == 5.0
    assert out["held_out"]["c1"]["p"]["best_case"] == {"compute_saved": 0.2, "regret": 0.0}


def test_the_nested_command_prints_every_policy_nested_and_its_best_case(three_tasks, capsys, tmp_path):
    assert main(["replay", "--leave-one-task-out", *three_tasks, "--nested", "--orders", "2",
                 "--policies", "default", "prefix_accuracy", "median", "hyperparameters", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # the surrogate is fitted and its K chosen inside the training folds (two levels), then replayed held out
    assert out["held_out"]["alpha-sweep"]["hyperparameters"]["nested"]["choice"].startswith("keep ")
    for policy in ("default", "prefix_accuracy", "median", "hyperparameters"):
        figures = out["aggregate"][policy]["nested"]
        assert set(figures) >= {"mean_compute_saved", "mean_regret", "worst_regret", "mean_test_regret"}
        assert figures["worst_regret"] >= figures["mean_regret"] >= 0 and figures["mean_test_regret"] is None
        assert "best_case" in out["aggregate"][policy]
    assert set(out["held_out"]) == {"alpha-sweep", "beta-sweep", "gamma-sweep"}
    assert out["protocol"]["evidence"] == {"alpha-sweep": "approximate", "beta-sweep": "approximate",
                                           "gamma-sweep": "approximate"}  # no per-example records in format 1
    work = out["protocol"]["work_seconds"]  # where the time went, by policy
    assert set(work) == {"default", "prefix_accuracy", "median", "hyperparameters (wall)"}
    assert all(v >= 0 for v in work.values())
    saved = tmp_path / "nested.json"
    saved.write_text(json.dumps(out))
    assert main(["replay", three_tasks[0], "--trials", "3", "5", "--choices", str(saved), "--orders", "2",
                 "--draws", "2", "--policies", "default", "median", "--json"]) == 0
    sizes = json.loads(capsys.readouterr().out)
    assert set(sizes["by_size"]) == {"3", "5"} and sizes["chosen_on"] == ["beta-sweep", "gamma-sweep"]
    assert 0 <= sizes["by_size"]["5"]["default"]["regret"]


@pytest.mark.parametrize("argv, message", [
    (["--nested"], "--nested goes with --leave-one-task-out"),
    (["--leave-one-task-out", "--nested", "--policies", "vibes"], "unknown policies"),
    (["--trials", "4"], "needs --choices"),
])
def test_bad_comparison_arguments_exit_2(three_tasks, capsys, argv, message):
    sweeps = three_tasks if "--leave-one-task-out" in argv else three_tasks[:1]
    assert main(["replay", *sweeps, *argv]) == 2
    assert message in capsys.readouterr().err


def _threads(_):
    from threadpoolctl import threadpool_info

    return {info["user_api"]: info["num_threads"] for info in threadpool_info()}


def test_each_pooled_process_of_the_nested_comparison_fits_with_one_thread():
    from earlyexit.replay._selection import map_jobs

    for threads in map_jobs(_threads, [0, 1], 2):
        assert threads and all(n == 1 for n in threads.values()), threads


def _square(x):
    return x * x


def test_pooled_jobs_start_the_costliest_first_and_keep_their_order():
    from earlyexit.replay._selection import largest_first, map_jobs

    assert largest_first([3, 9, 1, 9], cost=lambda x: x) == [1, 3, 0, 2]
    assert largest_first([3, 9, 1]) == [0, 1, 2]
    items = [2, 7, 1, 5]
    assert map_jobs(_square, items, 2, cost=lambda x: x) == [4, 49, 1, 25] == map_jobs(_square, items, 1)
