"""earlyexit export: every format from a real (tiny) study, and the errors."""

import json
import subprocess
import sys

import pytest
import yaml

from earlyexit.cli import main
from earlyexit.study import load_spec, run_study
from conftest import tiny_spec

SPEC = tiny_spec("ex", grid={"learning_rate": [1e-3, 2e-4]}, max_steps=6, steps=[0, 3], probes=("loss",),
                 study={"storage": "sqlite:///{db}", "n_trials": 2}, train={"warmup_ratio": 0.1})


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    path = root / "ex.toml"
    path.write_text(SPEC.format(db=root / "ex.db"))
    run_study(load_spec(path), show_progress=False)
    return path


def _export(spec_path, capsys, *args):
    assert main(["export", str(spec_path), *args]) == 0
    return capsys.readouterr().out


def test_json_and_yaml_carry_the_metric_and_the_study(spec_path, capsys):
    out = json.loads(_export(spec_path, capsys, "--format", "json"))
    assert out["study"] == "ex" and out["metric"] == "dev_accuracy" and 0 <= out["value"] <= 1
    assert out["params"]["learning_rate"] in (1e-3, 2e-4)
    assert out["config"]["max_steps"] == 6 and out["config"]["warmup_ratio"] == 0.1
    top = yaml.safe_load(_export(spec_path, capsys, "--format", "yaml", "--top", "2"))
    assert len(top) == 2 and top[0]["value"] >= top[1]["value"]


def test_hf_builds_training_arguments(spec_path, capsys, tmp_path):
    from transformers import TrainingArguments

    kwargs = json.loads(_export(spec_path, capsys, "--format", "hf"))
    kwargs["output_dir"] = str(tmp_path)
    args = TrainingArguments(**kwargs)
    assert args.max_steps == 6 and args.per_device_train_batch_size == 16
    assert args.learning_rate in (1e-3, 2e-4) and args.max_grad_norm == 1.0


def test_args_are_run_glue_flags(spec_path, capsys):
    line = _export(spec_path, capsys, "--format", "args").strip()
    assert "--task_name sst2" in line and "--max_steps 6" in line and "--do_train" in line
    assert "--learning_rate " in line and "earlyexit:" not in line  # bundled model resolved to its folder


def test_script_runs_offline_and_trains(spec_path, capsys, tmp_path):
    script = tmp_path / "train_best.py"
    assert main(["export", str(spec_path), "--format", "script", "-o", str(script)]) == 0
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={"MAX_STEPS": "3", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step 3/3" in done.stdout and "dev accuracy" in done.stdout


def test_export_errors(spec_path, capsys, tmp_path):
    assert main(["export", "nope", "--storage", f"sqlite:///{tmp_path}/none.db", "--format", "json"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["export", str(spec_path), "--format", "hf", "--top", "2"]) == 2
    assert "exports one config" in capsys.readouterr().err
    assert main(["export", "ex", "--format", "json"]) == 2
    assert "--storage" in capsys.readouterr().err


SWEEP = tiny_spec("exsweep", grid={"learning_rate": [1e-3, 1e-5], "seed": [0, 1, 2]}, max_steps=8, steps=[0, 4])


def test_export_the_config_a_replay_would_choose(tmp_path, capsys):
    from earlyexit.study import run_sweep
    from earlyexit.sweeps import load

    (tmp_path / "exsweep.toml").write_text(SWEEP)
    folder = tmp_path / "exsweep"
    run_sweep(load_spec(tmp_path / "exsweep.toml"), folder, log=lambda m: None)
    assert main(["export", str(folder), "--format", "json", "--prefix", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "leave-one-seed-out" in out["study"] and out["params"]["learning_rate"] in (1e-3, 1e-5)
    runs = load(folder).runs
    chosen = runs[runs["learning_rate"] == out["params"]["learning_rate"]]
    assert out["value"] == pytest.approx(chosen["final_accuracy"].mean())
    assert out["config"]["max_steps"] == 8 and out["config"]["probe_steps"] == [0, 4]
    assert main(["export", str(folder), "--format", "hf", "--prefix", "3"]) == 2
    assert "not a probe step" in capsys.readouterr().err
