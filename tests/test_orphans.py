"""A trial whose process died between creating it and starting its objective is failed, not left RUNNING."""

import os
import socket
import time

import optuna
from optuna.trial import TrialState

from earlyexit.names import WORKER
from earlyexit.study._storage import fail_orphaned_trials, make_storage


def test_a_nameless_running_trial_past_the_heartbeat_grace_is_failed_and_a_fresh_or_live_one_is_not(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_seconds=1)  # grace: 2 s
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask()  # created, then its process died before the objective named its worker
    live = study.ask()
    live.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    time.sleep(2.5)
    fresh = study.ask()
    assert fail_orphaned_trials(study) == [dead.number]
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[dead.number] == TrialState.FAIL
    assert states[live.number] == states[fresh.number] == TrialState.RUNNING
    queued = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert [t.system_attrs["failed_trial"] for t in queued] == [dead.number]


def test_without_heartbeats_a_nameless_trial_is_left_to_its_owner(tmp_path):
    study = optuna.create_study(study_name="j", storage=make_storage(f"journal:{tmp_path}/j.log"))
    study.ask()
    assert fail_orphaned_trials(study) == []
