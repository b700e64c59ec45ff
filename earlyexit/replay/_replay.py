"""``earlyexit replay``: every policy on a logged sweep, held out by seed, in several arrival orders.

The policies are one table (:func:`earlyexit.replay._policies.policy_table`); :func:`replay` fits what
they need, replays each at the given setting and, with ``pareto``, at every decision step and keep-top,
and assembles the JSON-ready result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import optuna

from ..names import Scorer
from ..sweeps import Sweep, ceiling_summary, seed_ceiling
from ._fit import HeldOut, scorers_for, surrogates_for
from ._policies import PARETO_KEEP, Policy, policy_table
from ._simulate import Run, evaluate


def replay(sweep: Sweep, *, scorer: Scorer | None = None, fit_on: Sequence[Sweep] = (), orders: int = 20,
           prefix: int = 100, keep_top: int = 1, pareto: bool = True, baselines_only: bool = False,
           progress=lambda m: None) -> dict:
    """Replay every policy; returns the JSON-ready result (see ``earlyexit replay --json``).

    ``baselines_only`` skips the scorer policies (``earlyexit*``): for a sweep with too few seeds to
    fit a scorer on, yet, and no other sweep to fit on.
    """
    held, incomplete = _held_out(sweep, fit_on, prefix, keep_top, pareto, progress)
    scorers, protocol = _fit_scorers(held, scorer, baselines_only)
    surrogates, param_names = surrogates_for(held) if scorer is None else ({}, [])
    table = policy_table(sweep, scorers, surrogates, param_names, prefix=prefix, keep_top=keep_top)
    held_out = [held.by_seed[s] for s in held.seeds]
    results = {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for policy in table:
        progress(f"replaying {policy.name}")
        results[policy.name] = evaluate(policy.run, held_out, 1 if policy.order_free else orders,
                                        policy.rank).as_dict()
    out = {"sweep": str(sweep.path),
           "protocol": _protocol(held, table, scorers, protocol, orders, prefix, keep_top, incomplete, param_names),
           "policies": results}
    ceiling = seed_ceiling(sweep)
    if ceiling:  # what a predictor knowing each config's mean final over the other seeds reaches
        out["noise_ceiling"] = {**ceiling_summary(ceiling), "per_seed": ceiling}
    if pareto:
        out["pareto"] = _pareto(table, held_out, held.prefixes, orders)
    out["frontier"] = frontier(out)
    return out


def save_figures(result: dict, sweep: Sweep, folder: Path) -> dict[str, str]:
    """Write the replay's Pareto plot and the sweep's probe x step heatmap into ``folder``; their paths."""
    from ..sweeps import correlation_heatmap

    png, heat = Path(folder) / "replay_pareto.png", Path(folder) / "correlations.png"
    plot(result, png)
    correlation_heatmap(sweep, heat)
    return {"plot": str(png), "heatmap": str(heat)}


def _held_out(sweep: Sweep, fit_on, prefix: int, keep_top: int, pareto: bool, progress) -> tuple[HeldOut, dict]:
    """The held-out seeds (those with as many runs as the largest: a seed still being logged would replay
    as a smaller study; its runs still train the scorer) and the decision steps to fit for."""
    held = HeldOut.of(sweep, fit_on=fit_on, keep_top=keep_top, progress=progress)
    configs_per_seed = max(len(rs) for rs in held.by_seed.values())
    if configs_per_seed < 2:
        raise ValueError(f"{sweep.path}: no seed has more than one run logged yet; a replay compares configs "
                         "within a seed, so it needs at least two runs of one seed (let the sweep log more).")
    complete = sorted(s for s in held.by_seed if len(held.by_seed[s]) == configs_per_seed)
    incomplete = {s: len(held.by_seed[s]) for s in sorted(held.by_seed) if s not in complete}
    steps = sweep.probe_steps
    if prefix not in steps:
        raise ValueError(f"--prefix {prefix} is not a probe step of {sweep.path} {steps}.")
    prefixes = sorted({s for s in (prefix, *steps) if 0 < s <= max(steps)}) if pareto else [prefix]
    return HeldOut(sweep, held.runs, held.by_seed, complete, held.fit_on, tuple(prefixes), keep_top,
                   progress), incomplete


def _fit_scorers(held: HeldOut, scorer: Scorer | None, baselines_only: bool) -> tuple[dict, str]:
    """Per scorer family, one scorer per held-out seed; and how the held-out scorers were obtained.

    ``earlyexit_all`` (every probe and a dev evaluation at every checkpoint) is what cost-awareness buys:
    fitted only where the cost-aware ``earlyexit`` is fitted, with probe costs known.
    """
    if baselines_only:
        return {}, "baselines only (no scorer)"
    scorers, protocol = {}, ""
    scorers["earlyexit"], protocol = scorers_for(held, scorer)
    if scorer is None and held.probe_costs is not None:
        scorers["earlyexit_all"] = scorers_for(held, None, cost_aware=False)[0]
    return scorers, protocol


def _protocol(held: HeldOut, table: list[Policy], scorers: dict, protocol: str, orders: int, prefix: int,
              keep_top: int, incomplete: dict, param_names: list[str]) -> dict:
    """The replay's protocol: what was held out, and what each policy reads and pays per checkpoint."""
    first = min(held.seeds)
    cost_steps: dict[str, float] = {}
    for policy in table:
        if policy.cost_key is not None and policy.cost_key not in cost_steps:
            cost_steps[policy.cost_key] = policy.reads(first, prefix).per_checkpoint
    scored = [p for p in table if p.scorer]
    return {
        "held_out": protocol, "orders": orders, "prefix": prefix, "keep_top": keep_top, "seeds": held.seeds,
        "configs_per_seed": len(held.by_seed[first]), "incomplete_seeds_skipped": incomplete,
        "probe_cost": ("measured per probe and per dev evaluation (probe_costs.json), in training steps"
                       if held.sweep.probe_costs is not None else "the log's wall-clock compute_steps: every probe "
                       "the sweep measured; dev evaluations free (no probe_costs.json)"),
        "probe_cost_steps": cost_steps,
        "probes": {p.name: list(p.reads(first, prefix).probes) for p in scored},
        "hyperparameters": param_names,
        "feature_sets": {p.name: _feature_sets(scorers[p.name], prefix, held.sweep) for p in scored}}


def _pareto(table: list[Policy], held_out: list[list[Run]], prefixes: Sequence[int], orders: int) -> dict:
    """Compute saved against regret as aggressiveness varies (decision step x keep top); a few orders
    suffice (orders only break ties)."""
    curves: dict[str, list] = defaultdict(list)

    def point(policy: Policy, step: int, k: int) -> None:
        r = evaluate(policy.at(step, k), held_out, min(orders, 5))
        curves[policy.name].append({"prefix": step, "keep_top": k, "compute_saved": r.compute_saved,
                                    "regret": r.regret})

    swept = [p for p in table if p.at is not None and p.pareto_steps is None]
    for step in prefixes:
        for k in PARETO_KEEP:
            for policy in swept:
                point(policy, step, k)
    for policy in (p for p in table if p.at is not None and p.pareto_steps is not None):
        for step in policy.pareto_steps:
            for k in PARETO_KEEP:
                point(policy, step, k)
    return dict(curves)


def _feature_sets(by_seed: dict, prefix: int, sweep: Sweep) -> dict:
    """Per held-out seed, what its scorer reads at ``prefix`` (a scorer with its own rule: at its rungs in the
    sweep's budget): names, steps, and the cost-aware choice."""
    from ._simulate import sweep_context

    out = {}
    for seed, sc in by_seed.items():
        if not hasattr(sc, "schemas"):  # a transfer scorer: its groups at its decision steps, and its rule
            rule = getattr(sc, "rule", None)
            steps = list(sc.decisions(sweep_context(sweep)[0], sweep.probe_steps)) if rule is not None else [prefix]
            plan = sc.reads(steps) or {}
            out[str(seed)] = {"names": list(sc.names), "steps": [s for s, ns in plan.items() if ns],
                              "feature_set": "+".join(getattr(sc, "groups", ())) or None,
                              "model": getattr(rule, "label", type(sc).__name__)}
            continue
        schema = sc.schemas.get(prefix)
        rep = sc.report.get(prefix, {})
        out[str(seed)] = {"names": list(schema.names) if schema else None,
                          "steps": list(schema.steps) if schema else None,
                          "feature_set": rep.get("feature_set"), "model": rep.get("chosen")}
    return out


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
