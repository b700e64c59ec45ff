"""The fair comparison: every policy's setting chosen inside the training folds, then replayed held out.

For each task, each policy's candidate settings (:func:`candidate_labels` names them) are measured on the sweeps of the
*other* tasks, one is chosen there by the selection rule of the default (:func:`choose`: among the
settings within :data:`MEAN_BOUND` mean and :data:`WORST_BOUND` worst regret, the one saving most compute;
where none is, the one with the lowest mean regret; :mod:`earlyexit.replay._selection`), and only then is that setting replayed on the
held-out task's sweeps. No setting sees the task it is measured on. The post-hoc "best case" (each
policy's best setting chosen on the held-out sweep itself) is reported beside it, labelled as such.

Policies (regrets in points of each sweep's metric; compute saved against training every config fully):

``default``
    :class:`~earlyexit.pruning.ResolutionRule` live, trials arriving one at a time (or W at a time): what
    the shipped :class:`~earlyexit.pruning.ResolutionPruner` does in an Optuna study.
``default_sync``
    the same rule synchronously (every trial to each rung, judged together: synchronous successive halving,
    for a study whose trials are all known up front).
``progress_match``
    the live rule with a warming-up trial judged at comparable learning-rate progress instead of passing
    (an option, ``[pruner] progress_match = true``, designed after the clean test).
``crude_rule``
    the rule at one fixed setting (rungs 5/10/25/50%, keep 1, z 1, pace), synchronously, with no choice made:
    the safe baseline of the evidence notes. Its setting is the shipped default's
    (:data:`earlyexit.pruning.DEFAULT_RULE`, frozen from the nested run on the twelve older sweeps).
``halving_rungs``
    plain synchronous successive halving on the same rungs as ours: the top ``1/eta`` of the trials at each
    rung go on, no resolution (any lead counts), no pace; the like-for-like "successive halving" of our rungs.
``prefix_accuracy``
    every config to a fraction of the budget, the top K by dev metric there to the end.
``hyperparameters``
    a surrogate from hyperparameters to the final metric ranks the configs before any trains; the top K train
    (fitted and set inside the training folds, two levels deep: :mod:`earlyexit.replay._nested_surrogate`).
``interval``, ``interval_tasks``
    the shipped rule live, and a trial also pruned where an optimistic bound on its final (its rung reading plus a
    gain predicted by a model fitted on other tasks, plus a margin calibrated on the study's own completed trials,
    or on other tasks) falls below the K-th best completed final (:mod:`earlyexit.replay._interval`; fitted and
    set two levels deep, :mod:`earlyexit.replay._nested_interval`).
``lookahead``
    the shipped rule live, and a trial also pruned, at the rungs and at the end of its own warmup, where its
    optimistic final (a prediction in headroom units from a nearest-neighbour model fitted on other tasks, with
    margins calibrated on the study's completed trials, or on the other tasks until the study has enough) falls
    below the K-th best pessimistic final of the study's other trials, completed or running, by more than the
    dev set's noise (:mod:`earlyexit.replay._lookahead`; fitted and set two levels deep like ``interval``).
``median``, ``patient_median``, ``percentile``, ``successive_halving``, ``hyperband``, ``wilcoxon``
    Optuna's pruners on the dev-metric curve reported at every logged step, live, through their own ``prune()``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import optuna

from ..pruning import ResolutionRule
from ..sweeps import Sweep
from ._engine import HeldSet, OptunaJudge, RuleJudge, held_sets, live, prefix_rule
from ._synchronous import synchronous
from ._optuna_replay import memoized_wilcoxon
from ._nested_interval import POLICIES as BOUND_POLICIES, candidate_labels as interval_labels, interval_figures
from ._selection import (MEAN_BOUND, WORST_BOUND, aggregate_rows, best_case, choose, finite_or_none,  # noqa: F401
                         map_jobs, nested_two_level)


RUNG_SETS = ((0.05, 0.1, 0.25, 0.5), (0.1, 0.25, 0.5), (0.25, 0.5), (0.1, 0.25))
KEEPS = (1, 2, 3)
ZS = (1.0, 1.5, 2.0)
"""The confidence's candidates, in standard errors of the difference: never under one (a lead of half a standard
error is one that a resampled dev set reverses about a third of the time). The floor was set on 2026-12-04 after
the first nested run on the twelve older sweeps, where z = 0.5 (chosen without CoLA) lost 2.71 MCC points on
cola-6l-wide24; the figures on those twelve sweeps are therefore not a clean test of it, the two large sweeps
(mpqa-wide96, trec-wide64) are."""
ETAS = (None, 2.0, 3.0)
WILCOXON_ORDERS = 5
"""Arrival orders for the Wilcoxon pruner (its scipy test makes it 10-50x slower than the others to replay)."""
CRUDE = ResolutionRule((0.05, 0.1, 0.25, 0.5), keep=1, z=1.0)
"""The crude rule of the pruner's evidence notes (the setting the shipped default, frozen by a nested run on the
twelve older sweeps, turned out to be: :data:`earlyexit.pruning.DEFAULT_RULE`)."""

POLICIES = ("default", "default_sync", "progress_match", "crude_rule", "halving_rungs", "prefix_accuracy",
            "hyperparameters", "interval", "interval_tasks", "lookahead", "lookahead_study", "lookahead_refit",
            "lookahead_probes", "lookahead_tuned", "median", "patient_median", "percentile",
            "successive_halving", "hyperband", "wilcoxon")
NESTED_POLICIES = POLICIES
"""The nested comparison's policies (``earlyexit replay --nested --policies``), by the name the package exports."""
FITTED = ("hyperparameters",) + BOUND_POLICIES
"""Policies fitted on other tasks' sweeps: nested two levels deep, and only on whole sweeps (not with ``trials``)."""


def rule_candidates(progress_match: bool = False) -> list[ResolutionRule]:
    """The rule's candidate settings (108); ``progress_match``: the family that judges a warming-up trial at
    comparable progress (added on 2026-12-04 after the clean test, so its figures have no clean test yet)."""
    return [ResolutionRule(r, k, z, e, True, progress_match)
            for r, k, z, e in itertools.product(RUNG_SETS, KEEPS, ZS, ETAS)]


def halving_candidates() -> list[ResolutionRule]:
    """Plain successive halving at our rungs: keep the top 1/eta, any lead counts (z = 0), no pace."""
    return [ResolutionRule(r, 1, 0.0, e, pace=False) for r, e in itertools.product(RUNG_SETS, (2.0, 3.0, 4.0))]


def _optuna_candidates(budget: int) -> dict[str, list[tuple[str, Callable[[], optuna.pruners.BasePruner]]]]:
    """Each Optuna pruner's settings, warmups and resources as fractions of the budget (``budget`` steps)."""
    P = optuna.pruners
    out: dict[str, list] = {"median": [], "patient_median": [], "percentile": [], "successive_halving": [],
                            "hyperband": [], "wilcoxon": []}
    for startup, warm in itertools.product((2, 5), (0.0, 0.1, 0.25)):
        w = int(warm * budget)
        out["median"].append((f"startup {startup}, warmup {warm:.0%}",
                              lambda s=startup, w=w: P.MedianPruner(n_startup_trials=s, n_warmup_steps=w)))
        out["percentile"].append((f"25th, startup {startup}, warmup {warm:.0%}",
                                  lambda s=startup, w=w: P.PercentilePruner(25.0, n_startup_trials=s,
                                                                            n_warmup_steps=w)))
    for patience, warm in itertools.product((1, 2), (0.0, 0.1)):
        w = int(warm * budget)
        out["patient_median"].append((f"patience {patience}, warmup {warm:.0%}",
                                      lambda p=patience, w=w: P.PatientPruner(
                                          P.MedianPruner(n_startup_trials=5, n_warmup_steps=w), patience=p)))
    for low, eta in itertools.product((0.01, 0.05, 0.1), (2, 3, 4)):
        r = max(1, int(low * budget))
        out["successive_halving"].append((f"min {low:.0%}, eta {eta}",
                                          lambda r=r, e=eta: P.SuccessiveHalvingPruner(min_resource=r,
                                                                                       reduction_factor=e)))
    for low, eta in itertools.product((0.01, 0.05, 0.1), (3, 4)):
        r = max(1, int(low * budget))
        out["hyperband"].append((f"min {low:.0%}, eta {eta}",
                                 lambda r=r, e=eta: P.HyperbandPruner(min_resource=r, max_resource=budget,
                                                                      reduction_factor=e)))
    for p in (0.05, 0.1, 0.2):  # scipy's exact test per decision: about 1 s a replayed study, so few settings
        out["wilcoxon"].append((f"p {p}", lambda p=p: P.WilcoxonPruner(p_threshold=p)))
    return out


def candidate_labels(policy: str, budget: int = 1000) -> list[str]:
    if policy in ("default", "default_sync"):
        return [r.label for r in rule_candidates()]
    if policy == "progress_match":
        return [r.label for r in rule_candidates(True)]
    if policy == "crude_rule":
        return [CRUDE.label]
    if policy == "halving_rungs":
        return [r.label for r in halving_candidates()]
    if policy == "prefix_accuracy":
        return [f"at {f:.0%}, keep {k}" for f, k in itertools.product((0.05, 0.1, 0.25, 0.5), KEEPS)]
    if policy == "hyperparameters":
        from ._nested_surrogate import KEEPS as SURROGATE_KEEPS

        return [f"keep {k}" for k in SURROGATE_KEEPS]
    if policy in BOUND_POLICIES:
        return interval_labels(policy)
    return [label for label, _ in _optuna_candidates(budget).get(policy, [])]


def measure_set(held: HeldSet, policy: str, *, orders: int, workers: int) -> list[tuple[float, float, float]]:
    """``(compute saved, regret, test regret)`` of every candidate of ``policy`` on one held-out set, mean over orders."""
    out = []
    if policy in ("default_sync", "crude_rule", "halving_rungs"):
        rules = {"default_sync": rule_candidates, "crude_rule": lambda: [CRUDE],
                 "halving_rungs": halving_candidates}[policy]()
        for rule in rules:
            res = synchronous(held, rule)
            out.append((1 - res.compute_used, res.regret, res.test_regret))
        return out
    if policy == "prefix_accuracy":
        for f, k in itertools.product((0.05, 0.1, 0.25, 0.5), KEEPS):
            out.append(_mean([prefix_rule(held, f, k, o) for o in range(orders)]))
        return out
    if policy in ("default", "progress_match"):
        for rule in rule_candidates(policy == "progress_match"):
            out.append(_mean([live(held, RuleJudge(held, rule), o, workers) for o in range(orders)]))
        return out
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    n = min(orders, WILCOXON_ORDERS) if policy == "wilcoxon" else orders
    with memoized_wilcoxon() if policy == "wilcoxon" else contextlib.nullcontext():
        for _, make in _optuna_candidates(held.budget)[policy]:
            out.append(_mean([live(held, OptunaJudge(held, make, o), o, workers) for o in range(n)]))
    return out


def _mean(results) -> tuple[float, float, float]:
    saved = float(np.mean([1 - r.compute_used for r in results]))
    regret = float(np.mean([r.regret for r in results]))
    tests = [r.test_regret for r in results if math.isfinite(r.test_regret)]
    return saved, regret, float(np.mean(tests)) if tests else math.nan


def _measure_job(args):
    held, policy, orders, workers = args
    started = time.perf_counter()
    figs = measure_set(held, policy, orders=orders, workers=workers)
    return held.sweep, held.seed, policy, figs, time.perf_counter() - started


def measure(sweeps: Sequence[Sweep], policies: Sequence[str] = POLICIES, *, orders: int = 20, workers: int = 1,
            trials: int | None = None, draws: int = 5, jobs: int = 1,
            progress: Callable[[str], None] = lambda m: None, timings: dict | None = None,
            held: dict[str, list[HeldSet]] | None = None) -> dict:
    """Every candidate of every policy on every sweep: ``{sweep: {policy: [(saved, regret, test regret)]}}``.

    A sweep's figures are means over its seeds (and, with ``trials``, over ``draws`` studies of that many
    configs drawn from each seed). ``jobs`` processes share the work. ``timings``, where given, gains each
    policy's seconds of work summed over its jobs (the work of all processes: more than the wall time).
    ``held``, where given, holds each sweep's :func:`held_sets` (by name), read instead of made again.
    """
    timings = {} if timings is None else timings
    sets: list[HeldSet] = []
    for sw in sweeps:
        for one in (held[sw.name] if held is not None else held_sets(sw)):
            if trials is None:
                sets.append(one)
            elif trials <= len(one.runs):
                sets += [one.subsample(trials, d) for d in range(draws)]
    jobs_list = [(h, p, orders, workers) for h in sets for p in policies]
    by: dict = defaultdict(lambda: defaultdict(list))
    started = time.perf_counter()

    def report(n: int) -> None:
        if n % 20 == 0:
            progress(f"  {n}/{len(jobs_list)} (sweep x seed x policy) measured, {time.perf_counter() - started:.0f} s")

    for name, _, policy, figs, seconds in map_jobs(_measure_job, jobs_list, jobs, progress=report):
        by[name][policy].append(figs)
        timings[policy] = timings.get(policy, 0.0) + seconds
    out = {}
    for name, per_policy in by.items():
        out[name] = {}
        for policy, lists in per_policy.items():
            arr = np.array(lists, dtype=float)  # sets x candidates x 3
            with np.errstate(all="ignore"):
                means = np.nanmean(arr, axis=0) if np.isfinite(arr[..., 2]).any() else arr.mean(axis=0)
            out[name][policy] = [tuple(float(x) for x in row) for row in means]
    return out


def nested(figures: dict, tasks: dict[str, str], policies: Sequence[str] = POLICIES) -> dict:
    """Leave-one-task-out with each policy's setting chosen on the other tasks (see the module).

    ``figures`` from :func:`measure`, ``tasks`` sweep -> task. Returns ``{"held_out": {sweep: {policy:
    {"nested": {...}, "best_case": {...}}}}, "aggregate": {policy: {"nested": {...}, "best_case": {...}}}}``.
    """
    held_out: dict = defaultdict(dict)
    for task in sorted(set(tasks.values())):
        train = [s for s in figures if tasks[s] != task]
        test = [s for s in figures if tasks[s] == task]
        for policy in policies:
            if not all(policy in figures[s] for s in train + test):
                continue
            k = choose([figures[s][policy] for s in train]) if train else 0
            labels = candidate_labels(policy)
            for s in test:
                saved, regret, test_regret = figures[s][policy][k]
                held_out[s][policy] = {
                    "nested": {"compute_saved": saved, "regret": regret, "test_regret": finite_or_none(test_regret),
                               "choice": labels[k] if k < len(labels) else str(k)},
                    "best_case": best_case(figures[s][policy])}
    aggregate = {p: aggregate_rows(rows) for p in policies
                 if (rows := [held_out[s][p] for s in held_out if p in held_out[s]])}
    return {"held_out": dict(held_out), "aggregate": aggregate}


def compare(sweeps: Sequence[Sweep], policies: Sequence[str] = POLICIES, *, orders: int = 20, workers: int = 1,
            trials: int | None = None, draws: int = 5, jobs: int = 1,
            progress: Callable[[str], None] = lambda m: None) -> dict:
    """:func:`measure` then :func:`nested`: the fair leave-one-task-out, with its protocol and timing."""
    tasks = {sw.name: str(sw.manifest.get("task")) for sw in sweeps}
    if len(set(tasks.values())) < 3:
        raise ValueError(f"the nested comparison needs sweeps of at least three tasks (two to choose on, one held "
                         f"out), but got {sorted(set(tasks.values()))}.")
    started = time.perf_counter()
    per_set = [p for p in policies if p not in FITTED]
    timings: dict[str, float] = {}
    held = {sw.name: held_sets(sw) for sw in sweeps}  # made once, read by each part below
    figures = measure(sweeps, per_set, orders=orders, workers=workers, trials=trials, draws=draws, jobs=jobs,
                      progress=progress, timings=timings, held=held)
    out = nested(figures, {s: tasks[s] for s in figures}, per_set)
    if "hyperparameters" in policies and trials is None:
        from ._nested_surrogate import nested_surrogate, surrogate_figures

        began = time.perf_counter()
        chosen = nested_surrogate(surrogate_figures(sweeps, jobs=jobs, progress=progress, held=held))
        timings["hyperparameters (wall)"] = time.perf_counter() - began
        for s, figs in chosen.items():
            out["held_out"].setdefault(s, {})["hyperparameters"] = figs
        out["aggregate"]["hyperparameters"] = aggregate_rows(list(chosen.values()))
    fitted_bounds = [p for p in policies if p in BOUND_POLICIES]
    if fitted_bounds and trials is None:
        per_policy = interval_figures(sweeps, fitted_bounds, orders=orders, workers=workers, jobs=jobs,
                                      progress=progress, timings=timings, held=held)
        for p, figs_p in per_policy.items():
            chosen = nested_two_level(figs_p, interval_labels(p))
            for s, figs in chosen.items():
                out["held_out"].setdefault(s, {})[p] = figs
            out["aggregate"][p] = aggregate_rows(list(chosen.values()))
    out["protocol"] = {"orders": orders, "wilcoxon_orders": min(orders, WILCOXON_ORDERS), "workers": workers,
                       "trials": trials, "draws": draws if trials else None, "sweeps": sorted(figures),
                       "tasks": {s: tasks[s] for s in sorted(figures)},
                       "bounds": {"mean_regret": MEAN_BOUND, "worst_regret": WORST_BOUND},
                       "evidence": {sw.name: ("paired" if sw.manifest.get("dev_labels") else "approximate")
                                    for sw in sweeps if sw.name in figures},
                       "seconds": round(time.perf_counter() - started, 1),
                       "work_seconds": {k: round(v, 1) for k, v in timings.items()}}
    out["candidates"] = {s: {p: [list(c) for c in figs] for p, figs in per.items()} for s, per in figures.items()}
    return out


def study_size(sweep: Sweep, sizes: Sequence[int], chosen_from: dict, policies: Sequence[str] = POLICIES, *,
               orders: int = 20, workers: int = 1, draws: int = 5, jobs: int = 1,
               progress: Callable[[str], None] = lambda m: None) -> dict:
    """Each policy at its setting chosen on other tasks' sweeps, on studies of ``sizes`` configs drawn from ``sweep``.

    ``chosen_from`` is the JSON of a ``--nested`` run (its ``candidates`` and ``protocol.tasks``): each policy's
    setting is chosen there by :func:`choose` on the sweeps of tasks other than ``sweep``'s. Returns
    ``{"sweep", "protocol", "choices": {policy: label}, "by_size": {N: {policy: {compute_saved, regret,
    test_regret}}}}``; a size equal to the sweep's runs per seed replays the whole sweep.
    """
    task = str(sweep.manifest.get("task"))
    tasks = chosen_from.get("protocol", {}).get("tasks", {})
    train = [s for s in chosen_from["candidates"] if tasks.get(s, s) != task and s != sweep.name]
    if not train:
        raise ValueError(f"no sweep of another task than {task!r} to choose the settings on.")
    policies = [p for p in policies if all(p in chosen_from["candidates"][s] for s in train)]
    choices = {p: choose([chosen_from["candidates"][s][p] for s in train]) for p in policies}
    per_seed = min(len(h.runs) for h in held_sets(sweep))
    by_size = {}
    for n in sizes:
        if n > per_seed:
            raise ValueError(f"{sweep.name} has {per_seed} runs a seed; a study of {n} cannot be drawn from it.")
        progress(f"{sweep.name}: studies of {n} configs")
        figs = measure([sweep], policies, orders=orders, workers=workers, trials=None if n == per_seed else n,
                       draws=draws, jobs=jobs)[sweep.name]
        by_size[str(n)] = {p: dict(zip(("compute_saved", "regret", "test_regret"),
                                       (finite_or_none(x) for x in figs[p][choices[p]]))) for p in policies}
    return {"sweep": sweep.name, "choices": {p: candidate_labels(p)[k] for p, k in choices.items()},
            "chosen_on": sorted(train), "by_size": by_size,
            "protocol": {"orders": orders, "workers": workers, "draws": draws, "sizes": list(sizes)}}
