"""Studies: TOML specs run as Optuna studies whose trials train, probe, and are pruned."""

from ._runner import Objective, open_study, run_study, summary, trial_table
from ._spec import Distribution, PrunerSpec, SpecError, StudySpec, load_spec, parse_spec

__all__ = ["Distribution", "Objective", "PrunerSpec", "SpecError", "StudySpec", "load_spec", "open_study",
           "parse_spec", "run_study", "summary", "trial_table"]
