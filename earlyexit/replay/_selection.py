"""The selection rule of the fair comparison and its summaries (below the rules' and the surrogate's nesting).

Figures are ``(compute saved, regret, test regret)`` triples: saved as a fraction of training every config to
the end, regrets in points of the sweep's metric (test regret NaN where the sweep has no test metric).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MEAN_BOUND = 0.5
WORST_BOUND = 1.0
"""The selection's bounds in points, the same for every policy (those the default's design was chosen by)."""

BEST_CASE_REGRET = 0.5
"""The regret, in points, within which the post-hoc best case takes the most compute saved."""


def choose(figures: Sequence[Sequence[tuple[float, float, float]]]) -> int:
    """The selection rule: index of the candidate chosen from its per-sweep figures (sweeps x candidates).

    Among candidates within the bounds (mean regret <= :data:`MEAN_BOUND`, worst <= :data:`WORST_BOUND`),
    the one saving most compute on average; where none is, the one with the lowest mean regret. Ties go to
    the earlier candidate (the candidate lists put the safer settings first where it matters).
    """
    arr = np.array(figures, dtype=float)  # sweeps x candidates x 3
    saved, regret = arr[..., 0].mean(axis=0), arr[..., 1]
    mean, worst = regret.mean(axis=0), regret.max(axis=0)
    ok = (mean <= MEAN_BOUND + 1e-9) & (worst <= WORST_BOUND + 1e-9)
    if ok.any():
        return int(np.argmax(np.where(ok, np.round(saved, 9), -np.inf)))
    return int(np.argmin(np.round(mean, 9)))


def best_case(cands) -> dict:
    """The most compute saved within :data:`BEST_CASE_REGRET` on this very sweep (a figure no user could reach)."""
    within = [c for c in cands if c[1] <= BEST_CASE_REGRET + 1e-9]
    c = max(within, key=lambda c: c[0]) if within else min(cands, key=lambda c: c[1])
    return {"compute_saved": c[0], "regret": c[1]}


def aggregate_rows(rows: Sequence[dict]) -> dict:
    """One policy over its held-out sweeps: ``{"nested": means and worst, "best_case": means}``."""
    nested = [r["nested"] for r in rows]
    tests = [r["test_regret"] for r in nested if r["test_regret"] is not None]
    return {"nested": {"mean_compute_saved": float(np.mean([r["compute_saved"] for r in nested])),
                       "mean_regret": float(np.mean([r["regret"] for r in nested])),
                       "worst_regret": float(np.max([r["regret"] for r in nested])),
                       "mean_test_regret": float(np.mean(tests)) if tests else None,
                       "sweeps": len(nested)},
            "best_case": {"mean_compute_saved": float(np.mean([r["best_case"]["compute_saved"] for r in rows])),
                          "mean_regret": float(np.mean([r["best_case"]["regret"] for r in rows]))}}


def finite_or_none(x):
    """JSON-ready: None for a missing or non-finite figure."""
    return None if x is None or not math.isfinite(x) else x


def nested_two_level(figures: dict, labels: Sequence[str]) -> dict:
    """A fitted policy's held-out figures: ``{sweep: {"nested": {...}, "best_case": {...}}}``.

    ``figures`` is ``{held-out task: {"inner": {sweep: figures}, "outer": {sweep: figures}}}`` (figures: one
    triple per candidate, ``labels`` naming them): each held-out task's sweeps at the candidate that
    :func:`choose` picks from its inner figures (other tasks, replayed with a model fitted without them either).
    """
    held_out = {}
    for levels in figures.values():
        k = choose(list(levels["inner"].values()))
        for s, figs in levels["outer"].items():
            saved, regret, test = figs[k]
            held_out[s] = {"nested": {"compute_saved": saved, "regret": regret, "test_regret": finite_or_none(test),
                                      "choice": labels[k]},
                           "best_case": best_case(figs)}
    return held_out


_LIMITS = []


def _one_thread() -> None:
    """Each process of a pool fits with one thread: ``jobs`` processes that each start as many OpenMP threads as
    there are cores fight over them (a bound's tree fit beside another: 4.0 s against 0.8 s with one thread, the
    trees identical)."""
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(1))  # kept: the limit holds for the process's life


def map_jobs(fn, items: Sequence, jobs: int, cost=None, progress=None) -> list:
    """``[fn(x) for x in items]``, in ``jobs`` processes where ``jobs`` > 1 (the nested comparisons' replays and
    fits), each with one thread. ``cost(x)``, where given, estimates an item's work: the largest are started
    first, so that no long item starts last beside an idle core (the results keep the items' order).
    ``progress(done)``, where given, is called as results come in."""
    order = largest_first(items, cost) if jobs > 1 else list(range(len(items)))
    out = [None] * len(items)
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, initializer=_one_thread) as pool:
            for n, (i, result) in enumerate(zip(order, pool.map(fn, [items[i] for i in order], chunksize=1)), 1):
                out[i] = result
                if progress is not None:
                    progress(n)
        return out
    for n, i in enumerate(order, 1):
        out[i] = fn(items[i])
        if progress is not None:
            progress(n)
    return out


def largest_first(items: Sequence, cost=None) -> list[int]:
    """The items' indices, the costliest first (ties, and every item without ``cost``, in their own order)."""
    if cost is None:
        return list(range(len(items)))
    costs = [cost(x) for x in items]
    return sorted(range(len(items)), key=lambda i: -costs[i])
