"""earlyexit: prune hyperparameter searches by the loss landscape early in training."""

__version__ = "0.1.0"
