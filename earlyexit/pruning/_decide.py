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
    dev: float | None = None,
    others_dev: Sequence[float] | None = None,
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

    With ``dev`` (the trial's dev metric at the step) and ``others_dev`` (the others', in the order of
    ``others``), another trial outranks this one only if it also has a strictly higher dev metric: where
    the dev evaluation does not separate two trials (both still at the constant classifier, say), the
    scorer's ranking of them is not trusted. A pair with a non-finite dev value is ranked by score alone.

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
    if others_dev is not None and len(others_dev) != len(others):
        raise ValueError(f"others_dev must give one dev value per other trial, but got {len(others_dev)} for "
                         f"{len(others)} others.")
    if not math.isfinite(score):
        return Decision(True, f"score is {score} at step {step}")
    if lr_progress is not None and lr_progress < min_lr_progress:
        return Decision(False, f"too early to judge at step {step}: {lr_progress:.1%} of the learning-rate schedule "
                               f"spent, below {min_lr_progress:.1%}")
    threshold = score + margin
    mine = float(dev) if dev is not None else math.nan
    if others_dev is not None and math.isfinite(mine):  # outranked only on a higher dev metric too
        n_finite = better = 0
        for o, d in zip(others, others_dev):
            if math.isfinite(o):
                n_finite += 1
                better += o > threshold and (not math.isfinite(d) or d > mine)
    else:  # (the replay calls this millions of times: no per-call lists beyond the finite scores)
        finite = [o for o in others if math.isfinite(o)]
        n_finite, better = len(finite), sum(o > threshold for o in finite)
    if n_finite < n_startup_trials:
        return Decision(False, f"startup: {n_finite} of {n_startup_trials} trials seen at step {step}")
    rank = better + 1
    limit = keep_top if keep_top is not None else math.ceil(keep_fraction * (n_finite + 1))
    what = f"top {keep_top}" if keep_top is not None else f"top {keep_fraction:.0%} ({limit})"
    if margin:
        what += f" (margin {margin:.2g})"
    if others_dev is not None and dev is not None:
        what += " (outranked only on a higher dev metric)"
    if better >= limit:
        return Decision(True, f"ranked {rank} of {n_finite + 1} at step {step}, outside the {what}")
    return Decision(False, f"ranked {rank} of {n_finite + 1} at step {step}, inside the {what}")
