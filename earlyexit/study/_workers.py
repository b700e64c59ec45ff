"""``earlyexit run SPEC --devices 0,1``: one worker process per device on the same study."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Sequence


def device_list(devices: str) -> list[str]:
    """``"0,1"`` -> ``["cuda:0", "cuda:1"]``; names (``cpu``, ``cuda:2``, ``mps``) pass through."""
    out = [d.strip() for d in devices.split(",") if d.strip()]
    if not out:
        raise ValueError("--devices needs a comma-separated list, e.g. 0,1,2,3 (CUDA indices) or cpu,cpu.")
    return [f"cuda:{d}" if d.isdigit() else d for d in out]


def check_shared_storage(url: str, workers: int) -> None:
    """Several writers need a storage made for them: SQLite locks badly, so it is refused for more than one."""
    if workers > 1 and url.startswith("sqlite"):
        raise ValueError(f"{workers} workers on SQLite ({url}) lock each other out; use --storage "
                         "journal:runs/<name>.log on one machine, or postgresql://user@host/db across machines.")


def run_workers(spec_path: str, devices: Sequence[str], *, storage: str, threads: int, extra: Sequence[str] = (),
                log: Callable[[str], None] = print) -> int:
    """Start one ``earlyexit run`` per device, each pinned to it, on one study; stream every worker's
    output with its device as prefix; return the worst exit status."""
    procs = []
    for device in devices:
        cmd = [sys.executable, "-m", "earlyexit", "run", spec_path, "--device", device, "--storage", storage,
               "--threads", str(threads), "--no-progress", *extra]
        procs.append((device, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    lock = threading.Lock()

    def stream(device, proc):
        for line in proc.stdout:
            with lock:
                log(f"[{device}] {line.rstrip()}")

    threads_ = [threading.Thread(target=stream, args=dp, daemon=True) for dp in procs]
    for t in threads_:
        t.start()
    codes = [proc.wait() for _, proc in procs]
    for t in threads_:
        t.join(timeout=5)
    return max(codes)
