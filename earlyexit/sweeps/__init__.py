"""Sweeps: the logged-sweep format, the sweep runner, and loading logs for replay."""

from ._catalogue import catalogue, catalogue_row, find_sweeps, format_catalogue
from ._ceiling import ceiling_summary, seed_ceiling
from ._costs import PARTS, PROBE_COSTS, ProbeCosts, read_probe_costs, write_probe_costs
from ._format import FORMAT_VERSION, SweepFormatError, read_manifest
from ._load import Sweep, load
from ._runner import PlannedRun, plan, run_sweep
from ._seed_import import import_seed_results

__all__ = ["FORMAT_VERSION", "PARTS", "PROBE_COSTS", "ProbeCosts", "read_probe_costs", "write_probe_costs", "PlannedRun", "Sweep", "SweepFormatError", "import_seed_results", "load", "plan",
           "read_manifest", "run_sweep", "ceiling_summary", "seed_ceiling",
           "catalogue", "catalogue_row", "find_sweeps", "format_catalogue"]
