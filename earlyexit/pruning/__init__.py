"""Pruning: Optuna pruners that decide on dev measurements (the resolution rule) or probe-signature scores."""

from ._decide import Decision, decide
from ._default import DEFAULT_RULE
from ._geometric import GeometricPruner
from ._lookahead import bound_upper, fallback_margins, lookahead_judge
from ._lookahead_pruner import LookaheadPruner
from ._bound import bound_prunes
from ._resolution import Reading, ResolutionRule, lead_resolved, warming_up
from ._resolution_pruner import ResolutionPruner
from ._synchronous import SynchronousResolutionPruner

__all__ = ["DEFAULT_RULE", "Decision", "GeometricPruner", "LookaheadPruner", "Reading", "ResolutionPruner", "ResolutionRule", "SynchronousResolutionPruner", "bound_prunes", "bound_upper", "decide",
           "fallback_margins", "lead_resolved", "lookahead_judge", "warming_up"]
