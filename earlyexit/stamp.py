"""The date and the machine a figure was measured on, as plots and benchmarks print them: one place for both."""

from __future__ import annotations

import os
import platform
import time


def machine() -> str:
    """The machine, in words: ``"2-core x86_64"``."""
    return f"{os.cpu_count()}-core {platform.machine()}"


def today() -> str:
    """Today's date, as figures carry it: ``"2026-12-07"``."""
    return time.strftime("%Y-%m-%d")


def stamp() -> str:
    """Today's date and the machine: ``"2026-12-07, 2-core x86_64"``."""
    return f"{today()}, {machine()}"
