"""Sweeps: the logged-sweep format, the sweep runner, and loading logs for replay."""

from ._format import FORMAT_VERSION, SweepFormatError, read_manifest
from ._runner import PlannedRun, plan, run_sweep

__all__ = ["FORMAT_VERSION", "PlannedRun", "SweepFormatError", "plan", "read_manifest", "run_sweep"]
