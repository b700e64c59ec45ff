"""The cold-start scorer: rank trials by one probe at the current step."""

from __future__ import annotations

import math


from ..names import Signature


class ProbeRankScorer:
    """Score a trial by a single probe value at the decision step.

    The score is the probe value, negated when lower is better (the loss),
    so a higher score always means a more promising trial. It predicts an
    order, not an accuracy. Used when no fitted scorer is given, and as the
    ``loss_only`` policy of the replay.

    Parameters:
        probe: the probe name, e.g. ``"loss"``.
        higher_is_better: True when a larger probe value is better.
    """

    predicts_metric = False
    """Its score orders trials; it is not an estimate of the final metric (see the study runner)."""

    def __init__(self, probe: str = "loss", *, higher_is_better: bool = False):
        self.probe = probe
        self.higher_is_better = higher_is_better

    def score(self, signature: Signature, step: int) -> float:
        """Score from ``signature[step][probe]``; NaN when the value is missing or not finite."""
        value = signature.get(step, {}).get(self.probe, math.nan)
        if value is None or not math.isfinite(value):
            return math.nan
        return value if self.higher_is_better else -value

    def reads(self, decision_steps) -> dict[int, tuple[str, ...]]:
        """What scoring at ``decision_steps`` reads: the probe, at each of them."""
        return {int(d): (self.probe,) for d in sorted(decision_steps)}

    def __repr__(self) -> str:
        return f"ProbeRankScorer({self.probe!r}, higher_is_better={self.higher_is_better})"
