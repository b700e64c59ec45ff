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

import functools
import sys
import time

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
    """Whether ``exc`` says the database cannot be reached now (not that the request was wrong)."""
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover - SQL storages need SQLAlchemy
        return False
    if isinstance(exc, sa.DBAPIError) and getattr(exc, "connection_invalidated", False):
        return True
    return isinstance(exc, (sa.OperationalError, sa.InterfaceError))


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
