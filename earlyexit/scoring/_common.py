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
