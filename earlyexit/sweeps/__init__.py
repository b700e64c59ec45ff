"""Sweeps: the logged-sweep format, loading and validating logs, the catalogue, probe costs and the
seed-to-seed noise ceiling. Torch-free: what trains a sweep is :func:`earlyexit.study.run_sweep`."""

from ._catalogue import catalogue, catalogue_row, find_sweeps, format_catalogue
from ._ceiling import ceiling_summary, seed_ceiling
from ._costs import PARTS, PROBE_COSTS, ProbeCosts, format_costs, read_probe_costs, write_probe_costs
from ._evidence import DevRecords, load_dev_records
from ._format import (FORMAT_VERSION, MANIFEST, SweepFormatError, append_run, done_run_ids, drop_unfinished,
                      encode_classes, read_manifest, write_manifest)
from ._load import Sweep, load
from ._seed_import import import_seed_results
from .._lazy import lazy_attributes

__getattr__ = lazy_attributes(__name__, {"write_report": "_report", "constant_accuracy": "_report",
                                         "correlation_heatmap": "_report"})  # matplotlib only when a report is written

__all__ = ["DevRecords", "FORMAT_VERSION", "MANIFEST", "append_run", "done_run_ids", "drop_unfinished", "encode_classes",
           "write_manifest", "constant_accuracy", "correlation_heatmap", "PARTS", "PROBE_COSTS", "ProbeCosts", "Sweep", "SweepFormatError", "catalogue",
           "catalogue_row", "ceiling_summary", "find_sweeps", "format_catalogue", "format_costs",
           "import_seed_results", "load", "load_dev_records", "read_manifest", "read_probe_costs", "seed_ceiling", "write_probe_costs", "write_report"]
