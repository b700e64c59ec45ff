"""A study storage that outlives a database restart: each call retried with backoff, saying so in one line.

A worker of a shared study (``--storage postgresql://...``) used to die of the first ``OperationalError`` when
the server restarted. Here every call an Optuna study makes on its SQL storage is retried while the database is
unreachable, with a doubling pause (0.5 s up to 8 s) for up to ``patience`` seconds, and the worker says once per
outage, in one line on stderr, that it waits and when it is back. A worker that starts while the database is down
waits too, for ``EARLYEXIT_STORAGE_PATIENCE`` seconds (default 60; 0 fails at once, as for a mistyped URL). Stale pooled connections are replaced before
use (SQLAlchemy's ``pool_pre_ping``), so the first call after the restart succeeds.

A write that reached the database before the connection dropped may be retried once more; Optuna's writes are
keyed updates (a state, a value, an attribute), so a retry rewrites the same row, except ``create_new_trial``,
where a lost reply can leave one extra WAITING-free RUNNING trial for the heartbeat to fail later.
"""

from __future__ import annotations

import datetime
import functools
import os
import socket
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..names import PHASE_ATTR, WORKER

RETRIED = ("check_trial_is_updatable", "create_new_study", "create_new_trial", "get_all_studies", "get_all_trials",
           "get_best_trial", "get_n_trials", "get_study_directions", "get_study_id_from_name",
           "get_study_name_from_id", "get_study_system_attrs", "get_study_user_attrs", "get_trial",
           "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
           "get_trial_params", "get_trial_system_attrs", "get_trial_user_attrs", "set_study_system_attr",
           "set_study_user_attr", "set_trial_intermediate_value", "set_trial_param", "set_trial_state_values",
           "set_trial_system_attr", "set_trial_user_attr", "record_heartbeat", "_get_stale_trial_ids")


def storage_patience() -> float:
    """How long a worker waits for an unreachable database, in seconds: ``EARLYEXIT_STORAGE_PATIENCE``, default 60
    (at start; a worker already in a study waits at least 120)."""
    import os

    try:
        return max(0.0, float(os.environ.get("EARLYEXIT_STORAGE_PATIENCE", "60")))
    except ValueError:
        return 60.0


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: Optuna wraps SQLAlchemy's errors in ``StorageInternalError``) says the
    database cannot be reached now, rather than that the request was wrong."""
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover - SQL storages need SQLAlchemy
        return False
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, sa.DBAPIError) and getattr(exc, "connection_invalidated", False):
            return True
        if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.PendingRollbackError)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def with_retries(storage, *, patience: float = 120.0, say=lambda m: print(m, file=sys.stderr, flush=True)):
    """``storage`` (an ``RDBStorage``) with each of its calls retried while the database is unreachable."""
    state = {"down_since": None}

    def wrap(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            pause, started = 0.5, time.monotonic()
            while True:
                try:
                    result = method(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - only an unreachable database is retried
                    if not unreachable(exc) or time.monotonic() - started > patience:
                        raise
                    if state["down_since"] is None:
                        state["down_since"] = time.monotonic()
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        say(f"storage unreachable ({first[:120]}); retrying with backoff for up to {patience:.0f} s")
                    time.sleep(pause)
                    pause = min(2 * pause, 8.0)
                    continue
                if state["down_since"] is not None:
                    say(f"storage back after {time.monotonic() - state['down_since']:.1f} s")
                    state["down_since"] = None
                return result
        return call

    for name in RETRIED:
        method = getattr(storage, name, None)
        if method is not None:
            setattr(storage, name, wrap(method))
    return storage


def make_storage(url: str, *, heartbeat_seconds: int = 30):
    """An Optuna storage for ``url``, crash-safe where Optuna allows it.

    SQL URLs (``sqlite:///...``, ``postgresql://...``) get a heartbeat: a
    trial whose process died (``kill -9``, a lost machine) is failed after
    ``2 * heartbeat_seconds`` without a beat and retried with the same
    hyperparameters by the next worker that starts a trial. ``journal:PATH``
    is Optuna's journal file storage (several processes on one file system;
    no heartbeat, so a crashed trial stays RUNNING). Raises ValueError naming
    the URL when it does not connect.
    """
    from optuna.storages import JournalStorage, RDBStorage

    try:  # Optuna >= 4.9 renamed the callback; the old name warns and goes in 6.0
        from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
    except ImportError:  # pragma: no cover - older Optuna
        from optuna.storages import RetryFailedTrialCallback as Retry
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        name = url[len("journal:"):].removeprefix("//")
        path = Path(name).expanduser()
        if not name.strip() or path.is_dir():
            raise ValueError(f"storage {url!r}: a journal storage needs a file path (journal:runs/study.log).")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ValueError(f"storage {url!r}: cannot open the journal file ({exc.strerror or exc}).") from None
    if url.startswith("sqlite:///"):
        try:  # a folder for the database file; a file in the way, or no permission, is the URL's error
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"storage {url!r}: cannot make the database's folder ({exc.strerror or exc}).") from None
    # Workers started together on a fresh database race to create its tables; the loser sees a
    # unique-constraint error from the catalog (PostgreSQL) and simply tries again.
    started, pause, waiting = time.monotonic(), 0.5, False
    patience = storage_patience()
    attempt = 0
    while True:
        attempt += 1
        try:
            storage = RDBStorage(url, heartbeat_interval=heartbeat_seconds, grace_period=2 * heartbeat_seconds,
                                 heartbeat_stale_trial_callback=Retry(max_retry=3),
                                 engine_kwargs={"pool_pre_ping": True})
            return with_retries(storage, patience=max(patience, 120.0))  # a restart mid-study: wait, say so, go on
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or a server that is down
            text = str(exc)
            if attempt < 5 and ("duplicate key" in text or "already exists" in text or "UniqueViolation" in text):
                time.sleep(0.5 + attempt)
                continue
            if unreachable(exc) and time.monotonic() - started < patience:  # a server restarting: wait for it
                if not waiting:
                    first = text.strip().splitlines()[0][:120] if text.strip() else type(exc).__name__
                    print(f"storage {url!r} unreachable ({first}); retrying with backoff for up to {patience:.0f} s "
                          "(EARLYEXIT_STORAGE_PATIENCE)", file=sys.stderr, flush=True)
                    waiting = True
                time.sleep(pause)
                pause = min(2 * pause, 8.0)
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise ValueError(f"storage {url!r} does not connect ({first}); check the URL, that the server runs, "
                             "and the credentials.") from None


def _heartbeat_grace(storage) -> float | None:
    """The storage's heartbeat grace period in seconds, or None where it keeps no heartbeat."""
    try:
        interval = storage.get_heartbeat_interval()
    except (AttributeError, NotImplementedError):
        return None
    if not interval:
        return None
    return float(getattr(storage, "grace_period", None) or 2 * interval)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def fail_orphaned_trials(study: optuna.Study, *, max_retry: int = 3) -> list[int]:
    """Fail the RUNNING trials that a process of this host started and that process is gone (``kill -9``),
    and queue each again at once with the same hyperparameters (as Optuna's heartbeat retry does, up to
    ``max_retry`` times per config). Trials of other hosts are left to the storage's heartbeat.

    A RUNNING trial that names no worker is one whose process died between creating it and starting its
    objective (a ``kill -9`` in that window): it never records a heartbeat either, so the storage's heartbeat
    would leave it RUNNING for ever. Where the storage keeps heartbeats, such a trial older than their grace
    period is failed too, whatever its host: a live one names its worker within a second of its creation.

    Returns the numbers of the trials failed. Called when a worker starts and again before it exits.
    """
    host, failed = socket.gethostname(), []
    grace, now = _heartbeat_grace(study._storage), datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(WORKER)
        if owner is None:
            if grace is None or t.datetime_start is None or (now - t.datetime_start).total_seconds() <= grace:
                continue
        else:
            worker_host, _, pid = str(owner).rpartition(":")
            if worker_host != host or not pid.isdigit() or _alive(int(pid)):
                continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        failed.append(t.number)
        history = [*t.system_attrs.get("retry_history", []), t.number]
        if len(history) > max_retry:
            continue
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            user_attrs={k: v for k, v in t.user_attrs.items() if k == PHASE_ATTR},
            system_attrs={**t.system_attrs, "failed_trial": t.number, "retry_history": history}))
    return failed
