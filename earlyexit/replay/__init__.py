"""Replay: retro-simulate pruning policies over logged sweeps (compute saved against regret).

Torch-free: it reads sweep logs. Fitting from logs (:func:`fit_on_runs`, :func:`pooled_runs`,
:func:`study_groups`) and the config a replay chooses (:func:`chosen_config`) are public here.
"""

from ._choose import chosen_config
from ._fit import CHEAP_PROBES, HeldOut, fit_on_runs, fit_sweeps, pooled_runs, scorers_for, study_groups, surrogates_for
from ._policies import Policy, policy_table
from ._replay import frontier, plot, replay, save_figures
from ._simulate import Run, evaluate, runs_of
from ._tables import format_replay
from ._transfer import format_transfer, leave_one_task_out, plot_transfer
from .._lazy import lazy_attributes

_LAZY = {"held_sets": "_engine", "fit_interval": "_interval", "fit_predictor": "_lookahead", "fit_transfer":
         "_transfer_rule", "compare": "_nested", "study_size": "_nested", "NESTED_POLICIES": "_nested",
         "format_nested": "_nested_report", "plot_nested": "_nested_report", "format_study_size": "_nested_report",
         "plot_study_size": "_nested_report"}
__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["CHEAP_PROBES", "HeldOut", "Policy", "Run", "chosen_config", "evaluate", "fit_on_runs", "fit_sweeps", "frontier",
           "format_replay", "format_transfer", "leave_one_task_out", "plot", "plot_transfer", "policy_table", "pooled_runs", "replay", "runs_of", "save_figures",
           "scorers_for", "study_groups", "surrogates_for", *_LAZY]
