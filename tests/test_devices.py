"""Devices and precision: resolved, recorded, and the CPU paths proven here; GPU paths where a GPU is."""

import math

import pytest
import torch

from earlyexit.cli import main
from earlyexit.data import load_task
from earlyexit.training import TrainConfig, train
from earlyexit.training._device import device_name, resolve_device

TASK = load_task("sst2", "earlyexit:sst2-2k", max_train=200)
FAST = dict(max_steps=6, batch_size=8, probe_steps=(0, 3), max_length=24, probe_names=("loss", "gradient_norm"),
            probe_batches=2, probe_batch_size=4, eval_batch_size=256)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _task():
    return type(TASK)(TASK.name, TASK.source, TASK.train, TASK.dev[:64], TASK.num_labels, TASK.label_names)


def test_auto_is_the_cpu_here_and_a_missing_device_is_a_clear_error():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device="gpu")
    assert device_name(torch.device("cpu")).startswith("cpu")


def test_bf16_training_runs_and_records_its_device():
    fp32 = train(TrainConfig(seed=1, device="cpu", **FAST), task=_task())
    bf16 = train(TrainConfig(seed=1, device="cpu", precision="bf16", **FAST), task=_task())
    assert fp32.status == bf16.status == "completed" and fp32.device.startswith("cpu")
    assert math.isfinite(bf16.final_loss)
    # The probes run in float32 either way: at step 0 (before any update) they agree exactly.
    assert bf16.checkpoints[0].probes == fp32.checkpoints[0].probes


def test_run_with_an_absent_device_exits_2_and_writes_nothing(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = tmp_path / "s.toml"
    spec.write_text(f'[study]\nstorage = "sqlite:///{tmp_path}/s.db"\nn_trials = 1\nsampler = "random"\n'
                    '[search]\nlearning_rate = { type = "float", low = 1e-4, high = 1e-3 }\n')
    assert main(["run", str(spec), "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


@needs_cuda
def test_cuda_training_releases_its_memory():
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    result = train(TrainConfig(seed=1, device="cuda", precision="bf16", **FAST), task=_task())
    assert result.device.startswith("cuda") and result.status == "completed"
    import gc

    gc.collect()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before


def test_devices_refuses_sqlite_and_runs_one_worker_per_device_on_a_journal(tmp_path, capsys):
    from conftest import tiny_spec

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    spec = tmp_path / "w.toml"
    spec.write_text(tiny_spec("w", grid={"learning_rate": [1e-3, 3e-4, 1e-4, 3e-5]}, max_steps=8, steps=[0, 4],
                              study={"n_trials": 4, "storage": f"sqlite:///{tmp_path}/w.db"}))
    assert main(["run", str(spec), "--devices", "cpu,cpu"]) == 2
    assert "lock each other out" in capsys.readouterr().err and not (tmp_path / "w.db").exists()
    journal = tmp_path / "w.log"
    assert main(["run", str(spec), "--devices", "cpu,cpu", "--storage", f"journal:{journal}"]) == 0
    out = capsys.readouterr().out
    assert out.count("trial(s) at a time") == 2  # both workers started, each line prefixed with its device
    study = optuna.load_study(study_name="w", storage=JournalStorage(JournalFileBackend(str(journal))))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["learning_rate"] for t in done) == [3e-5, 1e-4, 3e-4, 1e-3]


def test_bench_and_probe_record_their_device(capsys):
    import json

    assert main(["bench", "probes", "--quick", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["device"].startswith("cpu")
    assert main(["probe", "--json", "--batches", "2", "--batch-size", "2", "--names", "loss", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["device"].startswith("cpu")


def test_probes_under_the_training_precision_against_float32_on_the_same_checkpoint():
    # At step 0 both runs are at the same point: only the probes' precision differs.
    fp32 = train(TrainConfig(seed=1, device="cpu", precision="bf16", **FAST), task=_task())
    half = train(TrainConfig(seed=1, device="cpu", precision="bf16", probe_precision="train", **FAST), task=_task())
    a, b = fp32.checkpoints[0].probes, half.checkpoints[0].probes
    assert a != b  # bfloat16 autocast did reach the probes
    assert all(abs(b[k] - a[k]) <= 0.05 * abs(a[k]) for k in a)  # within 5% here (loss, gradient norm)
    with pytest.raises(ValueError, match="probe_precision"):
        TrainConfig(probe_precision="bf16")
