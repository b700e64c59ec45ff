"""The ``interval`` policies in the fair comparison: their bound fitted, and their setting chosen, inside the
training folds.

Like the hyperparameter surrogate (:mod:`earlyexit.replay._nested_surrogate`), what these policies do on a sweep
depends on what their :class:`~earlyexit.scoring.FinalInterval` was fitted on, so the nesting is two levels deep:
for a held-out task T, the setting (calibration, coverage, keep) is chosen from figures on each other task U
replayed with a model fitted on the tasks other than T and U (whose own calibration leaves each of those out in
turn); then a model fitted on every task but T is replayed on T's sweeps at that setting. A model fitted on a
task set S serves both folds that leave out the two tasks outside it, so 15 + 6 fits cover six tasks.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..pruning import DEFAULT_RULE
from ._engine import HeldSet, held_sets, live
from ._interval import IntervalJudge, fit_interval, gains, interval_trees
from ..pruning import fallback_margins
from ._lookahead import (LookaheadJudge, StudyPool, fit_predictor, fit_predictor_choosing_neighbours,
                         fit_predictor_choosing_probes, predictions)
from ._selection import map_jobs

_REFIT = tuple(("study", c, k, w) for c, k, w in itertools.product((0.9, 0.8), (2, 1), (0.5, 0.25)))
CANDIDATES = {
    "interval": tuple(("study", c, k) for c, k in itertools.product((0.9, 0.8), (2, 1))),
    "interval_tasks": tuple(("tasks", c, 1) for c in (0.95, 0.9, 0.8)),
    "lookahead": tuple((cal, c, k) for cal, c, k in itertools.product(("study", "study+tasks"), (0.9, 0.8), (2, 1))),
    "lookahead_study": tuple(("study", c, k) for c, k in itertools.product((0.9, 0.8), (2, 1))),
    "lookahead_refit": _REFIT,
    "lookahead_probes": _REFIT,
    "lookahead_tuned": _REFIT,
}
"""Each policy's (calibration, coverage, keep) settings, safest first (the selection's ties go to the earlier one).
``interval`` calibrates on the study's own completed trials, ``interval_tasks`` on other tasks' sweeps. Frozen on
2026-12-04 before the sweep sst2-8k-wide32 (their clean test) was complete. ``lookahead`` (its predictor on other
tasks, its margins on the study once it has enough completed trials at a step; until then none (``study``) or
the other tasks', by the part of training (``study+tasks``); :mod:`earlyexit.replay._lookahead`) at coverage
90/80% each side and keep 2 or 1, z = 1. Frozen on 2026-12-06 before agnews-wide48 (its clean test) was complete,
after a first nested run on the sixteen sweeps with 90/80/70% and the other tasks' margins pooled over all of
training (56.4% saved, mean regret 0.37, worst 1.80: trec-6l-wide24 held out chose 70%). ``lookahead_refit``:
``lookahead_study`` with the study's completed trials among the predictor's neighbours, their distances shrunk by
0.5 or 0.25 (a fourth entry; ``LookaheadPruner(refit=...)``); frozen on 2026-12-06 with 2 of agnews-wide48's 48
runs logged, after ``benchmarks/study_refit.py`` measured the prediction errors on the sixteen sweeps (not a
nested choice: the shrink is chosen inside the folds here). ``lookahead_probes``: ``lookahead_refit`` whose predictor
also reads the probe features chosen on its training tasks alone
(:func:`~earlyexit.replay._lookahead.fit_predictor_choosing_probes`), for the sweeps that carry their probes.
``lookahead_tuned``: ``lookahead_refit`` whose predictor's ``k`` (40, 20 or 10) and the dev metric's weight in its
distance (1 or 2) are chosen on its training tasks alone
(:func:`~earlyexit.replay._lookahead.fit_predictor_choosing_neighbours`); frozen on 2026-12-06 with 3 of
agnews-wide48's 48 runs logged, after an exploration of k and the weights on the sixteen sweeps' refit errors
(not nested; the choice here is)."""
POLICIES = tuple(CANDIDATES)
OWN_PREDICTOR = ("lookahead_probes", "lookahead_tuned")
"""The look-ahead policies whose predictor is chosen for them inside the folds; the others share one."""


def candidate_labels(policy: str = "interval") -> list[str]:
    if policy.startswith("lookahead"):
        return [f"{c:.0%} each side, keep {k}, " + ("study only" if cal == "study" else "tasks until the study")
                + (f", refit {rest[0]}" if rest else "") for cal, c, k, *rest in CANDIDATES[policy]]
    return [f"{c:.0%} on the {'study' if cal == 'study' else 'other tasks'}, keep {k}"
            for cal, c, k in CANDIDATES[policy]]


def _replay(held: HeldSet, models: dict, policies, orders: int, workers: int, timings: dict) -> dict[str, list]:
    """Every candidate of ``policies`` on ``held``; a model None (fewer than two tasks to fit on): no bound.
    ``timings`` gains each policy's seconds."""
    model = models.get("interval")
    gain = gains(model, held) if model is not None else {}
    out, pools, aheads = {}, {}, {}
    replayed: dict[tuple, tuple] = {}  # a look-ahead candidate that two policies share, replayed once
    for policy in policies:
        began = time.perf_counter()
        predictor = models.get(policy if policy in OWN_PREDICTOR else "lookahead")
        ahead = {}
        if predictor is not None and policy.startswith("lookahead"):
            if id(predictor) not in aheads:  # one predictor serves the look-ahead policies but one
                aheads[id(predictor)] = predictions(predictor, held)
            ahead = aheads[id(predictor)]
        figs = []
        for candidate in CANDIDATES[policy]:
            calibration, coverage, keep, *refit = candidate
            same = ("lookahead", id(predictor), candidate) if policy.startswith("lookahead") else None
            if same in replayed:
                figs.append(replayed[same])
                continue
            if policy.startswith("lookahead"):
                fallback = fallback_margins(predictor, calibration, coverage, held.budget)
                pool = None
                if refit and predictor is not None:
                    if (id(predictor), refit[0]) not in pools:  # one pool serves every setting at this shrink
                        pools[id(predictor), refit[0]] = StudyPool(predictor, held, refit[0])
                    pool = pools[id(predictor), refit[0]]

                def judge(o):
                    return LookaheadJudge(held, DEFAULT_RULE, ahead, fallback=fallback, coverage=coverage, keep=keep,
                                          pool=pool, probes=predictor.probes if predictor is not None else ())
            else:
                margin = model.set_params(coverage=coverage).margin_ if model is not None else math.inf

                def judge(o):
                    return IntervalJudge(held, DEFAULT_RULE, gain, keep=keep, calibration=calibration,
                                         coverage=coverage, margin=margin)
            outs = [live(held, judge(o), o, workers) for o in range(orders)]
            tests = [x.test_regret for x in outs if math.isfinite(x.test_regret)]
            figs.append((1 - float(np.mean([x.compute_used for x in outs])),
                         float(np.mean([x.regret for x in outs])), float(np.mean(tests)) if tests else math.nan))
            if same is not None:
                replayed[same] = figs[-1]
        out[policy] = figs
        timings[policy] = timings.get(policy, 0.0) + time.perf_counter() - began
    return out


def _job(args) -> dict[str, dict[str, list]]:
    """Fit on ``train`` held sets; replay each of ``test``: ``({policy: {sweep: figures per candidate}}`` (means
    over the sweep's seeds), ``{policy or "bound fits": seconds})``."""
    train, test, policies, orders, workers, trees = args
    began = time.perf_counter()
    with warnings.catch_warnings():  # sweeps without a test metric: means of nothing
        warnings.simplefilter("ignore")
        two = len({h.task for h in train}) >= 2
        models = {}
        if two and {"interval", "interval_tasks"} & set(policies):
            models["interval"] = fit_interval(train, fitted=trees)
        if two and any(p.startswith("lookahead") and p not in OWN_PREDICTOR for p in policies):
            models["lookahead"] = fit_predictor(train)
        if two and "lookahead_probes" in policies:
            models["lookahead_probes"] = fit_predictor_choosing_probes(train)
        if two and "lookahead_tuned" in policies:
            models["lookahead_tuned"] = fit_predictor_choosing_neighbours(train)
        timings = {"bound and predictor fits": time.perf_counter() - began}
        by: dict[str, dict[str, list]] = {p: {} for p in policies}
        for held in test:
            for p, figs in _replay(held, models, policies, orders, workers, timings).items():
                by[p].setdefault(held.sweep, []).append(figs)
        return {p: {s: [tuple(float(x) for x in row) for row in np.nanmean(np.array(v, float), axis=0)]
                    for s, v in per.items()} for p, per in by.items()}, timings


def _runs(sets) -> int:
    """A job's size: the runs of its held sets."""
    return sum(len(h.runs) for h in sets)


def _trees_job(sets):
    began = time.perf_counter()
    return interval_trees(sets), time.perf_counter() - began


def interval_figures(sweeps: Sequence, policies: Sequence[str] = POLICIES, *, orders: int = 20, workers: int = 1,
                     jobs: int = 1, progress: Callable[[str], None] = lambda m: None, timings: dict | None = None,
                     held: dict[str, list[HeldSet]] | None = None) -> dict:
    """``{policy: {held-out task: {"inner": {sweep: figures}, "outer": {sweep: figures}}}}`` (figures: one
    ``(saved, regret, test regret)`` per candidate). ``timings``, where given, gains the seconds of work of each
    policy and of the fits, summed over the jobs. ``held``, where given, holds each sweep's :func:`held_sets` (by
    name)."""
    timings = {} if timings is None else timings
    sets = {sw.name: held[sw.name] if held is not None else held_sets(sw) for sw in sweeps}
    tasks = {sw.name: str(sw.manifest.get("task")) for sw in sweeps}
    names = sorted(set(tasks.values()))

    def of(ts):
        return [h for s in sets if tasks[s] in ts for h in sets[s]]

    fits: list[tuple[set, set]] = []  # (tasks fitted on, tasks replayed)
    keys = []
    for t in names:  # outer: fitted on every task but t, replayed on t
        fits.append((set(names) - {t}, {t}))
        keys.append([(t, "outer", t)])
    for t, u in itertools.combinations(names, 2):  # inner: fitted without t and u, replayed on both
        fits.append((set(names) - {t, u}, {t, u}))
        keys.append([(t, "inner", u), (u, "inner", t)])
    trees: dict = {}
    if {"interval", "interval_tasks"} & set(policies):
        # Each bound's fit is a tree fit on its tasks and one on each of them left out (its calibration); the
        # 21 bounds overlap in those, so each distinct set of tasks is fitted once, first, and shared.
        subsets = sorted({frozenset(s) for train, _ in fits if len(train) >= 2
                          for s in [train] + [train - {t} for t in train] if s}, key=sorted)
        progress(f"interval bounds: {len(subsets)} distinct tree fits for {len(fits)} bounds")
        fitted = map_jobs(_trees_job, [of(s) for s in subsets], jobs, cost=_runs)
        trees = dict(kt for kt, _ in fitted)
        timings["bound tree fits"] = timings.get("bound tree fits", 0.0) + sum(t for _, t in fitted)
    jobs_list = [(of(train), of(test), tuple(policies), orders, workers,
                  trees or None) for train, test in fits]
    progress(f"interval bounds: {len(jobs_list)} fits")
    results = map_jobs(_job, jobs_list, jobs, cost=lambda job: _runs(job[1]))  # the replays dominate
    out: dict = {p: {t: {"inner": {}, "outer": {}} for t in names} for p in policies}
    for job_keys, (per_policy, seconds) in zip(keys, results):
        for k, v in seconds.items():
            timings[k] = timings.get(k, 0.0) + v
        for p, figs in per_policy.items():
            for held_out, level, replayed in job_keys:
                out[p][held_out][level].update({s: f for s, f in figs.items() if tasks[s] == replayed})
    return out
