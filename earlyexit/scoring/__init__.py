"""Scoring: map a trial's probe signature to a predicted final metric (higher is better)."""

from ._rank import ProbeRankScorer

__all__ = ["ProbeRankScorer"]
