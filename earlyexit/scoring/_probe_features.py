"""Geometry for the look-ahead's predictor: scale-free features made of the probes, and their choice inside the
training folds.

Each feature is a number without units, so that a 2-layer and a 6-layer model, a binary and a 6-class task share
a scale:

- ``lr_x_top_eigenvalue``: log10 of the peak learning rate times the top Hessian eigenvalue;
- ``lr_x_critical_sharpness``: log10 of the peak learning rate times the critical sharpness (2 over the critical
  step along the optimizer's update);
- ``gradient_noise``: log10 of the per-batch gradient variance over the squared gradient norm;
- ``trace_over_top``: log10 of the Hutch++ trace over the top eigenvalue (an effective rank);
- ``relative_sam``: log10 of the SAM sharpness over the probe batches' loss;
- ``relative_train_loss``: the probe batches' loss over ln(classes).

:func:`choose_probe_features` picks the set the predictor reads by the error that matters to the look-ahead:
each task of the training data in turn is predicted by the others, refit on its own completed trials in random
arrival orders (:func:`refit_errors`), and the set with the least mean 80% quantile of the absolute error (what
an 80% interval must cover) wins; ties go to the smaller set, and no probe at all is the first candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..names import PROBE_FEATURE_NAMES
from ._lookahead import nearest, standardization, study_distances, study_medians


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 and math.isfinite(x) else math.nan


def _get(values: Mapping, name: str) -> float:
    try:
        return float(values.get(name, math.nan))
    except (TypeError, ValueError):
        return math.nan


PROBE_FEATURES: dict[str, Callable[[Mapping, float], float]] = {
    "lr_x_top_eigenvalue": lambda v, lr: _log10(lr * _get(v, "hessian_top_eigenvalue")),
    "lr_x_critical_sharpness": lambda v, lr: _log10(lr * _get(v, "critical_sharpness")),
    "gradient_noise": lambda v, lr: _log10(_get(v, "gradient_variance") / _get(v, "gradient_norm") ** 2),
    "trace_over_top": lambda v, lr: _log10(_get(v, "hessian_trace") / _get(v, "hessian_top_eigenvalue")),
    "relative_sam": lambda v, lr: _log10(_get(v, "sam_sharpness") / _get(v, "loss")),
    "relative_train_loss": lambda v, lr: _get(v, "loss") / _get(v, "uniform_loss"),
}
"""Each probe feature from one step's signature (probe name -> value) and the trial's peak learning rate."""
assert tuple(PROBE_FEATURES) == PROBE_FEATURE_NAMES

PROBES_READ: dict[str, tuple[str, ...]] = {
    "lr_x_top_eigenvalue": ("hessian_top_eigenvalue",),
    "lr_x_critical_sharpness": ("critical_sharpness",),
    "gradient_noise": ("gradient_variance", "gradient_norm"),
    "trace_over_top": ("hessian_trace", "hessian_top_eigenvalue"),
    "relative_sam": ("sam_sharpness", "loss"),
    "relative_train_loss": ("loss",),
}
"""The probes each feature reads (what a policy reading it pays for at a checkpoint)."""
assert tuple(PROBES_READ) == PROBE_FEATURE_NAMES


def probes_read(features: Sequence[str]) -> tuple[str, ...]:
    """The probes that ``features`` read, each once, in the order of first use."""
    return tuple(dict.fromkeys(p for f in features for p in PROBES_READ[f]))


def candidate_sets(names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """What :func:`choose_probe_features` chooses among: none, each feature alone, all of them."""
    return ((),) + tuple((n,) for n in names) + (tuple(names),)


CANDIDATE_SETS: tuple[tuple[str, ...], ...] = candidate_sets(tuple(PROBE_FEATURES))

COVERAGE, SHRINK, K = 0.8, 0.25, 40


def probe_feature_row(values: Mapping, peak_lr: float, names: Sequence[str]) -> list[float]:
    """The features ``names`` of one reading (NaN where a probe it needs is missing)."""
    unknown = [n for n in names if n not in PROBE_FEATURES]
    if unknown:
        raise ValueError(f"unknown probe feature(s) {unknown}; known: {list(PROBE_FEATURES)}")
    return [PROBE_FEATURES[n](values, peak_lr) for n in names]


def refit_errors(train_X: np.ndarray, train_gain: np.ndarray, X: np.ndarray, gain: np.ndarray, runs: np.ndarray, *,
                 k: int = K, shrink: float = SHRINK, orders: int = 2, metric_weight: float = 1.0) -> np.ndarray:
    """|true - predicted gain| of every reading ``X`` of one study (``runs``: each reading's trial), predicted from
    ``train_X`` and the study's trials completed before it (distances shrunk by ``shrink``), one trial at a time
    in ``orders`` random arrival orders. Features are standardized on ``train_X``, the dev metric's column
    weighted by ``metric_weight`` (as :class:`~earlyexit.scoring.FinalPredictor` standardizes)."""
    return refit_errors_by_k(train_X, train_gain, X, gain, runs, ks=(k,), shrink=shrink, orders=orders,
                             metric_weight=metric_weight)[k]


def refit_errors_by_k(train_X: np.ndarray, train_gain: np.ndarray, X: np.ndarray, gain: np.ndarray,
                      runs: np.ndarray, *, ks: Sequence[int] = (K,), shrink: float = SHRINK, orders: int = 2,
                      metric_weight: float = 1.0) -> dict[int, np.ndarray]:
    """:func:`refit_errors` at each number of neighbours of ``ks``: ``{k: errors}``. The distances are computed
    once: a query's ``k`` nearest prior readings are the first ``k`` of its largest ``k``'s, nearest first."""
    center, scale = standardization(train_X, metric_weight)
    Zt, Z = (train_X - center) / scale, (X - center) / scale
    prior_d, top = nearest(Z, Zt, max(ks))
    prior_g = train_gain[top]
    if len(set(ks)) > 1:  # nearest first, so that each k takes a prefix
        order = np.argsort(prior_d, axis=1, kind="stable")
        prior_d, prior_g = np.take_along_axis(prior_d, order, axis=1), np.take_along_axis(prior_g, order, axis=1)
    D = study_distances(Z, Z, shrink)
    names = sorted(set(np.asarray(runs).tolist()))
    rows = {r: np.flatnonzero(np.asarray(runs) == r) for r in names}
    errors: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for o in range(orders):
        done = np.array([], dtype=int)
        for i in np.random.default_rng(o).permutation(len(names)):
            r = rows[names[i]]
            study_d = D[np.ix_(r, done)]
            for k in errors:
                pred = study_medians(prior_d[r, :k], prior_g[r, :k], study_d, gain[done], k)
                errors[k].append(np.abs(gain[r] - pred))
            done = np.concatenate([done, r])
    return {k: np.concatenate(e) if e else np.array([]) for k, e in errors.items()}


def choose_probe_features(X: np.ndarray, P: np.ndarray, gain: np.ndarray, groups: Sequence, studies: Sequence,
                          runs: Sequence, *, orders: int = 2, candidates=None,
                          names: Sequence[str] = tuple(PROBE_FEATURES)) -> tuple[tuple[str, ...], dict]:
    """The probe features to read, chosen on this training data alone: ``(names, {candidate: criterion})``.

    ``X``: the base readings; ``P``: every feature of ``names`` (by default every :data:`PROBE_FEATURES` column; the
    record features are chosen the same way), in that order; ``candidates``: by default :func:`candidate_sets`
    of ``names``; ``gain``: the true gains;
    ``groups``: each reading's task; ``studies``: its study (a sweep seed), ``runs``: its trial. Readings with a
    missing value are left out of every candidate's figures alike. With fewer than three tasks, none is chosen."""
    X, P, gain = np.asarray(X, float), np.asarray(P, float), np.asarray(gain, float)
    groups, studies, runs = np.asarray(groups), np.asarray(studies), np.asarray(runs)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(P).all(axis=1) & np.isfinite(gain)
    tasks = sorted(set(groups[ok].tolist()))
    if len(tasks) < 3:
        return (), {}
    names = list(names)
    if P.shape[1] != len(names):
        raise ValueError(f"P has {P.shape[1]} columns for {len(names)} feature names")
    scores = {}
    for cand in candidate_sets(names) if candidates is None else candidates:
        cols = np.hstack([X, P[:, [names.index(n) for n in cand]]])
        scores[cand] = _fold_criterion(cols, gain, groups, studies, runs, ok, tasks, orders=orders)
    best = min(scores, key=lambda c: (round(scores[c], 6), len(c)))
    return best, {",".join(c) or "none": v for c, v in scores.items()}


def _fold_criterion(X, gain, groups, studies, runs, ok, tasks, *, orders: int, **settings) -> float:
    """The choice's criterion: each task of ``tasks`` predicted by the others and refit on its own trials
    (:func:`refit_errors` with ``settings``); the mean over tasks of the mean over its studies of the 80% quantile
    of the absolute error."""
    k = settings.pop("k", K)
    return _fold_criteria(X, gain, groups, studies, runs, ok, tasks, orders=orders, ks=(k,), **settings)[k]


def _fold_criteria(X, gain, groups, studies, runs, ok, tasks, *, orders: int, ks: Sequence[int],
                   **settings) -> dict[int, float]:
    """:func:`_fold_criterion` at each number of neighbours of ``ks`` (:func:`refit_errors_by_k`): ``{k: criterion}``."""
    per_task: dict[int, list[float]] = {k: [] for k in ks}
    for t in tasks:
        train = ok & (groups != t)
        q: dict[int, list[float]] = {k: [] for k in ks}
        for s in sorted(set(studies[ok & (groups == t)].tolist())):
            m = ok & (studies == s)
            for k, e in refit_errors_by_k(X[train], gain[train], X[m], gain[m], runs[m], orders=orders, ks=ks,
                                          **settings).items():
                q[k].append(float(np.quantile(e, COVERAGE)))
        for k in ks:
            per_task[k].append(float(np.mean(q[k])))
    return {k: float(np.mean(v)) for k, v in per_task.items()}


NEIGHBOUR_CANDIDATES: tuple[tuple[int, float], ...] = ((40, 1.0), (20, 1.0), (10, 1.0), (40, 2.0), (20, 2.0),
                                                       (10, 2.0))
"""What :func:`choose_neighbours` chooses among: ``(k, metric_weight)``, the shipped predictor's first."""


def choose_neighbours(X: np.ndarray, gain: np.ndarray, groups: Sequence, studies: Sequence, runs: Sequence, *,
                      orders: int = 2, candidates=NEIGHBOUR_CANDIDATES) -> tuple[tuple[int, float], dict]:
    """The predictor's neighbours (``k``) and the dev metric's weight in its distance, chosen on this training data
    alone by the criterion of :func:`choose_probe_features`: ``((k, metric_weight), {label: criterion})``. Ties
    go to the earlier candidate; with fewer than three tasks, the first is kept."""
    X, gain = np.asarray(X, float), np.asarray(gain, float)
    groups, studies, runs = np.asarray(groups), np.asarray(studies), np.asarray(runs)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(gain)
    tasks = sorted(set(groups[ok].tolist()))
    if len(tasks) < 3:
        return tuple(candidates[0]), {}
    scores = {}
    for w in dict.fromkeys(float(c[1]) for c in candidates):  # one distance computation per weight, every k
        ks = tuple(dict.fromkeys(int(c[0]) for c in candidates if float(c[1]) == w))
        by_k = _fold_criteria(X, gain, groups, studies, runs, ok, tasks, orders=orders, ks=ks, metric_weight=w)
        scores.update({(k, w): v for k, v in by_k.items()})
    scores = {(int(c[0]), float(c[1])): scores[(int(c[0]), float(c[1]))] for c in candidates}
    best = min(scores, key=lambda c: (round(scores[c], 6), list(scores).index(c)))
    return best, {f"k {k}, metric weight {w:g}": v for (k, w), v in scores.items()}
