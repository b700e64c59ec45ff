"""One sweep logged by several machines through a study storage (``earlyexit sweep SPEC --storage URL``).

Machines that share no folder share the storage users already run for their studies (PostgreSQL; any Optuna
storage works). The storage holds a ledger: an Optuna study named ``sweep:<name>`` with one trial per planned
run, its run's index as the trial's one parameter (``run``).

- **Claimed once.** A worker takes a run by popping a waiting trial (Optuna hands each waiting trial to one
  caller). Its training stays claimed by that trial while it runs; a trial whose run is already complete or
  running in another trial yields at once (so that a run queued twice, by two workers seeding the ledger at the
  same moment, is still trained once).
- **A killed worker's run is taken over.** The trial beats a heartbeat while it trains (Optuna's, on SQL
  storages, every ``heartbeat_seconds``); a trial that misses it for twice that long is failed by the next worker
  that asks for a run, and its run is queued again (Optuna's retry callback; past three retries, by the re-seed
  below). A trial whose process is gone from this host is failed and queued at once, heartbeat or not (so a
  journal-file ledger, which has none, recovers on one machine too).
- **Nothing missing at the end.** A worker that finds no waiting trial queues again every planned run that
  has no complete, running or waiting trial, and stops when every run is complete.
- **The rows travel with the ledger.** A complete trial holds its run's rows (the run row, its checkpoint rows,
  its dev predictions) as a user attribute; each worker writes every complete run it does not have yet into its
  own sweep folder, under the folder's lock, after each run and when it stops. So every machine ends with the
  whole sweep, in the usual format.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import TrialState

from ..names import WORKER
from ._storage import fail_orphaned_trials

RUN_PARAM = "run"
ROWS_ATTR = "earlyexit:rows"
RUN_ID_ATTR = "earlyexit:run_id"


def ledger_name(sweep_name: str) -> str:
    return f"sweep:{sweep_name}"


class Ledger:
    """The ledger of the sweep's planned ``run_ids`` (in plan order) in ``storage`` (an Optuna storage)."""

    pause = 5.0  # seconds between looks while the last runs train elsewhere

    def __init__(self, storage, sweep_name: str, run_ids: Sequence[str]):
        from optuna.storages import RDBStorage

        self.run_ids = list(run_ids)
        self._beats = isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None
        self.study = optuna.create_study(storage=storage, study_name=ledger_name(sweep_name), direction="maximize",
                                         load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
        self._distribution = optuna.distributions.IntDistribution(0, max(0, len(self.run_ids) - 1))

    def _holders(self) -> dict[str, list[optuna.trial.FrozenTrial]]:
        """run_id -> the trials that hold it (complete, running or waiting)."""
        out: dict[str, list] = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING,
                                                                TrialState.WAITING)):
            index = t.params.get(RUN_PARAM, t.system_attrs.get("fixed_params", {}).get(RUN_PARAM))
            if index is not None and 0 <= int(index) < len(self.run_ids):
                out.setdefault(self.run_ids[int(index)], []).append(t)
        return out

    def complete(self) -> dict[str, dict]:
        """run_id -> the rows of every complete run."""
        out = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            rows = t.user_attrs.get(ROWS_ATTR)
            if rows is not None and t.user_attrs.get(RUN_ID_ATTR) in self.run_ids:
                out.setdefault(t.user_attrs[RUN_ID_ATTR], rows)
        return out

    def seed(self) -> int:
        """Queue every planned run that no trial holds; returns how many were queued."""
        held = self._holders()
        queued = 0
        for i, run_id in enumerate(self.run_ids):
            if run_id not in held:
                self.study.enqueue_trial({RUN_PARAM: i}, user_attrs={RUN_ID_ATTR: run_id}, skip_if_exists=False)
                queued += 1
        return queued

    def waiting(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def work(self, train: Callable[[int], dict], *, limit: int | None = None,
             after: Callable[[], None] = lambda: None) -> int:
        """Train runs until none is left (or ``limit`` were trained): ``train(index)`` trains run ``index`` and
        returns its rows; ``after()`` is called after each trial ends. Returns the number trained here."""
        trained = 0

        def objective(trial: optuna.Trial) -> float:
            nonlocal trained
            index = trial.suggest_int(RUN_PARAM, 0, len(self.run_ids) - 1)
            run_id = self.run_ids[index]
            others = [t for t in self._holders().get(run_id, []) if t.number != trial.number
                      and t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
            if others:  # queued twice, or a sampled index: another trial has it
                raise optuna.TrialPruned(f"run {run_id} is held by trial {others[0].number}")
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
            rows = train(index)
            trained += 1
            value = rows["run"].get("final_metric")
            value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0
            finished[:] = [index, rows, value]
            trial.set_user_attr(ROWS_ATTR, rows)
            return value

        while limit is None or trained < limit:
            fail_orphaned_trials(self.study)  # a killed worker of this host (no heartbeat needed): queued again
            if not self.waiting():
                if len(self.complete()) >= len(self.run_ids):
                    break
                if not self.seed():
                    if not self._running_elsewhere():
                        break
                    time.sleep(self.pause)  # runs training elsewhere: wait for them, or for their heartbeat to lapse
                    if self._beats:
                        optuna.storages.fail_stale_trials(self.study)  # a lapsed one is queued again (Optuna's retry)
                    continue
            finished: list = []
            try:
                self.study.optimize(objective, n_trials=1, catch=())
            except (ValueError, AssertionError, optuna.exceptions.UpdateFinishedTrialError):
                # Failed as stale while it trained (its heartbeat could not reach the database, say), so Optuna
                # refuses to finish it (a ValueError, or an AssertionError from its post-processing): the run was
                # trained all the same; keep it, unless its queued retry has finished it meanwhile.
                if not finished:
                    raise
                self._keep(*finished)
            after()
        return trained

    def _keep(self, index: int, rows: dict, value: float) -> None:
        """Record run ``index``'s rows in a complete trial of its own (its own trial was failed under it)."""
        run_id = self.run_ids[index]
        if any(t.state == TrialState.COMPLETE for t in self._holders().get(run_id, [])):
            return
        self.study.add_trial(optuna.trial.create_trial(
            params={RUN_PARAM: index}, distributions={RUN_PARAM: self._distribution}, value=value,
            user_attrs={RUN_ID_ATTR: run_id, ROWS_ATTR: rows}))
        print(f"run {run_id}: its trial was failed as stale while it trained (a lost heartbeat); kept as trained",
              flush=True)

    def _running_elsewhere(self) -> bool:
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

