"""The date and the machine a figure was measured on, as plots and benchmarks print them: one place for both."""

from __future__ import annotations

import os
import platform
import time


def machine() -> str:
    """The machine, in words: ``"2-core x86_64"``."""
    return f"{os.cpu_count()}-core {platform.machine()}"


def today() -> str:
    """Today's date in UTC, as figures carry it: ``"2026-12-07"``. UTC, so that a figure measured on a GPU
    machine in another time zone carries the same date as the logs it sits beside."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def stamp() -> str:
    """Today's date and the machine: ``"2026-12-07, 2-core x86_64"``."""
    return f"{today()}, {machine()}"
