"""Probe signatures as feature rows: probes x steps up to a prefix, with transforms.

A *signature* is ``{step: {name: value}}`` for one trial: what the pruner
knows at a probe step. :func:`signature_matrix` turns many signatures into
a feature matrix with a fixed, named schema so a fitted scorer can check
that a study measures what it was trained on.

Transforms (all computed from one trial's own values, so nothing leaks
between trials):

- ``raw``: the value;
- ``log``: ``sign(x) * log1p(|x|)`` (probes span orders of magnitude);
- ``delta``: the change of the log value since the previous probe step.

No transform depends on other trials (ranks within a study, say): a live
pruner scores each trial as it reaches a decision step, before the trials
after it exist, so a trial's score must come from its own signature alone.
The pruner compares scores across trials instead (keep the top K).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..names import Signature

TRANSFORMS = ("raw", "log", "delta")


@dataclass(frozen=True)
class FeatureSchema:
    """Which probes at which steps, with which transforms, in which column order.

    Attributes:
        names: probe (or metric) names, e.g. ``("loss", "hessian_trace", "dev_accuracy")``.
        steps: the probe steps used, ascending; the last is the prefix step.
        transforms: subset of :data:`TRANSFORMS`.
    """

    names: tuple[str, ...]
    steps: tuple[int, ...]
    transforms: tuple[str, ...] = ("log", "delta")

    def __post_init__(self):
        if not self.names:
            raise ValueError("a feature schema needs at least one name.")
        if not self.steps or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"steps must be increasing and non-empty, but got {self.steps}.")
        bad = [t for t in self.transforms if t not in TRANSFORMS]
        if bad or not self.transforms:
            raise ValueError(f"transforms must be a non-empty subset of {TRANSFORMS}, but got {self.transforms}.")

    @property
    def columns(self) -> list[str]:
        cols = []
        for name in self.names:
            for i, step in enumerate(self.steps):
                for t in self.transforms:
                    if t == "delta" and i == 0:
                        continue
                    cols.append(f"{t}:{name}@{step}")
        return cols

    @property
    def prefix(self) -> int:
        return self.steps[-1]


def _log(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x) if math.isfinite(x) else (
        math.copysign(50.0, x) if math.isinf(x) else math.nan)


def signature_row(signature: Signature, schema: FeatureSchema) -> list[float]:
    """One feature row; missing values are NaN (the estimator imputes them)."""
    row = []
    for name in schema.names:
        prev = None
        for i, step in enumerate(schema.steps):
            value = signature.get(step, {}).get(name, math.nan)
            value = math.nan if value is None else float(value)
            logv = _log(value)
            for t in schema.transforms:
                if t == "raw":
                    row.append(value if math.isfinite(value) else (1e12 if value == math.inf else math.nan))
                elif t == "log":
                    row.append(logv)
                elif i > 0:
                    row.append(logv - prev if prev is not None else math.nan)
            prev = logv
    return row


def signature_matrix(signatures: Sequence[Signature], schema: FeatureSchema) -> np.ndarray:
    """Stack :func:`signature_row` for many trials into an ``(n_trials, n_features)`` float array."""
    return np.array([signature_row(s, schema) for s in signatures], dtype=float).reshape(
        len(signatures), len(schema.columns))
