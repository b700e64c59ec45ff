"""The hyperparameter surrogate in the fair comparison: fitted and set inside the training folds.

The surrogate (:mod:`earlyexit.replay._surrogate`) ranks a study's configs by their hyperparameters alone,
before any trains, and trains only the top K. Unlike the rules, what it does on a sweep depends on what it
was fitted on, so its nesting is two levels deep: for each held-out task T, K is chosen by a leave-one-task-
out over the other tasks (for each training task U, a surrogate fitted on the tasks other than T and U is
replayed on U's sweeps at every K; :func:`~earlyexit.replay._selection.choose` picks K from those figures), then
a surrogate fitted on every task but T is replayed on T's sweeps at that K.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np

from ._fit import study_groups
from ._engine import HeldSet, held_sets, screened_result
from ._selection import map_jobs, nested_two_level
from ._simulate import Run, runs_of, scorer_at, screen
from ._surrogate import SURROGATE_STEP, as_param_runs, feature_names, fit_surrogate

KEEPS = (1, 2, 3, 4, 6)
"""The configs the surrogate lets train, the candidates of its one setting."""


def _figures(job) -> dict:
    """Fit on ``train`` runs, replay on the ``test`` held sets at every K: ``{sweep: [(saved, regret, test)]}``."""
    with warnings.catch_warnings():  # the model search's convergence notes; sweeps without a test metric
        warnings.simplefilter("ignore")
        return _fit_and_replay(*job)


def _fit_and_replay(train_runs, test_sets, orders) -> dict:
    """Figures of every held set of ``test_sets``; one surrogate per set of shared columns (the columns depend on
    the replayed sweeps as well as the fitted ones, so two sweeps with the same columns share one fit)."""
    done_runs = [r for r in train_runs if not r.diverged and math.isfinite(r.final)]
    fits: dict[tuple[str, ...], object] = {}
    by_sweep: dict[str, list] = {}
    for task in sorted({h.task for h in test_sets}):
        of_task = [h for h in test_sets if h.task == task]
        names = tuple(feature_names(train_runs, [r for h in of_task for r in h.runs]))
        if names not in fits:
            done = as_param_runs(done_runs, names)
            groups, cv_groups = study_groups(done)
            fits[names] = fit_surrogate(done, names, groups, cv_groups)
        for held in of_task:
            by_sweep.setdefault(held.sweep, []).append(_replay_at_every_k(held, names, fits[names], orders))
    return {s: [tuple(np.nanmean(np.array(v, float), axis=0)[i]) for i in range(len(KEEPS))]
            for s, v in by_sweep.items()}


def _replay_at_every_k(held: HeldSet, names, fitted, orders: int) -> list[tuple[float, float, float]]:
    runs = as_param_runs(list(held.runs), names)
    figs = []
    for k in KEEPS:
        outs = [screened_result(held, screen(SURROGATE_STEP, k, scorer_at(fitted))(runs, o)) for o in range(orders)]
        tests = [x.test_regret for x in outs if math.isfinite(x.test_regret)]
        figs.append((1 - float(np.mean([x.compute_used for x in outs])), float(np.mean([x.regret for x in outs])),
                     float(np.mean(tests)) if tests else math.nan))
    return figs


def surrogate_figures(sweeps, *, orders: int = 3, jobs: int = 1,
                      progress: Callable[[str], None] = lambda m: None,
                      held: dict[str, list[HeldSet]] | None = None) -> dict:
    """``{held-out task: {"inner": {sweep: figures}, "outer": {sweep: figures}}}`` (figures: one per K). A fit
    without tasks T and U serves both inner folds, T's (replayed on U) and U's (replayed on T). ``held``, where
    given, holds each sweep's :func:`held_sets` (by name)."""
    tasks = {sw.name: str(sw.manifest.get("task")) for sw in sweeps}
    runs: dict[str, list[Run]] = {sw.name: runs_of(sw) for sw in sweeps}
    sets: dict[str, list[HeldSet]] = {sw.name: held[sw.name] if held is not None else held_sets(sw) for sw in sweeps}
    names = sorted(set(tasks.values()))

    def train_without(*out):
        return [r for s in runs if tasks[s] not in out for r in runs[s]]

    def sets_of(*ts):
        return [h for s in sets if tasks[s] in ts for h in sets[s]]

    jobs_list, keys = [], []
    for t in names:
        jobs_list.append((train_without(t), sets_of(t), orders))
        keys.append([(t, "outer", t)])
    for t, u in itertools.combinations(names, 2):
        jobs_list.append((train_without(t, u), sets_of(t, u), orders))
        keys.append([(t, "inner", u), (u, "inner", t)])
    progress(f"hyperparameter surrogate: {len(jobs_list)} fits")
    results = map_jobs(_figures, jobs_list, jobs)  # in their own order: the largest fits (the outer folds) first
    out: dict = {t: {"inner": {}, "outer": {}} for t in names}
    for job_keys, figs in zip(keys, results):
        for held_out, level, replayed in job_keys:
            out[held_out][level].update({s: f for s, f in figs.items() if tasks[s] == replayed})
    return out


def nested_surrogate(figures: dict) -> dict:
    """``{sweep: {"nested": {...}, "best_case": {...}}}``: each held-out task at the K its inner folds chose."""
    return nested_two_level(figures, [f"keep {k}" for k in KEEPS])
