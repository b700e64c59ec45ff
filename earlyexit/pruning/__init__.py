"""Pruning: an Optuna pruner that keeps the trials whose probe signature scores best."""

from ._decide import Decision, decide
from ._geometric import GeometricPruner

__all__ = ["Decision", "GeometricPruner", "decide"]
