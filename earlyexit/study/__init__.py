"""Studies: TOML specs run as Optuna studies whose trials train, probe, and are pruned; and sweeps,
which train every config of a spec to the end and log it (``earlyexit sweep``).

The spec (:func:`load_spec`) is torch-free; the runners import the training stack when first used.
"""

from .._lazy import lazy_attributes
from ._pruner_spec import KINDS as PRUNER_KINDS
from ._pruner_spec import GeometricSettings, PrunerSettings, ResolutionSettings
from ._spec import Distribution, SpecError, StudySpec, load_spec, parse_spec, with_device

_LAZY = {"Objective": "_runner", "default_threads": "_runner", "fail_orphaned_trials": "_storage", "open_study": "_runner", "run_study": "_runner", "summary": "_table",
         "trial_table": "_table", "PlannedRun": "_sweep", "plan": "_sweep", "run_sweep": "_sweep",
         "measure_probe_costs": "_probe_costs", "check_shared_storage": "_workers", "device_list": "_workers",
         "run_workers": "_workers", "make_storage": "_storage", "Ledger": "_ledger"}

__all__ = ["Distribution", "Objective", "default_threads", "fail_orphaned_trials", "PlannedRun", "PRUNER_KINDS", "GeometricSettings", "PrunerSettings",
           "ResolutionSettings", "SpecError", "StudySpec", "load_spec",
           "open_study", "parse_spec", "plan", "run_study", "run_sweep", "summary", "trial_table", "with_device",
           "measure_probe_costs", "check_shared_storage", "device_list", "run_workers", "make_storage", "Ledger"]

__getattr__ = lazy_attributes(__name__, _LAZY)
