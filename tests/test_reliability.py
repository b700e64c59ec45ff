"""Crash safety: kill -9 of `earlyexit run` and `earlyexit sweep` at several points, then the same command again."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from earlyexit.sweeps import load
from conftest import tiny_spec

SPEC = tiny_spec("crash", grid={"learning_rate": [1e-3, 3e-4, 1e-4]}, max_steps=60, steps=[0, 20, 40],
                 study={"storage": "sqlite:///{db}", "n_trials": 3, "heartbeat_seconds": 1})


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "earlyexit", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before the kill point: {proc.stderr.read()[-2000:]}")
        try:
            if predicate():
                return
        except Exception:  # the database may not exist yet
            pass
        time.sleep(0.2)
    raise AssertionError("kill point not reached")


@pytest.mark.parametrize("kill_after_complete", [0, 1])
def test_kill_9_during_a_trial_then_resume(tmp_path, kill_after_complete):
    db = tmp_path / "c.db"
    spec = tmp_path / "crash.toml"
    spec.write_text(SPEC.format(db=db))
    url = f"sqlite:///{db}"

    def reached():
        trials = optuna.load_study(study_name="crash", storage=url).trials
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        running = [t for t in trials if t.state == TrialState.RUNNING and "dev_accuracy@0" in t.user_attrs]
        return done >= kill_after_complete and running

    proc = _start(["run", str(spec), "--no-progress"], tmp_path)
    _wait_for(reached, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2.5)  # longer than the grace period (2 x heartbeat_seconds)
    again = subprocess.run([sys.executable, "-m", "earlyexit", "run", str(spec), "--no-progress"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name="crash", storage=url).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["learning_rate"] for t in complete) == [1e-4, 3e-4, 1e-3]  # each config once
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_kill_9_then_the_same_command_at_once_retries_with_the_default_heartbeat(tmp_path):
    # The heartbeat (30 s by default) has not expired when the command is run again: the dead worker's
    # RUNNING trial is recognised by its host and process id, failed and retried at once.
    db = tmp_path / "d.db"
    spec = tmp_path / "crash.toml"
    spec.write_text(SPEC.format(db=db).replace("heartbeat_seconds = 1\n", ""))
    url = f"sqlite:///{db}"

    def running():
        trials = optuna.load_study(study_name="crash", storage=url).trials
        return [t for t in trials if t.state == TrialState.RUNNING and "dev_accuracy@0" in t.user_attrs]

    proc = _start(["run", str(spec), "--no-progress"], tmp_path)
    _wait_for(running, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([sys.executable, "-m", "earlyexit", "run", str(spec), "--no-progress"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name="crash", storage=url).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["learning_rate"] for t in complete) == [1e-4, 3e-4, 1e-3]
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params


SWEEP = tiny_spec("ksweep", grid={"learning_rate": [1e-3, 3e-4, 1e-4]}, max_steps=120, steps=[0, 20],
                  probes=("loss",))


def test_kill_9_of_a_sweep_loses_at_most_the_run_in_progress(tmp_path):
    spec = tmp_path / "ksweep.toml"
    spec.write_text(SWEEP)
    folder = tmp_path / "ksweep"

    def one_run_logged():  # r001 is then in progress: its rows are written when it ends
        return len((folder / "runs.csv").read_text().splitlines()) == 2

    proc = _start(["sweep", str(spec)], tmp_path)
    _wait_for(one_run_logged, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([sys.executable, "-m", "earlyexit", "sweep", str(spec)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 of 3 runs logged, 2 left" in again.stdout  # r001's claim (its worker died) is taken over
    sweep = load(folder, require_complete=True)
    assert sorted(sweep.runs["run_id"]) == ["r000", "r001", "r002"]
    assert not sweep.checkpoints.duplicated(["run_id", "step"]).any()
    assert len(sweep.checkpoints) == 9  # steps 0 and 20, and the final step, of each run
