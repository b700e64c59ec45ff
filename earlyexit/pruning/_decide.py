"""The pruning rule as a pure function: usable without Optuna, tested directly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """Whether to prune, and why, in words a user reads in the trial table."""

    prune: bool
    reason: str


def decide(
    score: float,
    others: Sequence[float],
    *,
    step: int,
    keep_top: int | None = None,
    keep_fraction: float | None = None,
    n_startup_trials: int = 0,
) -> Decision:
    """Keep a trial if few enough other trials scored higher at the same step.

    Rules, in order:

    1. a NaN or infinite ``score`` prunes ("diverged" geometry);
    2. fewer than ``n_startup_trials`` finite ``others`` keeps (cold start);
    3. with ``keep_top=K``: prune when at least K others scored strictly higher;
    4. with ``keep_fraction=f``: prune when at least ``ceil(f * (n + 1))``
       others scored strictly higher, n the number of finite others.

    Ties keep. Non-finite ``others`` are ignored.
    """
    if (keep_top is None) == (keep_fraction is None):
        raise ValueError(f"give exactly one of keep_top and keep_fraction, but got {keep_top=}, {keep_fraction=}.")
    if keep_top is not None and keep_top < 1:
        raise ValueError(f"keep_top must be at least 1, but got {keep_top=}.")
    if keep_fraction is not None and not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], but got {keep_fraction=}.")
    if n_startup_trials < 0:
        raise ValueError(f"n_startup_trials must be at least 0, but got {n_startup_trials=}.")
    if not math.isfinite(score):
        return Decision(True, f"score is {score} at step {step}")
    finite = [o for o in others if math.isfinite(o)]
    if len(finite) < n_startup_trials:
        return Decision(False, f"startup: {len(finite)} of {n_startup_trials} trials seen at step {step}")
    better = sum(o > score for o in finite)
    rank = better + 1
    limit = keep_top if keep_top is not None else math.ceil(keep_fraction * (len(finite) + 1))
    what = f"top {keep_top}" if keep_top is not None else f"top {keep_fraction:.0%} ({limit})"
    if better >= limit:
        return Decision(True, f"ranked {rank} of {len(finite) + 1} at step {step}, outside the {what}")
    return Decision(False, f"ranked {rank} of {len(finite) + 1} at step {step}, inside the {what}")
