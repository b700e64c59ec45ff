"""Cost-aware choice of what a scorer reads: which probes, at which probe steps.

Every probe read at every checkpoint costs training steps (a dev evaluation
costs about as much as 14 steps of a small encoder; the Hessian trace 20),
and a pruner that pays more than it saves loses to the plain rule "train
every config to step 100, keep the best by dev accuracy". So for each prefix
step the fit tries a small family of feature sets (probe families x step
windows), measures each by grouped cross-validation, and keeps the cheapest
whose held-out regret is within ``regret_tolerance`` of the best set's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..names import DEV_METRICS, HESSIAN_PROBES

CostFn = Callable[[Sequence[str], Sequence[int]], float]
"""``cost(names, steps)``: training steps that reading ``names`` at ``steps`` adds to one trial."""


@dataclass(frozen=True)
class FeatureSet:
    """Probe (and metric) names read at some probe steps; ``label`` says which family and window."""

    names: tuple[str, ...]
    steps: tuple[int, ...]
    label: str


def candidate_feature_sets(names: Sequence[str], steps: Sequence[int], prefix: int) -> list[FeatureSet]:
    """Probe families x step windows at ``prefix``, without duplicates.

    Families: the loss alone; the probes without Hessian-vector products;
    every probe; each with and without the dev metrics when those are among
    ``names``. Windows: the prefix step alone, the last two probe steps (adds
    the change between them), every probe step up to the prefix.
    """
    probes = [n for n in names if n not in DEV_METRICS]
    metrics = [n for n in names if n in DEV_METRICS]
    families = {"loss": [p for p in probes if p == "loss"],
                "no_hessian": [p for p in probes if p not in HESSIAN_PROBES],
                "all_probes": probes}
    upto = [s for s in sorted(steps) if s <= prefix]
    if not upto or upto[-1] != prefix:
        raise ValueError(f"prefix {prefix} is not one of the probe steps {sorted(steps)}.")
    windows = {"at_prefix": tuple(upto[-1:]), "last_two": tuple(upto[-2:]), "all_steps": tuple(upto)}
    sets, seen = [], set()
    for fam, fam_probes in families.items():
        for with_metrics in ((False, True) if metrics else (False,)):
            chosen = tuple(fam_probes + (metrics if with_metrics else []))
            if not chosen:
                continue
            for win, win_steps in windows.items():
                key = (frozenset(chosen), win_steps)
                if key in seen:
                    continue
                seen.add(key)
                sets.append(FeatureSet(chosen, win_steps, f"{fam}{'+dev' if with_metrics else ''}@{win}"))
    return sets


def topk_regret(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, keep_top: int = 1) -> float:
    """Mean over groups of (best final - best final among the top ``keep_top`` predictions), in metric units.

    Ties in the prediction at the cut are averaged over: the expected regret when the tied rows are
    kept in a random order (no luck from the row order).
    """
    values = []
    for g in np.unique(groups):
        m = groups == g
        yt, yp = y_true[m], np.where(np.isfinite(y_pred[m]), y_pred[m], -np.inf)
        if not len(yt):
            continue
        order = np.argsort(-yp, kind="stable")
        k = min(keep_top, len(yt))
        cut = yp[order[k - 1]]
        sure = yt[yp > cut]
        tied = yt[yp == cut]
        need = k - len(sure)
        best_sure = float(sure.max()) if len(sure) else -math.inf
        # `need` of the tied rows are kept, each subset equally likely: expected best of the kept set.
        v = np.sort(tied)
        n = len(v)
        p_max = np.array([math.comb(i, need - 1) for i in range(n)], dtype=float) / math.comb(n, need)
        best_kept = float(np.sum(p_max * np.maximum(v, best_sure)))
        values.append(float(yt.max()) - best_kept)
    return float(np.mean(values)) if values else math.nan


def choose_cheapest(results: Sequence[dict], regret_tolerance: float) -> dict:
    """The cheapest result whose ``regret`` is within ``regret_tolerance`` of the lowest; ties by Spearman.

    Each result is a dict with ``regret``, ``spearman`` and ``cost`` (NaN regrets are never chosen
    unless every one is NaN).
    """
    finite = [r for r in results if math.isfinite(r["regret"])]
    if not finite:
        return max(results, key=lambda r: (r["spearman"] if math.isfinite(r["spearman"]) else -2, -r["cost"]))
    floor = min(r["regret"] for r in finite)
    good = [r for r in finite if r["regret"] <= floor + regret_tolerance]
    return min(good, key=lambda r: (r["cost"], -(r["spearman"] if math.isfinite(r["spearman"]) else -2)))
