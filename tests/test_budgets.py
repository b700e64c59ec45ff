"""Trials of different budgets (a searched batch size): each run's own budget in the replay, and where the pruner
meets the others, at the same share of their budgets or at the same step number."""

import numpy as np
import optuna
import pytest

from earlyexit.names import MAX_STEPS
from earlyexit.pruning import ResolutionPruner
from earlyexit.protocol import REASON_ATTR
from earlyexit.replay._engine import HeldSet, OptunaJudge, live
from earlyexit.replay._simulate import Run, run_budget


def _curve(q: float, budget: int) -> dict:
    """Dev accuracy rising from 0.5 to ``q`` over the first half of the run's own budget, every 5 steps."""
    return {s: {"dev_metric": 0.5 + (q - 0.5) * min(1.0, s / budget / 0.5)} for s in range(0, budget + 1, 5)}


def _held() -> HeldSet:
    # A short trial (100 steps) that ends at 0.8 and a long one (400 steps) that ends at 0.9: at step 20 the short
    # one is at a fifth of its budget (0.62), the long one at a twentieth (0.54).
    runs = (Run("short", "c0", 0, 0.80, 100, _curve(0.8, 100), {}, 100.0, False, {"batch_size": 64}),
            Run("long", "c1", 0, 0.90, 400, _curve(0.9, 400), {}, 400.0, False, {"batch_size": 16}))
    return HeldSet("budgets", "t", "accuracy", 0, runs, 100, 400, None, {}, {}, None,
                   {"short": 0.0, "long": 0.0}, tuple(range(0, 401, 5)), budgets={"long": 400})


def test_each_run_has_its_own_budget_and_the_longest_sets_the_steps():
    held = _held()
    assert [held.budget_of(r) for r in held.runs] == [100, 400] and held.longest == 400
    assert max(OptunaJudge(held, optuna.pruners.NopPruner, 0).steps(held)) == 395


@pytest.mark.parametrize("judge_at,pruned", [("fraction", False), ("step", True)])
def test_a_long_trial_meets_a_short_one_at_the_same_share_of_their_budgets(judge_at, pruned):
    held = _held()
    judge = OptunaJudge(held, lambda: ResolutionPruner(judge_at=judge_at, dev_size=400), 0, attrs=True)
    result = live(held, judge, 0, 1, order=[0, 1])  # the short trial first, then the long one
    assert ("long" not in result.kept) is pruned
    short_trial, long_trial = judge.study.trials
    assert (short_trial.user_attrs[MAX_STEPS], long_trial.user_attrs[MAX_STEPS]) == (100, 400)
    if pruned:
        assert long_trial.state == optuna.trial.TrialState.PRUNED
        assert "at 5% of its 400-step budget" in long_trial.system_attrs[REASON_ATTR]
        assert result.regret == pytest.approx(10.0)
    else:
        assert long_trial.state == optuna.trial.TrialState.COMPLETE and result.regret == 0.0


class _Sweep:
    def __init__(self, manifest):
        self.manifest = manifest


def test_a_runs_budget_comes_from_the_manifest_else_from_its_batch_size():
    epochs = _Sweep({"protocol": {"max_epochs": 3.0}, "train_examples": 2000})
    assert run_budget(epochs, {"batch_size": 64.0}, 189) == 96 and run_budget(epochs, {"batch_size": 8}, 189) == 750
    assert run_budget(epochs, {"learning_rate": 1e-4}, 189) == 189  # no searched batch size: the sweep's budget
    assert run_budget(_Sweep({"protocol": {"max_steps": 300}}), {"batch_size": 8}, 300) == 300  # a step budget
    recorded = _Sweep({"run_budgets": {"r007": 375}, "protocol": {"max_epochs": 3.0}, "train_examples": 2000})
    assert run_budget(recorded, {"batch_size": 8}, 189, "r007") == 375
    assert np.isfinite(run_budget(recorded, {"batch_size": float("nan")}, 189, "r001"))


def test_the_replay_and_the_fits_refuse_a_sweep_whose_runs_have_budgets_of_their_own(tmp_path, capsys):
    import json

    from earlyexit.cli import main
    from synthetic_sweep import write_synthetic_sweep

    folder = write_synthetic_sweep(tmp_path / "mixed", configs=4, seeds=(0,))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["run_budgets"] = {"r000": 500, "r001": 1000, "r002": 1000, "r003": 1000}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(["replay", str(folder)]) == 2
    assert main(["fit", str(folder), "--bound", "-o", str(tmp_path / "b.json")]) == 2
    assert "budgets of their own ([500, 1000] steps" in capsys.readouterr().err
