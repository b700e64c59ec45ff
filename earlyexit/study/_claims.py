"""Several ``earlyexit sweep`` processes on one sweep folder: each run is claimed before it is trained.

``<sweep>/.claims/<run_id>`` holds ``host pid`` of the process training that
run; it is created exclusively (one winner) and removed when the run is
logged. A claim left by a process that died on this host is stale and is
taken over; a claim from another host is trusted (delete it by hand if that
host is gone). ``<sweep>/.lock`` serialises writes to the CSV tables and the
manifest between processes (POSIX ``flock``; without it, on Windows, one
process per folder).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CLAIMS = ".claims"
LOCK = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Hold the sweep folder's write lock (blocks while another process holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def claim(folder: Path, run_id: str) -> bool:
    """Claim ``run_id`` for this process; False if a live process holds it."""
    claims = folder / CLAIMS
    claims.mkdir(parents=True, exist_ok=True)
    path = claims / run_id
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        return True
    return False


def release(folder: Path, run_id: str) -> None:
    (folder / CLAIMS / run_id).unlink(missing_ok=True)


def _stale(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return True  # unreadable or half-written: its writer died between create and write
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
