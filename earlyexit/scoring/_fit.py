"""Fit scorers on logged sweeps, choose the model by grouped cross-validation, save and load them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from ._estimator import SignatureRegressor
from ._features import FeatureSchema, signature_matrix

SCORER_FORMAT = 1
CANDIDATES: dict[str, dict] = {
    "ridge(alpha=0.1)": {"model": "ridge", "alpha": 0.1},
    "ridge(alpha=1)": {"model": "ridge", "alpha": 1.0},
    "ridge(alpha=10)": {"model": "ridge", "alpha": 10.0},
    "gradient_boosting": {"model": "gradient_boosting"},
    "gaussian_process": {"model": "gaussian_process"},
}


class ScorerFileError(ValueError):
    """A scorer file that cannot be used here; the message says what to do."""


@dataclass
class FittedScorer:
    """One fitted estimator per prefix step, with the schema each expects.

    ``score(signature, step)`` predicts the final metric from the signature
    up to ``step`` with the estimator of the largest prefix <= ``step``
    (NaN before the first prefix). Attributes hold the cross-validation
    report that chose each model.
    """

    schemas: dict[int, FeatureSchema]
    estimators: dict[int, SignatureRegressor]
    report: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return next(iter(self.schemas.values())).names

    def score(self, signature: Mapping[int, Mapping[str, float]], step: int) -> float:
        usable = [p for p in self.schemas if p <= step]
        if not usable:
            return math.nan
        p = max(usable)
        X = signature_matrix([signature], self.schemas[p])
        return float(self.estimators[p].predict(X)[0])

    def check_probes(self, measured: Sequence[str], where: str = "the study") -> None:
        """Raise :class:`ScorerFileError` if ``measured`` lacks a feature the scorer needs."""
        missing = [n for n in self.names if n not in measured and n not in ("dev_accuracy", "dev_loss")]
        if missing:
            raise ScorerFileError(f"the scorer needs probes {missing}, which {where} does not measure; "
                                  f"add them to probes.names or fit a scorer on what you measure.")


def grouped_spearman(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> float:
    """Mean over groups (studies) of the Spearman correlation of predictions and finals."""
    values = []
    for g in np.unique(groups):
        m = groups == g
        if m.sum() >= 3 and np.ptp(y_true[m]) > 0 and np.ptp(y_pred[m]) > 0:
            values.append(stats.spearmanr(y_true[m], y_pred[m]).statistic)
    return float(np.mean(values)) if values else math.nan


def cross_validate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, cv_groups: np.ndarray,
                   candidates: Mapping[str, dict] = CANDIDATES) -> dict[str, float]:
    """Held-out Spearman of every candidate: leave one ``cv_groups`` value out at a time."""
    scores = {}
    folds = np.unique(cv_groups)
    for name, params in candidates.items():
        pred = np.full(len(y), np.nan)
        for f in folds:
            test = cv_groups == f
            if test.all():
                continue
            est = SignatureRegressor(**params).fit(X[~test], y[~test])
            pred[test] = est.predict(X[test])
        ok = np.isfinite(pred)
        scores[name] = grouped_spearman(y[ok], pred[ok], groups[ok]) if ok.any() else math.nan
    return scores


def fit_scorer(signatures: Sequence[Mapping[int, Mapping[str, float]]], finals: Sequence[float],
               groups: Sequence, *, names: Sequence[str], steps: Sequence[int], prefixes: Sequence[int],
               cv_groups: Sequence | None = None, candidates: Mapping[str, dict] = CANDIDATES,
               decision_step_only: bool = False, progress=lambda msg: None) -> FittedScorer:
    """Fit one estimator per prefix, each chosen by grouped cross-validation.

    ``groups`` says which study (seed, sweep) a trial belongs to, for the
    within-study Spearman; ``cv_groups`` (default ``groups``) is what is
    held out together. Each prefix's features are the signature at every
    probe step up to it, or, with ``decision_step_only``, at the prefix step
    alone (one checkpoint to measure instead of all of them).
    """
    y = np.asarray(finals, dtype=float)
    groups = np.asarray(groups)
    cv = np.asarray(cv_groups) if cv_groups is not None else groups
    if len(np.unique(cv)) < 2:
        raise ValueError("cross-validation needs at least two groups (seeds or sweeps) to hold out.")
    schemas, estimators, report = {}, {}, {}
    for prefix in prefixes:
        schema = FeatureSchema(tuple(names), (prefix,) if decision_step_only else
                               tuple(s for s in steps if s <= prefix))
        X = signature_matrix(signatures, schema)
        cv_scores = cross_validate(X, y, groups, cv, candidates)
        finite = {k: v for k, v in cv_scores.items() if math.isfinite(v)}
        best = max(finite, key=finite.get) if finite else "ridge(alpha=1)"
        estimators[prefix] = SignatureRegressor(**candidates[best]).fit(X, y)
        schemas[prefix] = schema
        report[prefix] = {"chosen": best, "heldout_spearman": cv_scores.get(best, math.nan), "candidates": cv_scores}
        progress(f"prefix {prefix}: {best}, held-out Spearman {cv_scores.get(best, math.nan):.3f}")
    return FittedScorer(schemas, estimators, report, _versions())


def _versions() -> dict:
    import sklearn

    from .. import __version__

    return {"format": SCORER_FORMAT, "earlyexit": __version__, "scikit-learn": sklearn.__version__}


def save_scorer(scorer: FittedScorer, path: str | Path) -> None:
    import joblib

    joblib.dump({"format": SCORER_FORMAT, "scorer": scorer, "versions": scorer.versions}, path)


def load_scorer(path: str | Path) -> FittedScorer:
    """Load a scorer saved by ``earlyexit fit``; a foreign or outdated file is a clear error."""
    import joblib
    import sklearn

    path = Path(path)
    if not path.exists():
        raise ScorerFileError(f"{path}: no such scorer file; make one with `earlyexit fit SWEEP... -o {path}`.")
    try:
        blob = joblib.load(path)
    except Exception as exc:  # joblib raises many types on foreign files
        raise ScorerFileError(f"{path}: not a scorer file ({type(exc).__name__}); make one with `earlyexit fit`.") from None
    if not isinstance(blob, dict) or blob.get("format") != SCORER_FORMAT or "scorer" not in blob:
        raise ScorerFileError(f"{path}: scorer format {blob.get('format') if isinstance(blob, dict) else '?'} "
                              f"is not {SCORER_FORMAT}; refit it with `earlyexit fit`.")
    saved = blob.get("versions", {}).get("scikit-learn")
    if saved and saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ScorerFileError(f"{path}: fitted with scikit-learn {saved}, this is {sklearn.__version__}; "
                              "refit it with `earlyexit fit` (pickled estimators do not move across versions).")
    return blob["scorer"]
