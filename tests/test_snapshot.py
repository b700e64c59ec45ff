"""A run stopped between two steps goes on from its snapshot to exactly the run that was never stopped."""

import dataclasses
import math

import pytest
import torch

from earlyexit.data import TaskData, load_task
from earlyexit.training import TrainConfig, train

TASK = load_task("sst2", "earlyexit:sst2-2k", max_train=400)
# The probes that carry state from one checkpoint to the next (the warm-started Lanczos and critical step) and one
# with seeded draws (Fisher), dropout, batches grouped by length (their own generator) and a warmup (the
# schedule's state) all have to carry over. (The Hutch++ trace, seeded like Fisher, would triple the test's time.)
FAST = dict(max_steps=12, batch_size=16, probe_steps=(0, 4, 8), max_length=32, group_by_length=True,
            probe_names=("loss", "gradient_variance", "hessian_top_eigenvalue", "critical_sharpness", "fisher_trace"),
            probe_batches=2, probe_batch_size=4, eval_batch_size=256, hidden_dropout=0.1, classifier_dropout=0.1,
            warmup_ratio=0.25, schedule="linear")
CLOCKS = {"probe_seconds", "eval_seconds", "train_step_seconds", "compute_steps", "wall_seconds", "diagnostics"}


class Killed(Exception):
    pass


def _task():
    return TaskData(TASK.name, TASK.source, TASK.train, TASK.dev[:128], TASK.num_labels)


def _stop_after(step):
    def progress(done, total):
        if done == step:
            raise Killed
    return progress


def _same(value):
    """NaN as a string, so that two NaN figures compare equal."""
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_same(v) for v in value)
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def _figures(result):
    """Everything a run measured but its clocks."""
    cps = [{k: v for k, v in dataclasses.asdict(cp).items() if k not in CLOCKS} for cp in result.checkpoints]
    return _same((cps, (result.status, result.steps, result.final_accuracy, result.final_loss, result.final_metric)))


@pytest.fixture(scope="module")
def whole():
    return train(TrainConfig(seed=3, **FAST), task=_task())


# (stop after step, snapshot every s, the step it goes on from): every step (0 s) keeps the last step's state,
# checkpoints only (inf s) the state saved after step 4's checkpoint, which is not measured again.
@pytest.mark.parametrize("stop,every,resumed_at", [(7, 0.0, 6), (7, math.inf, 4)])
def test_a_stopped_run_goes_on_to_the_same_figures(whole, tmp_path, stop, every, resumed_at):
    path = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train(TrainConfig(seed=3, **FAST), task=_task(), snapshot=path, snapshot_seconds=every,
              progress=_stop_after(stop))
    assert path.exists()
    seen = []
    again = train(TrainConfig(seed=3, **FAST), task=_task(), snapshot=path, snapshot_seconds=every,
                  on_checkpoint=lambda cp: seen.append(cp.step))
    assert again.resumed_at == resumed_at and again.earlier_seconds > 0
    assert _figures(again) == _figures(whole)
    assert [cp.step for cp in again.checkpoints] == [0, 4, 8, 12]
    assert seen == [s for s in (0, 4, 8, 12) if s > resumed_at]  # earlier checkpoints were handed over before
    assert again.checkpoints[-1].wall_seconds > again.earlier_seconds  # the run's clock runs on


def test_a_run_stopped_inside_a_checkpoint_measures_it_again(whole, tmp_path):
    """Stopped while step 8's checkpoint is handed over: the state saved before it (at step 8) is resumed, and
    the checkpoint is measured again, to the same figures."""
    path = tmp_path / "run.pt"

    def crash_at_8(cp):
        if cp.step == 8:
            raise Killed
        return False

    with pytest.raises(Killed):
        train(TrainConfig(seed=3, **FAST), task=_task(), snapshot=path, snapshot_seconds=0.0, on_checkpoint=crash_at_8)
    again = train(TrainConfig(seed=3, **FAST), task=_task(), snapshot=path)
    assert again.resumed_at == 8 and _figures(again) == _figures(whole)


def test_a_snapshot_of_another_config_starts_over(whole, tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(Killed):
        train(TrainConfig(seed=4, **FAST), task=_task(), snapshot=path, snapshot_seconds=0.0,
              progress=_stop_after(2))
    with pytest.warns(UserWarning, match="another configuration"):
        fresh = train(TrainConfig(seed=3, **FAST), task=_task(), snapshot=path)
    assert fresh.resumed_at is None and _figures(fresh) == _figures(whole)


def test_an_unreadable_snapshot_starts_over_and_one_is_loaded_without_running_code(tmp_path, capsys):
    """The file is read with weights_only: a pickle that would run code is refused, and the run starts over."""
    path = tmp_path / "run.pt"
    short = {**FAST, "max_steps": 2, "probe_steps": (0,), "probe_names": ("loss",)}
    path.write_bytes(b"not a snapshot")
    with pytest.warns(UserWarning, match="cannot be read"):
        result = train(TrainConfig(seed=3, **short), task=_task(), snapshot=path)
    assert result.resumed_at is None and result.status == "completed"

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"version": 1, "payload": Evil()}, path)
    with pytest.warns(UserWarning, match="cannot be read"):
        result = train(TrainConfig(seed=3, **short), task=_task(), snapshot=path)
    assert result.resumed_at is None and result.status == "completed"
    assert "ran" not in capsys.readouterr().out
