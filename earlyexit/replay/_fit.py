"""Fitting from logged runs: pool sweeps, group runs by study, and fit the scorers and surrogates a
replay (or ``earlyexit fit``, or the export of a sweep) uses for each held-out seed."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..names import CHEAP_PROBES, Scorer
from ..scoring import FitSettings, fit_scorer
from ..sweeps import ProbeCosts, Sweep
from ._simulate import Run, runs_of
from ._surrogate import as_param_runs, feature_names, fit_surrogate

__all__ = ["CHEAP_PROBES", "CONFIG_FOLDS", "FEATURES_EXTRA", "HeldOut", "cost_of", "fit_on_runs", "fit_sweeps", "pooled_runs",
           "scorers_for", "study_groups", "surrogates_for"]

FEATURES_EXTRA = ("dev_accuracy",)
"""What a scorer reads besides the probes: the dev accuracy (a dev evaluation)."""

CONFIG_FOLDS = 4
"""With one study to learn from, cross-validation holds out this many contiguous blocks of configs."""


def cost_of(costs: ProbeCosts | None):
    """The scorer fit's cost function from a sweep's probe costs: steps to read names at steps, per trial."""
    if costs is None:
        return None
    return lambda names, steps: costs.of(names) * len(steps)


def fit_on_runs(runs: Sequence[Run], probes: Sequence[str], steps: Sequence[int], prefixes: Sequence[int],
                progress=lambda m: None, *, decision_step_only: bool = False, costs: ProbeCosts | None = None,
                keep_top: int = 1):
    """Fit a scorer on completed runs, cross-validated by seed (or by sweep, via run_id prefixes).

    With ``costs``, cost-aware: each prefix reads the cheapest feature set that is as good as the best
    on held-out top-``keep_top`` regret (see :func:`earlyexit.scoring.fit_scorer`).
    """
    done = [r for r in runs if not r.diverged and math.isfinite(r.final)]
    groups, cv_groups = study_groups(done)
    settings = FitSettings(names=(*probes, *FEATURES_EXTRA), steps=steps, prefixes=prefixes,
                           decision_step_only=decision_step_only, cost=cost_of(costs), keep_top=keep_top)
    return fit_scorer([r.signature for r in done], [r.final for r in done], groups, settings, cv_groups=cv_groups,
                      progress=progress)


def fit_sweeps(sweeps: Sequence[Sweep], *, probes: Sequence[str] | None = None, no_hessian: bool = False,
               prefixes: Sequence[int] | None = None, decision_step_only: bool = False, all_features: bool = False,
               keep_top: int = 1, progress=lambda m: None):
    """``earlyexit fit``: one scorer fitted on the pooled runs of ``sweeps``.

    It reads the probes every sweep measured (or ``probes`` of them, or the cheap ones with
    ``no_hessian``) at the probe steps they share, for each of ``prefixes`` (default: every shared step
    after 0). Cost-aware where the first sweep has probe costs, unless ``all_features``. Raises
    ``ValueError`` naming a probe or step the sweeps do not share.
    """
    if keep_top < 1:
        raise ValueError(f"--keep-top must be at least 1, but got {keep_top}.")
    steps = sorted(set.intersection(*(set(sw.probe_steps) for sw in sweeps)))
    shared = [p for p in sweeps[0].probes if all(p in sw.probes for sw in sweeps)]
    if probes is not None:
        missing = [p for p in probes if p not in shared]
        if missing:
            raise ValueError(f"--probes {missing} are not measured by every sweep; they share {shared}.")
        shared = [p for p in shared if p in probes]
    elif no_hessian:
        shared = [p for p in shared if p in CHEAP_PROBES]
    prefixes = list(prefixes or [s for s in steps if s > 0])
    bad = [s for s in prefixes if s not in steps]
    if bad:
        raise ValueError(f"--prefixes {bad} are not probe steps shared by the sweeps {steps}.")
    costs = None if all_features else sweeps[0].probe_costs
    if costs is None and not all_features:
        progress(f"{sweeps[0].path} has no probe_costs.json: every feature set is read (not cost-aware); "
                 f"measure costs with `earlyexit bench probes --spec SPEC --write`")
    return fit_on_runs(pooled_runs(sweeps), shared, steps, prefixes, progress=progress,
                       decision_step_only=decision_step_only, costs=costs, keep_top=keep_top)


def study_groups(done: Sequence[Run]) -> tuple[list[str], list[str] | None]:
    """Which study each run belongs to (sweep and seed), and what cross-validation holds out together.

    With two or more studies, each study is held out in turn (``cv_groups`` None). With one, contiguous
    blocks of config ids are held out instead.
    """
    groups = [f"{r.run_id.split('/')[0] if '/' in r.run_id else ''}seed{r.seed}" for r in done]
    cv_groups = None
    if len(set(groups)) < 2:
        # One study to learn from: hold out configs instead, CONFIG_FOLDS contiguous blocks of config
        # ids, so the held-out figures say how the scorer ranks configs it has not seen. Contiguous,
        # not interleaved: in a grid, neighbouring ids differ only in the last parameter, often one
        # that changes nothing (weight decay here), and a held-out config must not be answered by
        # its near-twin in the training folds.
        configs = sorted({r.config_id for r in done})
        block = {c: i * CONFIG_FOLDS // len(configs) for i, c in enumerate(configs)}
        cv_groups = [f"configs{block[r.config_id]}" for r in done]
    return groups, cv_groups


def pooled_runs(sweeps: Sequence[Sweep]) -> list[Run]:
    """The runs of several sweeps as one pool; run ids get the sweep's index (``"0/r003"``) so the
    scorer's cross-validation holds out each sweep's seeds separately."""
    return [Run(f"{i}/{r.run_id}", r.config_id, r.seed, r.final, r.steps, r.signature, r.compute, r.total_compute,
                r.diverged, r.params) for i, sw in enumerate(sweeps) for r in runs_of(sw)]


@dataclass(frozen=True)
class HeldOut:
    """What a replay holds out and what it learns from.

    Attributes:
        sweep: the replayed sweep.
        runs: its runs.
        by_seed: its runs by seed.
        seeds: the held-out seeds (each gets its own scorer; a seed still being logged is not held out,
            but its runs still train the leave-one-seed-out scorers).
        fit_on: other sweeps to fit on instead of leave-one-seed-out.
        prefixes: the decision steps scorers are fitted for.
        keep_top: the top-K the cost-aware choice's held-out regret keeps.
        progress: where fitting says what it does.
    """

    sweep: Sweep
    runs: list[Run]
    by_seed: dict[int, list[Run]]
    seeds: list[int]
    fit_on: tuple[Sweep, ...] = ()
    prefixes: tuple[int, ...] = ()
    keep_top: int = 1
    progress: Callable[[str], None] = field(default=lambda m: None, compare=False)

    @classmethod
    def of(cls, sweep: Sweep, *, fit_on: Sequence[Sweep] = (), prefixes: Sequence[int] = (), keep_top: int = 1,
           seeds: Sequence[int] | None = None, progress=lambda m: None) -> HeldOut:
        """Every run of ``sweep`` grouped by seed; ``seeds`` held out (default: all)."""
        runs = runs_of(sweep)
        by_seed: dict[int, list[Run]] = defaultdict(list)
        for r in runs:
            by_seed[r.seed].append(r)
        return cls(sweep, runs, by_seed, list(by_seed) if seeds is None else list(seeds), tuple(fit_on),
                   tuple(prefixes), keep_top, progress)

    @property
    def probe_costs(self) -> ProbeCosts | None:
        """The probe costs a fitted scorer is chosen by: the replayed sweep's, else the first ``fit_on`` sweep's."""
        return next((sw.probe_costs for sw in (self.sweep, *self.fit_on) if sw.probe_costs is not None), None)


def scorers_for(held: HeldOut, scorer: Scorer | None = None, *, cost_aware: bool = True) -> tuple[dict, str]:
    """One scorer per held-out seed, and how it was obtained: the given one, one fitted on other sweeps,
    or leave-one-seed-out. Fitted scorers are cost-aware (``cost_aware`` and probe costs known), or read
    every probe at every checkpoint."""
    sweep, steps = held.sweep, held.sweep.probe_steps
    if scorer is not None:
        scorer.check_probes(sweep.probes, f"sweep {sweep.path}")
        return {s: scorer for s in held.seeds}, "given scorer"
    costs = held.probe_costs if cost_aware else None
    what = "" if costs is None else " (cost-aware)"
    if held.fit_on:
        probes = [p for p in sweep.probes if all(p in sw.probes for sw in held.fit_on)]
        fitted = fit_on_runs(pooled_runs(held.fit_on), probes, steps, held.prefixes, held.progress, costs=costs,
                             keep_top=held.keep_top)
        return {s: fitted for s in held.seeds}, "fit on " + ", ".join(
            f"{sw.path} ({len(sw.runs)} runs logged)" for sw in held.fit_on)
    if len(held.by_seed) < 2:
        raise ValueError(f"{sweep.path}: leave-one-seed-out needs at least 2 seeds, but the sweep has "
                         f"{sorted(held.by_seed)}; pass --fit-on or --scorer.")
    scorers = {}
    for s in held.seeds:
        held.progress(f"fitting the scorer without seed {s}{what}")
        scorers[s] = fit_on_runs([r for r in held.runs if r.seed != s], sweep.probes, steps, held.prefixes,
                                 costs=costs, keep_top=held.keep_top)
    return scorers, "leave-one-seed-out"


def surrogates_for(held: HeldOut) -> tuple[dict, list[str]]:
    """One hyperparameter surrogate per held-out seed (fitted on ``fit_on``, or on the other seeds), and the
    encoded columns it reads; ``({}, [])`` where there is nothing to fit on."""
    def fit(pool, seed_note):
        done = as_param_runs([r for r in pool if not r.diverged and math.isfinite(r.final)], names)
        groups, cv_groups = study_groups(done)
        held.progress(f"fitting the hyperparameter surrogate{seed_note}")
        return fit_surrogate(done, names, groups, cv_groups)

    pool = pooled_runs(held.fit_on) if held.fit_on else held.runs
    names = feature_names(pool, held.runs)
    if not names or (not held.fit_on and len(held.by_seed) < 2):
        return {}, []
    if held.fit_on:
        fitted = fit(pool, "")
        return {s: fitted for s in held.seeds}, names
    return {s: fit([r for r in held.runs if r.seed != s], f" without seed {s}") for s in held.seeds}, names
