"""Sweeps: the logged-sweep format, the sweep runner, and loading logs for replay."""

from ._format import FORMAT_VERSION, SweepFormatError, read_manifest
from ._load import Sweep, load
from ._runner import PlannedRun, plan, run_sweep
from ._seed_import import import_seed_results

__all__ = ["FORMAT_VERSION", "PlannedRun", "Sweep", "SweepFormatError", "import_seed_results", "load", "plan",
           "read_manifest", "run_sweep"]
