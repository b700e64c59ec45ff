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
    margin: float = 0.0,
    lr_progress: float | None = None,
    min_lr_progress: float = 0.0,
) -> Decision:
    """Keep a trial if few enough other trials scored higher at the same step.

    Rules, in order:

    1. a NaN or infinite ``score`` prunes ("diverged" geometry);
    2. a trial that has spent less than ``min_lr_progress`` of its learning-rate
       schedule (``lr_progress``, 0..1; None: unknown, judged) keeps: too early
       to judge (a long warmup has barely moved the model);
    3. fewer than ``n_startup_trials`` finite ``others`` keeps (cold start);
    4. with ``keep_top=K``: prune when at least K others scored more than
       ``margin`` higher (``margin`` in the score's units; a fitted scorer's
       score is the predicted final metric, so 0.005 is half a point);
    5. with ``keep_fraction=f``: prune when at least ``ceil(f * (n + 1))``
       others scored more than ``margin`` higher, n the number of finite others.

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
    if not margin >= 0:
        raise ValueError(f"margin must be at least 0, but got {margin=}.")
    if not 0 <= min_lr_progress <= 1:
        raise ValueError(f"min_lr_progress must be in [0, 1], but got {min_lr_progress=}.")
    if not math.isfinite(score):
        return Decision(True, f"score is {score} at step {step}")
    if lr_progress is not None and lr_progress < min_lr_progress:
        return Decision(False, f"too early to judge at step {step}: {lr_progress:.1%} of the learning-rate schedule "
                               f"spent, below {min_lr_progress:.1%}")
    finite = [o for o in others if math.isfinite(o)]
    if len(finite) < n_startup_trials:
        return Decision(False, f"startup: {len(finite)} of {n_startup_trials} trials seen at step {step}")
    better = sum(o > score + margin for o in finite)
    rank = better + 1
    limit = keep_top if keep_top is not None else math.ceil(keep_fraction * (len(finite) + 1))
    what = f"top {keep_top}" if keep_top is not None else f"top {keep_fraction:.0%} ({limit})"
    if margin:
        what += f" (margin {margin:.2g})"
    if better >= limit:
        return Decision(True, f"ranked {rank} of {len(finite) + 1} at step {step}, outside the {what}")
    return Decision(False, f"ranked {rank} of {len(finite) + 1} at step {step}, inside the {what}")
