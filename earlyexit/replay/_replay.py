"""``earlyexit replay``: every policy on a logged sweep, held out by seed, in several arrival orders."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna

from ..pruning import GeometricPruner
from ..scoring import fit_scorer
from ..sweeps import ProbeCosts, Sweep, ceiling_summary, seed_ceiling
from ._simulate import (
    Compute,
    Run,
    dev_metric_at,
    dev_metric_value,
    evaluate,
    no_pruning,
    oracle,
    probe_rank,
    runs_of,
    scorer_at,
    scorer_value,
    screen,
    study_replay,
)
from ._surrogate import SURROGATE_STEP, as_param_runs, feature_names, fit_surrogate

FEATURES_EXTRA = ("dev_accuracy",)
CHEAP_PROBES = ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "critical_sharpness")
"""The probes without Hessian-vector products (``earlyexit fit --no-hessian``)."""


CONFIG_FOLDS = 4


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
    names = [*probes, *FEATURES_EXTRA]
    groups, cv_groups = study_groups(done)
    return fit_scorer([r.signature for r in done], [r.final for r in done], groups, names=names, steps=steps,
                      prefixes=prefixes, decision_step_only=decision_step_only, progress=progress,
                      cost=cost_of(costs), keep_top=keep_top, cv_groups=cv_groups)


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


def _compute(sweep: Sweep, scorer_or_probes, step: int | None, *, only_at_step: bool = False) -> Compute:
    """Probes (a scorer's, or the names given) at every checkpoint up to ``step``, or only at it."""
    if isinstance(scorer_or_probes, tuple):
        probes, steps = scorer_or_probes, ((step,) if only_at_step else None)
    else:  # a scorer: what its features at this prefix read, at the checkpoints they read it
        schema = scorer_or_probes.schemas.get(step) if step is not None else None
        # probes, and dev metrics (an evaluation)
        probes = tuple(schema.names) if schema is not None else tuple(scorer_or_probes.names)
        steps = tuple(schema.steps) if schema is not None else None
    return Compute(probes, sweep.probe_costs, probe_until=step, steps=steps)


def _probe_costs(sweep: Sweep, fit_on: Sequence[Sweep]) -> ProbeCosts | None:
    """The probe costs a fitted scorer is chosen by: the replayed sweep's, else the first ``fit_on`` sweep's."""
    return next((sw.probe_costs for sw in (sweep, *fit_on) if sw.probe_costs is not None), None)


def _scorers(sweep: Sweep, runs, by_seed, scorer, fit_on, prefixes, progress, *, cost_aware=True, keep_top=1,
             held_out=None):
    """One scorer per held-out seed: the given one, one fitted on other sweeps, or leave-one-seed-out.

    Fitted scorers are cost-aware (``cost_aware`` and :func:`_probe_costs` known), or read every probe
    at every checkpoint. ``held_out``: the seeds that get
    a scorer (default all; a seed still being logged is not held out, but its runs still train).
    """
    steps = sweep.probe_steps
    seeds = by_seed if held_out is None else held_out
    if scorer is not None:
        scorer.check_probes(sweep.probes, f"sweep {sweep.path}")
        return {s: scorer for s in seeds}, "given scorer"
    costs = _probe_costs(sweep, fit_on) if cost_aware else None
    what = "" if costs is None else " (cost-aware)"
    if fit_on:
        probes = [p for p in sweep.probes if all(p in sw.probes for sw in fit_on)]
        fitted = fit_on_runs(pooled_runs(fit_on), probes, steps, prefixes, progress, costs=costs, keep_top=keep_top)
        return {s: fitted for s in seeds}, "fit on " + ", ".join(
            f"{sw.path} ({len(sw.runs)} runs logged)" for sw in fit_on)
    if len(by_seed) < 2:
        raise ValueError(f"{sweep.path}: leave-one-seed-out needs at least 2 seeds, but the sweep has "
                         f"{sorted(by_seed)}; pass --fit-on or --scorer.")
    scorers = {}
    for s in seeds:
        progress(f"fitting the scorer without seed {s}{what}")
        scorers[s] = fit_on_runs([r for r in runs if r.seed != s], sweep.probes, steps, prefixes,
                                 costs=costs, keep_top=keep_top)
    return scorers, "leave-one-seed-out"


def _surrogates(runs, by_seed, fit_on, held_out, progress) -> tuple[dict, list[str]]:
    """One hyperparameter surrogate per held-out seed (fitted on ``fit_on``, or on the other seeds), and the
    encoded columns it reads; ``({}, [])`` where there is nothing to fit on."""
    def fit(pool, seed_note):
        done = as_param_runs([r for r in pool if not r.diverged and math.isfinite(r.final)], names)
        groups, cv_groups = study_groups(done)
        progress(f"fitting the hyperparameter surrogate{seed_note}")
        return fit_surrogate(done, names, groups, cv_groups)

    pool = pooled_runs(fit_on) if fit_on else runs
    names = feature_names(pool, runs)
    if not names or (not fit_on and len(by_seed) < 2):
        return {}, []
    if fit_on:
        fitted = fit(pool, "")
        return {s: fitted for s in held_out}, names
    return {s: fit([r for r in runs if r.seed != s], f" without seed {s}") for s in held_out}, names


def chosen_config(sweep: Sweep, *, scorer=None, fit_on: Sequence[Sweep] = (), prefix: int = 100,
                  progress=lambda m: None) -> tuple[str, dict]:
    """The config the ``earlyexit`` policy (keep top 1 at ``prefix``) picks, by majority over held-out seeds.

    Returns ``(config_id, detail)``; ties go to the higher mean final accuracy.
    """
    runs = runs_of(sweep)
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for r in runs:
        by_seed[r.seed].append(r)
    if prefix not in sweep.probe_steps:
        raise ValueError(f"--prefix {prefix} is not a probe step of {sweep.path} {sweep.probe_steps}.")
    scorers, protocol = _scorers(sweep, runs, by_seed, scorer, fit_on, [prefix], progress)
    votes: dict[str, list] = defaultdict(list)
    for seed, rs in by_seed.items():
        res = screen(prefix, 1, scorer_at(scorers[seed]))(rs, 0)
        for run_id in res.kept:
            votes[next(r.config_id for r in rs if r.run_id == run_id)].append(seed)
    if not votes:
        raise ValueError(f"{sweep.path}: the policy kept no config (every candidate diverged).")
    mean_final = {c: sum(r.final for r in runs if r.config_id == c and r.final == r.final) /
                  max(1, sum(1 for r in runs if r.config_id == c and r.final == r.final)) for c in votes}
    best = max(votes, key=lambda c: (len(votes[c]), mean_final[c]))
    return best, {"protocol": protocol, "prefix": prefix, "votes": {c: v for c, v in votes.items()},
                  "mean_final": mean_final[best]}


def _optuna_pruners(max_steps: int) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    return {
        "median": lambda: optuna.pruners.MedianPruner(),
        "median_tuned": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=50),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0),
        "percentile_tuned": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=50),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "successive_halving_tuned": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=10,
                                                                                   reduction_factor=4),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(max_resource=max_steps),
        "hyperband_tuned": lambda: optuna.pruners.HyperbandPruner(min_resource=10, max_resource=max_steps,
                                                                  reduction_factor=4),
        "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(),
    }


def replay(sweep: Sweep, *, scorer=None, fit_on: Sequence[Sweep] = (), orders: int = 20, prefix: int = 100,
           keep_top: int = 1, pareto: bool = True, baselines_only: bool = False, progress=lambda m: None) -> dict:
    """Replay every policy; returns the JSON-ready result (see ``earlyexit replay --json``).

    ``baselines_only`` skips the scorer policies (``earlyexit*``): for a sweep with too few seeds to
    fit a scorer on, yet, and no other sweep to fit on.
    """
    runs = runs_of(sweep)
    by_seed: dict[int, list[Run]] = defaultdict(list)
    for r in runs:
        by_seed[r.seed].append(r)
    # A seed still being logged would replay as a smaller study: hold out only the seeds with as
    # many runs as the largest one; all runs still train the scorer.
    configs_per_seed = max(len(rs) for rs in by_seed.values())
    if configs_per_seed < 2:
        raise ValueError(f"{sweep.path}: no seed has more than one run logged yet; a replay compares configs "
                         "within a seed, so it needs at least two runs of one seed (let the sweep log more).")
    complete = sorted(s for s in by_seed if len(by_seed[s]) == configs_per_seed)
    incomplete = {s: len(by_seed[s]) for s in sorted(by_seed) if s not in complete}
    held_out = [by_seed[s] for s in complete]
    steps = sweep.probe_steps
    if prefix not in steps:
        raise ValueError(f"--prefix {prefix} is not a probe step of {sweep.path} {steps}.")
    prefixes = sorted({s for s in (prefix, *steps) if 0 < s <= max(steps)}) if pareto else [prefix]
    max_steps = int(sweep.runs["steps"].max())

    if baselines_only:
        families, protocol = {}, "baselines only (no scorer)"
    else:
        families = {"earlyexit": _scorers(sweep, runs, by_seed, scorer, fit_on, prefixes, progress,
                                          keep_top=keep_top, held_out=complete)}
        protocol = families["earlyexit"][1]
    # What cost-awareness buys: the same fit reading every probe (and a dev evaluation) at every checkpoint.
    if not baselines_only and scorer is None and _probe_costs(sweep, fit_on) is not None:
        families["earlyexit_all"] = _scorers(sweep, runs, by_seed, None, fit_on, prefixes, progress,
                                             cost_aware=False, keep_top=keep_top, held_out=complete)
    scorers = {name: sc for name, (sc, _) in families.items()}

    def per_seed(family: str, make: Callable[[object], Callable]) -> Callable:
        """A policy whose scorer depends on the held-out seed."""
        def policy(rs, order_seed):
            return make(scorers[family][rs[0].seed])(rs, order_seed)
        return policy

    def rank_with(family: str, step: int) -> Callable[[Run], float]:
        return lambda run: scorer_at(scorers[family][run.seed])(run, step) if step in run.signature else math.nan

    def loss_compute(step):  # the probe-set loss at the decision step only
        return _compute(sweep, ("loss",), step, only_at_step=True)

    def accuracy_compute(step):  # one dev evaluation, at the decision step
        return _compute(sweep, ("dev_metric",), step, only_at_step=True)

    policies: dict[str, tuple] = {}
    for family in scorers:
        policies[family] = (per_seed(family, lambda sc: screen(prefix, keep_top, scorer_at(sc),
                                                               compute=_compute(sweep, sc, prefix))),
                            rank_with(family, prefix))
    if "earlyexit" in scorers:
        policies["earlyexit_sequential"] = (per_seed("earlyexit", lambda sc: study_replay(
            lambda: GeometricPruner(decision_steps=[prefix], keep_top=keep_top, n_startup_trials=0),
            scorer_value(sc), compute=_compute(sweep, sc, prefix))), rank_with("earlyexit", prefix))
    surrogates, param_names = _surrogates(runs, by_seed, fit_on, complete, progress) if scorer is None else ({}, [])
    if surrogates:
        def surrogate(k):
            def policy(rs, order_seed):
                return screen(SURROGATE_STEP, k, scorer_at(surrogates[rs[0].seed]))(as_param_runs(rs, param_names),
                                                                                   order_seed)
            return policy

        def surrogate_rank(run):
            return scorer_at(surrogates[run.seed])(as_param_runs([run], param_names)[0], SURROGATE_STEP)

        policies["hyperparameters"] = (surrogate(keep_top), surrogate_rank)
    policies.update({
        "loss_only": (screen(prefix, keep_top, probe_rank("loss"), compute=loss_compute(prefix)),
                      lambda run: probe_rank("loss")(run, prefix)),
        "prefix_accuracy": (screen(prefix, keep_top, dev_metric_at, compute=accuracy_compute(prefix)),
                            lambda run: dev_metric_at(run, prefix)),
        "no_pruning": (no_pruning, None),
        "oracle": (oracle, lambda run: run.final),
    })
    for name, make in _optuna_pruners(max_steps).items():  # a dev evaluation at every checkpoint
        policies[name] = (study_replay(make, dev_metric_value, compute=_compute(sweep, ("dev_metric",), None)),
                          None)

    # No pruning and the oracle see every config at once: arrival order cannot matter. Screening
    # policies see every config too, but break ties by arrival order, so they are replayed in every order.
    order_free = {"no_pruning", "oracle"}
    results = {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, (policy, rank_value) in policies.items():
        progress(f"replaying {name}")
        results[name] = evaluate(policy, held_out, 1 if name in order_free else orders, rank_value).as_dict()
    costs = sweep.probe_costs
    out = {"sweep": str(sweep.path), "protocol": {
        "held_out": protocol, "orders": orders, "prefix": prefix, "keep_top": keep_top, "seeds": complete,
        "configs_per_seed": configs_per_seed, "incomplete_seeds_skipped": incomplete,
        "probe_cost": ("measured per probe and per dev evaluation (probe_costs.json), in training steps"
                       if costs is not None else "the log's wall-clock compute_steps: every probe the sweep "
                       "measured; dev evaluations free (no probe_costs.json)"),
        "probe_cost_steps": {name: _compute(sweep, scorers[name][min(complete)], prefix).per_checkpoint
                             for name in scorers} | (
            {"loss_only": loss_compute(prefix).per_checkpoint,
             "prefix_accuracy": accuracy_compute(prefix).per_checkpoint,
             "optuna pruners": _compute(sweep, ("dev_metric",), None).per_checkpoint}),
        "probes": {name: list(_compute(sweep, scorers[name][min(complete)], prefix).probes) for name in scorers},
        "hyperparameters": param_names,
        "feature_sets": {name: _feature_sets(scorers[name], prefix) for name in scorers}},
        "policies": results}
    ceiling = seed_ceiling(sweep)
    if ceiling:  # what a predictor knowing each config's mean final over the other seeds reaches
        out["noise_ceiling"] = {**ceiling_summary(ceiling), "per_seed": ceiling}
    if pareto:
        out["pareto"] = _pareto(sweep, held_out, scorers, prefixes, loss_compute, accuracy_compute, orders)
        if surrogates:  # one decision step (before training): only how many configs it keeps varies
            out["pareto"]["hyperparameters"] = [
                {"prefix": SURROGATE_STEP, "keep_top": k, **_figures(evaluate(surrogate(k), held_out, min(orders, 5)))}
                for k in (1, 2, 3, 4)]
    out["frontier"] = frontier(out)
    return out


def _feature_sets(by_seed: dict, prefix: int) -> dict:
    """Per held-out seed, what its scorer reads at ``prefix``: names, steps, and the cost-aware choice."""
    out = {}
    for seed, sc in by_seed.items():
        schema = sc.schemas.get(prefix)
        rep = sc.report.get(prefix, {})
        out[str(seed)] = {"names": list(schema.names) if schema else None,
                          "steps": list(schema.steps) if schema else None,
                          "feature_set": rep.get("feature_set"), "model": rep.get("chosen")}
    return out


def _pareto(sweep, held_out, scorers, prefixes, loss_compute, accuracy_compute, orders) -> dict:
    """Compute saved against regret as aggressiveness varies (prefix step x keep_top)."""
    curves: dict[str, list] = defaultdict(list)
    for step in prefixes:
        for k in (1, 2, 3, 4):
            makers = [(family, lambda sc, step=step, k=k: screen(step, k, scorer_at(sc),
                                                                compute=_compute(sweep, sc, step)))
                      for family in scorers]
            makers += [
                ("loss_only", lambda sc, step=step, k=k: screen(step, k, probe_rank("loss"),
                                                                compute=loss_compute(step))),
                ("prefix_accuracy", lambda sc, step=step, k=k: screen(step, k, dev_metric_at,
                                                                      compute=accuracy_compute(step))),
            ]
            for name, make in makers:
                def policy(rs, o, make=make, family=name):
                    return make(scorers[family][rs[0].seed] if family in scorers else None)(rs, o)
                r = evaluate(policy, held_out, min(orders, 5))  # ties only: a few orders suffice
                curves[name].append({"prefix": step, "keep_top": k, "compute_saved": r.compute_saved,
                                     "regret": r.regret})
    return dict(curves)


def _figures(r) -> dict:
    return {"compute_saved": r.compute_saved, "regret": r.regret}


REGRET_BUDGETS = (0.0, 0.001, 0.005, 0.01)
"""Regret budgets of :func:`frontier`, in accuracy (0.001 is 0.1 points)."""


def frontier(result: dict, budgets: Sequence[float] = REGRET_BUDGETS) -> dict:
    """Per policy and regret budget: the most compute it saves at a mean regret within the budget.

    A policy's points are its aggressiveness sweep (decision step x keep top, from ``result["pareto"]``)
    or, for the others, its one replayed setting. Values are ``{"compute_saved", "regret", "setting"}``,
    or None where no setting of the policy stays within the budget: the "at equal or lower regret"
    comparison of policies, read off the Pareto plot.
    """
    points: dict[str, list] = defaultdict(list)
    for name, pts in result.get("pareto", {}).items():
        points[name] += [(p["compute_saved"], p["regret"], f"step {p['prefix']}, top {p['keep_top']}") for p in pts]
    for name, r in result["policies"].items():
        if name not in points and r["compute_saved"] is not None and r["regret"] is not None:
            points[name].append((r["compute_saved"], r["regret"], "as replayed"))
    out = {}
    for name, pts in points.items():
        out[name] = {}
        for budget in budgets:
            ok = [p for p in pts if p[1] <= budget + 1e-12]
            best = max(ok, key=lambda p: (p[0], -p[1])) if ok else None
            out[name][str(budget)] = None if best is None else {"compute_saved": best[0], "regret": best[1],
                                                                  "setting": best[2]}
    return out


def plot(result: dict, path: Path) -> None:
    """The Pareto plot: compute saved against mean regret for every policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    for name, pts in result.get("pareto", {}).items():
        (dots,) = ax.plot([p["compute_saved"] for p in pts], [100 * p["regret"] for p in pts], "o", alpha=0.35)
        # Its Pareto front: the settings no other setting beats on both compute saved and regret.
        front = sorted(((p["compute_saved"], 100 * p["regret"]) for p in pts), key=lambda q: (-q[0], q[1]))
        kept, lowest = [], float("inf")
        for saved, regret in front:
            if regret < lowest:
                kept.append((saved, regret))
                lowest = regret
        ax.step([q[0] for q in kept], [q[1] for q in kept], where="post", color=dots.get_color(), label=name)
    # Policies replayed at one setting (Optuna's pruners, no pruning, the oracle): one marker each, named in
    # the legend (labels on the points overlap where several land together).
    singles = [(n, r) for n, r in result["policies"].items() if n not in result.get("pareto", {})
               and r["compute_saved"] is not None and r["regret"] is not None]
    colours = plt.get_cmap("tab20")
    for i, (name, r) in enumerate(singles):
        ax.plot(r["compute_saved"], 100 * r["regret"], "xs^vD<>P*h"[i % 10], ms=7, ls="none",
                color=colours(i % 20), label=f"{name} (as replayed)")
    ax.set_xlabel("compute saved (fraction of training every config fully)")
    ax.set_ylabel("mean regret (accuracy points)")
    ax.set_title(f"{Path(result['sweep']).name}: {result['protocol']['held_out']}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="policy (lines: Pareto fronts)",
              title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
