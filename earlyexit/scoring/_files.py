"""Scorer files: a transfer scorer as JSON, a fitted scorer with joblib; the package's default scorer."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import SCORER_FORMAT, ScorerFileError, read_joblib, same_minor
from ._transfer import TransferScorer

DEFAULT_SCORER = Path(__file__).resolve().parent.parent / "assets" / "default_scorer.json"
"""The package's default scorer (``earlyexit fit --default``): a transfer scorer fitted on every shipped
sweep, with its card."""


def save_scorer(scorer, path: str | Path) -> None:
    """Write a scorer: a transfer scorer as JSON, a fitted scorer with joblib."""
    if isinstance(scorer, TransferScorer):
        Path(path).write_text(json.dumps(scorer.to_dict(), indent=1) + "\n")
        return
    if str(path).endswith(".json"):
        raise ScorerFileError(f"{path}: only a transfer scorer (`earlyexit fit --transfer`) is saved as JSON; "
                              "name a .joblib file.")
    import joblib

    joblib.dump({"format": SCORER_FORMAT, "scorer": scorer, "versions": scorer.versions}, path)


def load_scorer(path: str | Path, *, allow_pickle: bool = False):
    """Load a scorer saved by ``earlyexit fit`` (``"default"``: the package's default scorer); a foreign or
    outdated file is a clear error. A transfer scorer is JSON (plain data); a fitted scorer is a pickle,
    refused unless ``allow_pickle`` (loading a pickle runs the code it holds)."""
    if str(path) == "default":
        if not DEFAULT_SCORER.exists():
            raise ScorerFileError(f"the package has no default scorer ({DEFAULT_SCORER}); make it with "
                                  "`earlyexit fit --default`.")
        path = DEFAULT_SCORER
    path = Path(path)
    if path.exists() and path.read_bytes()[:1] == b"{":  # a transfer scorer is JSON, whatever its name
        return _load_transfer(path)
    blob = read_joblib(path, "scorer", f"`earlyexit fit SWEEP... -o {path}`", allow_pickle=allow_pickle)
    if not isinstance(blob, dict) or blob.get("format") != SCORER_FORMAT or "scorer" not in blob:
        raise ScorerFileError(f"{path}: scorer format {blob.get('format') if isinstance(blob, dict) else '?'} "
                              f"is not {SCORER_FORMAT}; refit it with `earlyexit fit`.")
    same_minor(blob.get("versions", {}).get("scikit-learn"), path, "`earlyexit fit`")
    return blob["scorer"]


def _load_transfer(path: Path):
    try:
        return TransferScorer.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ScorerFileError(f"{path}: not a transfer scorer file ({exc}); make one with "
                              "`earlyexit fit --transfer`.") from None
