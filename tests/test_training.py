"""The training loop: deterministic, probes at checkpoints, stoppable, divergence caught."""

import math

import pytest

from earlyexit.data import load_task
from earlyexit.training import TrainConfig, train

TASK = load_task("sst2", "earlyexit:sst2-2k", max_train=400)
FAST = dict(max_steps=12, batch_size=16, probe_steps=(0, 4, 8), max_length=32,
            probe_names=("loss", "gradient_norm", "hessian_top_eigenvalue", "critical_sharpness"),
            probe_batches=2, probe_batch_size=4, eval_batch_size=256)


def _dev_subset():
    from earlyexit.data import TaskData
    return TaskData(TASK.name, TASK.source, TASK.train, TASK.dev[:128], TASK.num_labels)


def test_run_is_deterministic_and_probes_every_checkpoint():
    task = _dev_subset()
    a = train(TrainConfig(seed=3, **FAST), task=task)
    b = train(TrainConfig(seed=3, **FAST), task=task)
    assert a.status == "completed" and a.steps == 12
    assert [c.step for c in a.checkpoints] == [0, 4, 8, 12]  # the final step is always a checkpoint
    assert a.checkpoints[-1].dev_accuracy == a.final_accuracy and a.final_metric == a.final_accuracy
    assert a.final_accuracy == b.final_accuracy and a.final_loss == b.final_loss
    for ca, cb in zip(a.checkpoints, b.checkpoints):
        assert ca.probes == cb.probes
        assert set(ca.probes) == set(FAST["probe_names"])
        assert 0 <= ca.dev_accuracy <= 1
    assert math.isnan(a.checkpoints[0].compute_steps)
    assert a.checkpoints[-1].compute_steps > 8
    assert a.compute_steps > 12  # probe overhead is counted


def test_a_plan_measures_only_what_it_names_and_leaves_training_unchanged():
    task = _dev_subset()
    full = train(TrainConfig(seed=3, **FAST), task=task)
    planned = train(TrainConfig(seed=3, **FAST), task=task,
                    plan={4: ("loss", "dev_accuracy"), 8: ("critical_sharpness",), 10: ()})
    assert [c.step for c in planned.checkpoints] == [4, 8, 10]
    at = {c.step: c for c in planned.checkpoints}
    assert set(at[4].probes) == {"loss"} and 0 <= at[4].dev_accuracy <= 1
    assert set(at[8].probes) == {"critical_sharpness"} and math.isnan(at[8].dev_accuracy)
    assert at[10].probes == {} and math.isnan(at[10].dev_accuracy) and at[10].probe_seconds < 0.05
    # Probes do not move the weights: the same values as the full run's, and the same final accuracy.
    assert at[4].probes["loss"] == full.checkpoints[1].probes["loss"]
    assert at[4].dev_accuracy == full.checkpoints[1].dev_accuracy
    assert planned.final_accuracy == full.final_accuracy


def test_callback_stops_the_run():
    seen = []

    def stop_at_4(cp):
        seen.append(cp.step)
        return cp.step == 4

    r = train(TrainConfig(**FAST), task=_dev_subset(), on_checkpoint=stop_at_4)
    assert r.status == "stopped" and r.steps == 4 and seen == [0, 4]


def test_divergence_is_reported_not_raised():
    r = train(TrainConfig(**(FAST | {"learning_rate": 1e30, "grad_clip": None})), task=_dev_subset())
    assert r.status == "diverged"
    assert "non-finite" in r.reason
    assert math.isnan(r.final_accuracy)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="exponential")
    with pytest.raises(ValueError, match="probe_steps"):
        TrainConfig(probe_steps=(10, 0))


def test_pruned_vocabulary_is_an_exact_reduction():
    task = _dev_subset()
    cfg = dict(FAST, probe_names=("loss", "gradient_norm", "hessian_top_eigenvalue"), max_steps=6,
               probe_steps=(0, 6))
    full = train(TrainConfig(**cfg), task=task)
    small = train(TrainConfig(prune_vocabulary=True, **cfg), task=task)
    assert small.final_accuracy == full.final_accuracy
    assert small.final_loss == pytest.approx(full.final_loss, rel=1e-5)
    for a, b in zip(full.checkpoints, small.checkpoints):
        assert b.probes == pytest.approx(a.probes, rel=1e-3)


def test_a_failing_probe_is_recorded_and_the_run_goes_on(monkeypatch):
    import earlyexit.training._loop as loop

    def no_double_backward(*args, **kwargs):
        raise RuntimeError("derivative for aten::_fake_op is not implemented\nmore detail")

    monkeypatch.setattr(loop, "measure", no_double_backward)
    r = train(TrainConfig(**FAST), task=_dev_subset())
    assert r.status == "completed" and r.steps == 12
    for cp in r.checkpoints:
        assert cp.probes == {} and cp.probe_error == "RuntimeError: derivative for aten::_fake_op is not implemented"
        assert 0 <= cp.dev_accuracy <= 1


def test_infinite_gradient_is_reported_as_divergence(monkeypatch):
    import torch

    import earlyexit.training._loop as loop

    calls = {"n": 0}
    real = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm):
        calls["n"] += 1
        return torch.tensor(float("inf")) if calls["n"] == 3 else real(params, max_norm)

    monkeypatch.setattr(loop.torch.nn.utils, "clip_grad_norm_", clip)
    r = train(TrainConfig(**FAST), task=_dev_subset())
    assert r.status == "diverged" and r.steps == 2 and "non-finite gradient at step 2" in r.reason


def test_nothing_survives_a_finished_or_stopped_run(monkeypatch):
    # transformers#13019-style leaks: a trial's model, optimizer state and batches must be freed when it
    # ends, whether it completes or the pruner stops it.
    import gc
    import weakref

    from earlyexit.training import _loop

    refs = []
    real = _loop.load_model

    def tracked(*args, **kwargs):
        model = real(*args, **kwargs)
        refs.append(weakref.ref(model))
        return model

    monkeypatch.setattr(_loop, "load_model", tracked)
    results = [train(TrainConfig(**FAST), task=_dev_subset()),
               train(TrainConfig(**FAST), task=_dev_subset(), on_checkpoint=lambda cp: cp.step >= 4)]
    assert [r.status for r in results] == ["completed", "stopped"]
    gc.collect()
    assert len(refs) == 2 and all(ref() is None for ref in refs)
