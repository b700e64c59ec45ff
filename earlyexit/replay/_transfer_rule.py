"""Choose a transfer scorer and its decision rule by leave-one-task-out, inside the training tasks only.

:func:`select_transfer` measures every candidate (feature groups x rungs x keep-top x learning-rate
progress x margin, :data:`CANDIDATES`) by leave-one-task-out over the studies it is given: for each task, a
:class:`~earlyexit.scoring.TransferScorer` fitted on the other tasks prunes that task's studies with the
rung rule as a live study applies it (:func:`~earlyexit.replay._simulate.live_rungs`, trials arriving one at a
time, :data:`ORDERS` arrival orders), charged what it reads at each rung. The choice:
among the candidates within :data:`TARGET_MEAN_REGRET` mean and :data:`TARGET_WORST_REGRET` worst regret
(points), those reading the fewest feature groups (probes earn their place only where the dev evaluation
alone cannot meet the bounds: a richer set fits the training tasks better more often than it carries
over), and of those the one saving most compute; where none is within the bounds, the one with the lowest
mean regret. Among candidates the training tasks cannot tell apart, the safer (larger margin, then
larger learning-rate guard, then keep-top).

:func:`nested_transfer` is the honest figure for a new task: for each held-out task, the choice is made
by :func:`select_transfer` on the *other* tasks (their own leave-one-task-out), fitted on them, and only
then replayed on the held-out task, so no knob sees the task it is measured on.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..names import DEV_METRICS
from ..scoring import Rule, RungModel, TransferScorer, margin_from, rung_gaps, rung_rows
from ..sweeps import Sweep
from ._simulate import Compute, Run, live_rungs, runs_of, sweep_context

GROUP_SETS = (("dev",), ("dev", "cheap"), ("dev", "cheap", "hessian"), ("dev", "fisher"))
"""The feature groups measured (a group is a candidate only where every sweep logged its probes: the Fisher
trace came after the first sweeps)."""
RUNG_SETS = ((0.05,), (0.1,), (0.2,), (0.4,), (0.05, 0.2), (0.1, 0.4), (0.05, 0.1, 0.4), (0.1, 0.2, 0.4))
"""Rungs as fractions of the training budget (a rule in steps chosen on short-budget tasks judges a
long-budget task while its configs still warm up; in fractions it means the same on both)."""
KEEP_TOP = (1, 2)
MIN_LR_PROGRESS = (0.02, 0.05)
"""Never 0: a trial that has spent under 2% of its learning-rate schedule has barely left its initialisation,
and a rule judging it there is only safe on the tasks whose warmups happen to be short."""
MARGIN_QUANTILES = (0.0, 0.5, 0.8)
DEV_TIES = (False, True)
"""Whether a trial is outranked only by trials with a strictly higher dev metric at the rung (the rule that
does not judge while the dev evaluation does not separate the trials: cola-4l-wide24, every run at the
constant classifier through half its budget)."""
CANDIDATES = tuple((groups, Rule(r, k, p, q, unit="budget", dev_ties=t)) for groups, r, k, p, q, t in
                   itertools.product(GROUP_SETS, RUNG_SETS, KEEP_TOP, MIN_LR_PROGRESS, MARGIN_QUANTILES, DEV_TIES))
"""Every (feature groups, rule) the selection measures: 4 x 8 x 2 x 2 x 3 x 2 = 768 (576 where a sweep lacks
the Fisher trace)."""

TARGET_MEAN_REGRET = 0.5
TARGET_WORST_REGRET = 1.0
"""The selection's bounds, in points (the transfer scorer's targets at the default setting)."""


@dataclass(frozen=True)
class Study:
    """One seed of one sweep, as the selection replays it."""

    sweep: Sweep
    task: str
    runs: tuple[Run, ...]

    @property
    def name(self) -> str:
        return self.sweep.name


def studies_of(sweeps: Sequence[Sweep]) -> list[Study]:
    """Every (sweep, seed) as a study, with its task from the manifest; a seed still being logged (fewer
    runs than the sweep's fullest seed) is left out, as the replay leaves it out."""
    out = []
    for sw in sweeps:
        by_seed = defaultdict(list)
        for r in runs_of(sw):
            by_seed[r.seed].append(r)
        full = max((len(rs) for rs in by_seed.values()), default=0)
        out += [Study(sw, str(sw.manifest.get("task")), tuple(rs)) for _, rs in sorted(by_seed.items())
                if len(rs) == full]
    return out


def candidates_for(studies: Sequence[Study]) -> list[tuple[tuple[str, ...], Rule]]:
    """The candidates every study can be replayed with: rules with a rung on a probe step of every sweep (two
    rungs on one step decide there once: a sweep whose probes stop early), groups whose probes all sweeps
    measured."""
    sweeps = {id(s.sweep): s.sweep for s in studies}.values()
    measured = set.intersection(*(set(sw.probes) | set(DEV_METRICS) for sw in sweeps))
    out = [(g, r) for g, r in CANDIDATES if all(n in measured for n in TransferScorer(g, r).names)
           and all(decision_steps(r, sw) for sw in sweeps)]
    if not out:
        raise ValueError("no candidate rule has a rung on a probe step of every sweep.")
    return out


def decision_steps(rule: Rule, sweep: Sweep) -> tuple[int, ...]:
    """The probe steps ``rule`` decides at on ``sweep`` (its rungs in the sweep's budget)."""
    return rule.steps_for(sweep_context(sweep)[0], sweep.probe_steps)


class _Fits:
    """Fitted scorers by (training studies, groups, rule), sharing each rung's ridge and cross-task gaps
    across rules (the candidates differ in keep-top, guard and margin far more often than in rungs)."""

    def __init__(self):
        self._models: dict = {}
        self._gaps: dict = {}

    def scorer(self, train: Sequence[Study], groups: tuple[str, ...], rule: Rule) -> TransferScorer:
        key = tuple(sorted({id(s) for s in train}))
        scorer = TransferScorer(groups, rule)
        for rung in rule.rungs:
            k = (key, groups, rule.unit, rung)
            if k not in self._models:
                runs = [r for s in train for r in s.runs]
                X, y, index = rung_rows([r.signature for r in runs], [r.final for r in runs], rule, rung, groups)
                studies = np.array([id(s) for s in train for _ in s.runs])[index]
                tasks = np.array([s.task for s in train for _ in s.runs])[index]
                self._models[k] = (X, y, studies, tasks, RungModel(scorer.alpha).fit(X, y, studies))
            X, y, studies, tasks, model = self._models[k]
            scorer.estimators_[rung] = model
            if rule.margin_quantile:
                g = (k, rule.keep_top)
                if g not in self._gaps:
                    self._gaps[g] = rung_gaps(X, y, studies, tasks, rule.keep_top, scorer.alpha)
                scorer.margins_[rung] = margin_from(self._gaps[g], rule.margin_quantile)
        return scorer


ORDERS = 20
"""Arrival orders a study is replayed in (the live rule keeps a study's first trials for want of rivals, so
what it saves depends on the order)."""


def rule_policy(scorer: TransferScorer, sweep: Sweep) -> tuple[tuple[int, ...], Compute, Callable]:
    """``scorer`` pruning a study of ``sweep`` at its own rule, as ``earlyexit run`` and
    ``GeometricPruner.from_scorer`` apply it (trials one at a time, :func:`~earlyexit.replay._simulate.live_rungs`):
    its decision steps there, what it is charged (what it reads at them), and the policy (its keep-top,
    margins and learning-rate guard; called with the runs and an arrival-order seed)."""
    decisions = scorer.decisions(sweep_context(sweep)[0], sweep.probe_steps)
    steps = tuple(decisions)
    compute = Compute(scorer.names, sweep.probe_costs, probe_until=steps[-1], steps=steps)
    return steps, compute, live_rungs(steps, scorer.rule.keep_top, lambda r, d: scorer.score(r.signature, d),
                                      compute=compute, min_lr_progress=scorer.rule.min_lr_progress, margin=decisions,
                                      dev_ties=scorer.rule.dev_ties)


def replay_rule(scorer: TransferScorer, study: Study, orders: int = ORDERS) -> tuple[float, float]:
    """(compute saved as a fraction, regret in points) of ``scorer``'s rule on one study, means over
    ``orders`` arrival orders."""
    policy = rule_policy(scorer, study.sweep)[2]
    outs = [policy(study.runs, o) for o in range(orders)]
    return 1 - float(np.mean([o.compute_used for o in outs])), 100 * float(np.mean([o.regret for o in outs]))


def rule_ceiling(scorer: TransferScorer, study: Study, orders: int = ORDERS) -> float:
    """The compute ``scorer``'s rule would save on ``study`` with a score that *is* each trial's final (no
    margin, the same guard, the same arrival orders and charges): what the rule can save at best, so that a
    shortfall can be split between the rule and the scorer's errors."""
    steps, compute, _ = rule_policy(scorer, study.sweep)
    policy = live_rungs(steps, scorer.rule.keep_top, lambda r, d: r.final, compute=compute,
                        min_lr_progress=scorer.rule.min_lr_progress, dev_ties=scorer.rule.dev_ties)
    return 1 - float(np.mean([policy(study.runs, o).compute_used for o in range(orders)]))


def best_rule_ceilings(studies: Sequence[Study]) -> dict:
    """The most any rule saves with perfect scores, mean over the sweeps of ``studies``: among the
    candidates' rules (keep-top, rungs, guard of :data:`MIN_LR_PROGRESS`), and among the same rules without
    the guard. ``{"candidates": {"compute_saved", "rule"}, "unguarded": {...}}``; what caps a live rule's
    saving whatever its scorer."""
    out = {}
    for key, guards in (("candidates", MIN_LR_PROGRESS), ("unguarded", (0.0,))):
        best = None
        for rungs_, k, guard in itertools.product(RUNG_SETS, KEEP_TOP, guards):
            scorer = TransferScorer(("dev",), Rule(rungs_, k, guard, unit="budget"))
            if not all(decision_steps(scorer.rule, s.sweep) for s in studies):
                continue
            saved = _summary(per_sweep([(s.name, rule_ceiling(scorer, s), 0.0) for s in studies]))[0]
            if best is None or saved > best["compute_saved"]:
                best = {"compute_saved": saved, "rule": scorer.rule.label}
        out[key] = best
    return out


def per_sweep(figures: Sequence[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """Mean (saved, regret) per sweep over its seeds."""
    by = defaultdict(list)
    for name, saved, regret in figures:
        by[name].append((saved, regret))
    return {n: (float(np.mean([v[0] for v in vs])), float(np.mean([v[1] for v in vs]))) for n, vs in by.items()}


def leave_one_task_out_rule(studies: Sequence[Study], groups, rule: Rule, fits: _Fits) -> dict[str, tuple]:
    """Per sweep (saved, regret) of one candidate, each task pruned by a scorer fitted on the others."""
    figures = []
    for task in sorted({s.task for s in studies}):
        train = [s for s in studies if s.task != task]
        scorer = fits.scorer(train, groups, rule)
        figures += [(s.name, *replay_rule(scorer, s)) for s in studies if s.task == task]
    return per_sweep(figures)


def _summary(by_sweep: dict) -> tuple[float, float, float]:
    saved = [v[0] for v in by_sweep.values()]
    regret = [v[1] for v in by_sweep.values()]
    return float(np.mean(saved)), float(np.mean(regret)), float(max(regret))


def select_transfer(studies: Sequence[Study], *, fits: _Fits | None = None,
                    progress: Callable[[str], None] = lambda m: None) -> dict:
    """Measure every candidate by leave-one-task-out over ``studies`` and choose one (see the module).

    Returns ``{"groups", "rule", "mean_compute_saved", "mean_regret", "worst_regret", "candidates"}``.
    """
    tasks = sorted({s.task for s in studies})
    if len(tasks) < 2:
        raise ValueError(f"choosing a transfer scorer needs studies of at least two tasks, but got {tasks}.")
    fits = fits or _Fits()
    table = []
    for groups, rule in candidates_for(studies):
        saved, regret, worst = _summary(leave_one_task_out_rule(studies, groups, rule, fits))
        table.append({"groups": groups, "rule": rule, "mean_compute_saved": saved, "mean_regret": regret,
                      "worst_regret": worst})
    ok = [c for c in table if c["mean_regret"] <= TARGET_MEAN_REGRET + 1e-9
          and c["worst_regret"] <= TARGET_WORST_REGRET + 1e-9]
    if ok:  # probes earn their place: a richer feature set only where no simpler one meets the bounds
        fewest = min(len(c["groups"]) for c in ok)
        ok = [c for c in ok if len(c["groups"]) == fewest]
    # Where the training tasks cannot tell candidates apart (equal figures: a guard that never binds on
    # them), the safer one: the dev-tie rule, then the larger margin, then the larger learning-rate guard, then
    # the larger keep-top.
    safety = lambda c: (c["rule"].dev_ties, c["rule"].margin_quantile, c["rule"].min_lr_progress,  # noqa: E731
                        c["rule"].keep_top)
    best = (max(ok, key=lambda c: (round(c["mean_compute_saved"], 9), -round(c["mean_regret"], 9), *safety(c))) if ok
            else min(table, key=lambda c: (round(c["mean_regret"], 9), -round(c["mean_compute_saved"], 9),
                                           *(-x for x in safety(c)))))
    progress(f"chose {'+'.join(best['groups'])}, {best['rule'].label} on {', '.join(tasks)}: "
             f"{best['mean_compute_saved']:.1%} saved, regret {best['mean_regret']:.2f} "
             f"(worst {best['worst_regret']:.2f}) pts" + ("" if ok else "; no candidate met the bounds"))
    return {**best, "within_bounds": bool(ok), "candidates": table}


def nested_transfer(studies: Sequence[Study], progress: Callable[[str], None] = lambda m: None) -> dict:
    """Per held-out sweep: the choice made on the other tasks, and its figures on the held-out sweep.

    Returns ``{sweep: {"compute_saved", "regret", "choice", "points", "rule_ceiling"}}``, ``points`` holding
    the chosen groups' figures at every candidate rule (for the budgets table and the plot), ``rule_ceiling``
    what the chosen rule would save there with perfect scores (:func:`rule_ceiling`).
    """
    fits = _Fits()
    out = {}
    for task in sorted({s.task for s in studies}):
        train = [s for s in studies if s.task != task]
        test = [s for s in studies if s.task == task]
        if len({s.task for s in train}) < 2:
            raise ValueError("the nested choice needs at least three tasks (two to choose on, one held out).")
        choice = select_transfer(train, fits=fits, progress=lambda m, t=task: progress(f"held out {t}: {m}"))
        points, figures = defaultdict(list), {}
        for groups, rule in candidates_for(studies):
            if groups != choice["groups"]:
                continue
            replayed = per_sweep([(s.name, *replay_rule(fits.scorer(train, groups, rule), s)) for s in test])
            for name, (saved, regret) in replayed.items():
                points[name].append((rule.label, saved, regret))
            if rule == choice["rule"]:
                figures = replayed
        if not figures:  # the choice made on the other tasks is not replayable on this one's sweeps
            figures = per_sweep([(s.name, *replay_rule(fits.scorer(train, choice["groups"], choice["rule"]), s))
                                 for s in test])
        chosen = fits.scorer(train, choice["groups"], choice["rule"])
        ceilings = per_sweep([(s.name, rule_ceiling(chosen, s), 0.0) for s in test])
        for name, (saved, regret) in figures.items():
            out[name] = {"compute_saved": saved, "regret": regret, "points": points[name],
                         "rule_ceiling": ceilings[name][0],
                         "choice": {"groups": list(choice["groups"]), "rule": rule_dict(choice["rule"]),
                                    "inner_mean_regret": choice["mean_regret"],
                                    "inner_worst_regret": choice["worst_regret"],
                                    "inner_compute_saved": choice["mean_compute_saved"],
                                    "within_bounds": choice["within_bounds"]}}
    return out


def rule_dict(rule: Rule) -> dict:
    return rule.as_dict()




def fit_transfer(sweeps: Sequence[Sweep], progress: Callable[[str], None] = lambda m: None, *,
                 nested: bool = False) -> TransferScorer:
    """``earlyexit fit --transfer``: choose on every task of ``sweeps`` (:func:`select_transfer`), fit the
    choice on all their runs, and attach a card (what it learnt from, the choice and its figures; with
    ``nested``, also the nested leave-one-task-out figures of the whole procedure, which need three tasks)."""
    studies = studies_of(sweeps)
    choice = select_transfer(studies, progress=progress)
    runs = [r for s in studies for r in s.runs]
    scorer = TransferScorer(choice["groups"], choice["rule"]).fit(
        [r.signature for r in runs], [r.final for r in runs], studies=[i for i, s in enumerate(studies) for _ in s.runs],
        tasks=[s.task for s in studies for _ in s.runs])
    scorer.card = {
        "sweeps": {sw.name: {"task": str(sw.manifest.get("task")), "metric": sw.metric,
                             "runs": sum(len(s.runs) for s in studies if s.sweep is sw)}  # whole seeds only
                   for sw in sweeps},
        "groups": list(choice["groups"]), "rule": rule_dict(choice["rule"]),
        "leave_one_task_out": {"mean_compute_saved": choice["mean_compute_saved"],
                               "mean_regret_points": choice["mean_regret"],
                               "worst_regret_points": choice["worst_regret"],
                               "within_bounds": choice["within_bounds"],
                               "note": "the chosen candidate's figures on the tasks it was chosen on (optimistic); "
                                       "the honest figure for a new task is the nested one of "
                                       "`earlyexit replay --leave-one-task-out` (row earlyexit_transfer)"},
        "versions": scorer.versions,
    }
    if nested:
        progress("nested leave-one-task-out (the choice remade without each task, then replayed on it)")
        figures = nested_transfer(studies, progress)
        regrets = [f["regret"] for f in figures.values()]
        scorer.card["nested_leave_one_task_out"] = {
            "mean_compute_saved": float(np.mean([f["compute_saved"] for f in figures.values()])),
            "mean_regret_points": float(np.mean(regrets)), "worst_regret_points": float(max(regrets)),
            "mean_rule_ceiling": float(np.mean([f["rule_ceiling"] for f in figures.values()])),
            "replayed": f"live (trials one at a time, {ORDERS} arrival orders)",
            "held_out": {n: {"compute_saved": f["compute_saved"], "regret_points": f["regret"],
                             "rule_ceiling": f["rule_ceiling"], "choice": f["choice"]} for n, f in figures.items()}}
    return scorer
