"""The bound rule: prune a trial whose optimistic final falls below the K-th best final already completed.

Pure arithmetic on numbers the caller gathers (the replay's ``IntervalJudge`` and ``ResolutionPruner(bound=...)``
call it alike). A trial's optimistic final is its dev metric at the rung, plus the gain a model predicts for it
(:class:`~earlyexit.scoring.FinalInterval`, fitted on other tasks), plus a margin calibrated on this study's own
completed trials: the ``coverage`` quantile, at split conformal's finite-sample rank, of their errors at the same
rung (final minus reading minus predicted gain). No bound exists until enough trials have completed for that rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def conformal_margin(errors: Sequence[float], coverage: float) -> float:
    """The ``coverage`` quantile of ``errors`` at rank ``ceil((n + 1) * coverage)``; ``inf`` where n is too small."""
    ordered = sorted(e for e in errors if math.isfinite(e))
    rank = math.ceil((len(ordered) + 1) * coverage)
    return math.inf if rank > len(ordered) else float(ordered[rank - 1])


def bound_prunes(value: float, gain: float, errors: Sequence[float], finals: Sequence[float], *, keep: int,
                 coverage: float) -> bool:
    """Whether a reading ``value`` with predicted ``gain`` is below the ``keep``-th best of ``finals`` even at its
    optimistic bound (``errors``: the completed trials' errors at this rung)."""
    done = sorted((f for f in finals if math.isfinite(f)), reverse=True)
    if len(done) < keep or not (math.isfinite(value) and math.isfinite(gain)):
        return False
    return value + gain + conformal_margin(errors, coverage) < done[keep - 1]
