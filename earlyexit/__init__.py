"""earlyexit: prune the losing configurations of a hyperparameter search early, where the dev set can tell."""

from importlib.metadata import PackageNotFoundError, version

try:  # one source of truth: pyproject.toml, through the installed package's metadata
    __version__ = version("earlyexit")
except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
    __version__ = "0+unknown"
del PackageNotFoundError, version

from .protocol import report  # noqa: E402  (the one call a plain Optuna objective makes; numpy and names only)

__all__ = ["__version__", "report"]
