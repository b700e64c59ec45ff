"""Replay: retro-simulate pruning policies over logged sweeps (compute saved against regret)."""

from ._replay import frontier, plot, replay
from ._simulate import Run, evaluate, runs_of

__all__ = ["Run", "evaluate", "frontier", "plot", "replay", "runs_of"]
