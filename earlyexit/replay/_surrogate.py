"""The ``hyperparameters`` baseline: predict each config's final accuracy from its hyperparameters alone.

A surrogate fitted on the prior sweeps' (hyperparameters, final accuracy)
pairs, the way a model-based sampler learns where good configs are, ranks
the held-out configs before any of them trains: it keeps the top K and
trains only those. It is the bar geometry has to clear to be worth its
probes: where the prior sweeps searched the same space (other seeds of one
grid), knowing the hyperparameters is already most of what there is to
know; where the space or the task moves, hyperparameters may transfer
worse than what a run's own first steps show.

Encoding: a parameter whose name contains ``learning_rate`` becomes its
base-10 log; other numbers stay as they are; a text parameter (a schedule)
becomes one 0/1 column per value seen. Only columns the replayed sweep
also has are used, so a parameter the prior sweeps never varied is left
out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..scoring import fit_scorer
from ._simulate import Run

SURROGATE_STEP = 0
"""The step the surrogate decides at: before training, so only the kept configs train."""


def encode_params(params: Mapping[str, object]) -> dict[str, float]:
    """Hyperparameters as numeric features (see the module docstring); NaN for a non-positive rate."""
    out = {}
    for name, value in params.items():
        if isinstance(value, str):
            out[f"{name}={value}"] = 1.0
        elif "learning_rate" in name:
            v = float(value)
            out[f"log10_{name}"] = math.log10(v) if v > 0 else math.nan
        else:
            out[name] = float(value)
    return out


def feature_names(fit_runs: Sequence[Run], replayed: Sequence[Run]) -> list[str]:
    """The encoded columns both the fit set and the replayed runs have, in a stable order."""
    seen = {n for r in fit_runs for n in encode_params(r.params)}
    there = {n for r in replayed for n in encode_params(r.params)}
    return sorted(seen & there)


def as_param_runs(runs: Sequence[Run], names: Sequence[str]) -> list[Run]:
    """``runs`` with a signature of their encoded hyperparameters only, at :data:`SURROGATE_STEP`.

    A text column a run lacks is 0 (another value was used), not missing.
    """
    out = []
    for r in runs:
        enc = encode_params(r.params)
        values = {n: enc.get(n, 0.0 if "=" in n else math.nan) for n in names}
        out.append(replace(r, signature={SURROGATE_STEP: values}))
    return out


def fit_surrogate(fit_runs: Sequence[Run], names: Sequence[str], groups: Sequence[str],
                  cv_groups: Sequence[str] | None = None):
    """A :class:`~earlyexit.scoring.FittedScorer` from encoded hyperparameters to final accuracy.

    ``fit_runs`` are completed runs (``as_param_runs`` already applied); the model is chosen among
    ridge, gradient boosting and a Gaussian process by held-out Spearman, holding out ``cv_groups``
    (default ``groups``: each study in turn).
    """
    if not names:
        raise ValueError("no hyperparameter is shared by the fit sweeps and the replayed sweep.")
    return fit_scorer([r.signature for r in fit_runs], [r.final for r in fit_runs], groups, names=list(names),
                      steps=[SURROGATE_STEP], prefixes=[SURROGATE_STEP], cv_groups=cv_groups)
