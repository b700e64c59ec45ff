"""earlyexit: prune hyperparameter searches by the loss landscape early in training."""

from importlib.metadata import PackageNotFoundError, version

try:  # one source of truth: pyproject.toml, through the installed package's metadata
    __version__ = version("earlyexit")
except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
    __version__ = "0+unknown"
del PackageNotFoundError, version
