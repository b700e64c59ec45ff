"""What the scorers' fitting and their files share: the file format's version and its error (below both)."""

from __future__ import annotations

SCORER_FORMAT = 1
"""The joblib scorer file's format version."""


class ScorerFileError(ValueError):
    """A scorer file that cannot be used here; the message says what to do."""


def versions() -> dict:
    """The format and package versions a scorer records when it is fitted."""
    import sklearn

    from .. import __version__

    return {"format": SCORER_FORMAT, "earlyexit": __version__, "scikit-learn": sklearn.__version__}


class PickleRefused(ScorerFileError):
    """A pickle (joblib) file given without the explicit permission to run the code it may hold."""


def read_joblib(path, what: str, remedy: str, *, allow_pickle: bool = False) -> object:
    """A joblib file's object; ``what`` names the kind of file and ``remedy`` how to make one in the errors.

    A joblib file is a pickle: loading it runs whatever code it holds. Without ``allow_pickle`` it is refused
    (:class:`PickleRefused`) before a byte of it is unpickled; pass it only for a file you made or trust
    (``--allow-pickle`` on the command line, ``allow_pickle = true`` in a spec's ``[pruner]``).
    """
    from pathlib import Path

    import joblib

    if not Path(path).exists():
        raise ScorerFileError(f"{path}: no such {what} file; make one with {remedy}.")
    if not allow_pickle:
        raise PickleRefused(f"{path}: a {what} saved as a pickle (joblib): loading it would run any code inside it, "
                            "so it is refused. If you made this file or trust whoever did, pass --allow-pickle "
                            "(allow_pickle=True in Python, allow_pickle = true in a spec's [pruner]).")
    try:
        return joblib.load(path)
    except Exception as exc:  # joblib raises many types on foreign files
        raise ScorerFileError(f"{path}: not a {what} file ({type(exc).__name__}); make one with {remedy}.") from None


def same_minor(saved, path, remedy: str) -> None:
    """Refuse an estimator pickled under another scikit-learn minor version (they do not move across them)."""
    import sklearn

    if saved and str(saved).split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ScorerFileError(f"{path}: fitted with scikit-learn {saved}, this is {sklearn.__version__}; "
                              f"refit it with {remedy} (pickled estimators do not move across versions).")


class Params:
    """scikit-learn's ``get_params``/``set_params`` for an estimator whose settings are the attributes named in
    ``PARAMS`` (set in ``__init__``); an unknown name is an error."""

    PARAMS: tuple[str, ...] = ()

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in self.PARAMS}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self.PARAMS:
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}.")
            setattr(self, k, v)
        return self
