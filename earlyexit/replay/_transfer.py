"""Leave-one-task-out: does a scorer fitted on other tasks prune a new one? (``replay --leave-one-task-out``)

For each task among the sweeps, every policy is fitted on the sweeps of the *other* tasks and replayed
on each sweep of the held-out task (:func:`earlyexit.replay.replay` with ``fit_on``). The result holds,
per held-out sweep and aggregated over them (mean and worst), each policy's compute saved, regret and
Spearman at the default setting, and the most compute it saves within a mean regret of 0, 0.1, 0.5 and
1 point. Regrets are in points of each sweep's own metric (100 x the metric).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..sweeps import Sweep
from ._policies import optuna_pruners
from ._replay import replay
from ._transfer_rule import best_rule_ceilings, nested_transfer, studies_of

POLICIES = ("earlyexit", "earlyexit_transfer", "earlyexit_all", "loss_only", "prefix_accuracy", "hyperparameters",
            "best_optuna", "oracle")
"""The policies the transfer table reports (``best_optuna``: the best of Optuna's pruners, chosen per budget)."""

BUDGETS = ("0", "0.1", "0.5", "1")
"""Mean-regret budgets, in points."""

OPTUNA = tuple(optuna_pruners(1))
"""Optuna's pruners as the replay names them (the table's own list)."""


def tasks_of(sweeps: Sequence[Sweep]) -> dict[str, list[Sweep]]:
    """The sweeps by task (the manifest's ``task``), in the order given."""
    by_task: dict[str, list[Sweep]] = defaultdict(list)
    for sw in sweeps:
        by_task[str(sw.manifest.get("task"))].append(sw)
    return dict(by_task)


def leave_one_task_out(sweeps: Sequence[Sweep], *, orders: int = 20, prefix: int = 100, keep_top: int = 1,
                       progress=lambda m: None) -> dict:
    """Replay every policy on each task's sweeps with scorers fitted on the other tasks' sweeps.

    Needs sweeps of at least two tasks. Returns ``{"protocol", "held_out": {sweep: {policy: figures}},
    "aggregate": {policy: figures}, "points": ...}``; a policy's figures are ``compute_saved``,
    ``regret`` (points), ``spearman`` at the default setting (``prefix``, ``keep_top``) and
    ``saved_within`` (budget in points -> most compute saved, or None).
    """
    by_task = tasks_of(sweeps)
    if len(by_task) < 2:
        raise ValueError(f"leave-one-task-out needs sweeps of at least two tasks, but got {sorted(by_task)}.")
    started = time.perf_counter()
    held_out, points, ceilings, results = {}, {}, {}, {}
    for task, task_sweeps in by_task.items():
        fit_on = [sw for t, sws in by_task.items() if t != task for sw in sws]
        for sw in task_sweeps:
            progress(f"held out: {sw.name} (task {task}); fitting on {', '.join(s.name for s in fit_on)}")
            result = replay(sw, fit_on=fit_on, orders=orders, prefix=prefix, keep_top=keep_top,
                            progress=progress)
            results[sw.name] = result
            held_out[sw.name], points[sw.name] = _per_sweep(result)
            if "noise_ceiling" in result:
                nc = result["noise_ceiling"]
                ceilings[sw.name] = {"spearman": nc["spearman"], "regret": 100 * nc["regret"]}
    choices = {}
    if len(by_task) >= 3:
        progress("earlyexit_transfer: choosing the scorer and its rule inside each fold's training tasks")
        studies = studies_of(sweeps)
        for name, figures in nested_transfer(studies, progress).items():
            held_out[name]["earlyexit_transfer"] = {
                "compute_saved": figures["compute_saved"], "regret": figures["regret"], "spearman": None,
                "rule_ceiling": figures["rule_ceiling"],
                "saved_within": {b: max((s for _, s, r in figures["points"] if r <= float(b) + 1e-9), default=None)
                                 for b in BUDGETS}}
            points[name]["earlyexit_transfer"] = figures["points"]
            choices[name] = figures["choice"]
        progress("the most any rule saves with perfect scores (what caps a live rule, whatever its scorer)")
        rule_ceilings = best_rule_ceilings(studies)
    else:
        rule_ceilings = {}
        progress("earlyexit_transfer needs sweeps of three tasks (its choice is made on two); left out")
    aggregate = _aggregate(held_out, points)
    return {
        "protocol": {"tasks": {t: [sw.name for sw in sws] for t, sws in by_task.items()}, "orders": orders,
                     "prefix": prefix, "keep_top": keep_top, "regret_units": "points (100 x each sweep's metric)",
                     "metrics": {sw.name: sw.metric for sw in sweeps},
                     "seconds": round(time.perf_counter() - started, 1)},
        "held_out": held_out,
        "aggregate": aggregate,
        "noise_ceiling": ceilings,
        "targets": {**targets(held_out, aggregate, points, ceilings), "best_rule_ceilings": rule_ceilings}
        if choices else {},
        "points": {name: {p: [list(x) for x in pts] for p, pts in by_policy.items()} for name, by_policy in points.items()},
        "transfer_choices": choices,
        "replays": {name: {"held_out": r["protocol"]["held_out"], "feature_sets": r["protocol"]["feature_sets"]}
                    for name, r in results.items()},
    }


def _per_sweep(result: dict) -> tuple[dict, dict]:
    """One sweep's figures per policy, and every setting's (setting, compute saved, regret in points)."""
    policies, frontier = result["policies"], result.get("frontier", {})
    figures, points = {}, {}
    for name in POLICIES:
        if name == "best_optuna":
            continue
        if name not in policies:
            continue
        r = policies[name]
        figures[name] = {"compute_saved": r["compute_saved"], "regret": _points(r["regret"]),
                         "spearman": r["spearman"],
                         "saved_within": {b: _within(frontier.get(name, {}), b) for b in BUDGETS}}
        pts = result.get("pareto", {}).get(name)
        points[name] = ([(f"step {p['prefix']}, top {p['keep_top']}", p["compute_saved"], _points(p["regret"]))
                         for p in pts] if pts else [("as replayed", r["compute_saved"], _points(r["regret"]))])
    for name in OPTUNA:
        if name in policies:
            r = policies[name]
            points[name] = [("as replayed", r["compute_saved"], _points(r["regret"]))]
    optuna_figures = {n: policies[n] for n in OPTUNA if n in policies and policies[n]["regret"] is not None}
    if optuna_figures:
        best = min(optuna_figures, key=lambda n: (optuna_figures[n]["regret"], -optuna_figures[n]["compute_saved"]))
        r = optuna_figures[best]
        figures["best_optuna"] = {
            "pruner": best, "compute_saved": r["compute_saved"], "regret": _points(r["regret"]),
            "spearman": r["spearman"],
            "saved_within": {b: max((v for v in (_within(frontier.get(n, {}), b) for n in optuna_figures)
                                     if v is not None), default=None) for b in BUDGETS}}
    return figures, points


def _aggregate(held_out: dict, points: dict) -> dict:
    """Mean and worst over held-out sweeps; ``saved_within`` from the settings' means over sweeps."""
    out = {}
    names = [p for p in POLICIES if any(p in h for h in held_out.values())]
    for name in names:
        rows = [h[name] for h in held_out.values() if name in h]
        regrets = [r["regret"] for r in rows if r["regret"] is not None]
        saved = [r["compute_saved"] for r in rows if r["compute_saved"] is not None]
        entry = {"sweeps": len(rows), "mean_compute_saved": _mean(saved), "mean_regret": _mean(regrets),
                 "worst_regret": max(regrets) if regrets else None}
        ceilings = [r["rule_ceiling"] for r in rows if r.get("rule_ceiling") is not None]
        if ceilings:
            entry["mean_rule_ceiling"] = _mean(ceilings)
        if name == "best_optuna":
            entry["saved_within"] = _best_optuna_within(points)
        else:
            entry["saved_within"] = _mean_within({sw: p[name] for sw, p in points.items() if name in p})
        out[name] = entry
    return out


TARGETS = {"mean_regret": 0.5, "worst_regret": 1.0, "mean_compute_saved": 0.8,
           "compute_vs_prefix_accuracy": 1 / 2, "compute_vs_best_optuna": 1 / 3}
"""The transfer scorer's targets for ``earlyexit_transfer``: at its own setting, mean and worst regret (points) and
mean compute saved; within a mean regret budget, its compute (1 - saved) as a fraction of
``prefix_accuracy``'s and of the best Optuna pruner's most-saving setting within the same budget."""


def targets(held_out: dict, aggregate: dict, points: dict, ceilings: dict) -> dict:
    """``earlyexit_transfer`` against :data:`TARGETS`, each with its measured figure and whether it is met.

    ``per_sweep_vs_prefix_accuracy``: on each held-out sweep, its regret against the lowest regret of a
    ``prefix_accuracy`` setting that uses no more compute, beside the sweep's noise ceiling (the regret
    of choosing by the other seed's finals; where the sweep has one seed, the mean ceiling of the
    sweeps that have two, marked ``ceiling_from``)."""
    t = aggregate["earlyexit_transfer"]
    out = {"bounds": dict(TARGETS),
           "at_default": {"mean_regret": t["mean_regret"], "worst_regret": t["worst_regret"],
                          "mean_compute_saved": t["mean_compute_saved"],
                          "mean_rule_ceiling": t.get("mean_rule_ceiling"),
                          "met": bool(t["mean_regret"] <= TARGETS["mean_regret"] + 1e-9
                                      and t["worst_regret"] <= TARGETS["worst_regret"] + 1e-9
                                      and t["mean_compute_saved"] >= TARGETS["mean_compute_saved"] - 1e-9)}}
    for other, key in (("prefix_accuracy", "compute_vs_prefix_accuracy"), ("best_optuna", "compute_vs_best_optuna")):
        rows = {}
        for b in BUDGETS:
            mine, theirs = t["saved_within"].get(b), aggregate.get(other, {}).get("saved_within", {}).get(b)
            if mine is None or theirs is None:
                continue
            ratio = (1 - mine["compute_saved"]) / max(1e-12, 1 - theirs["compute_saved"])
            rows[b] = {"compute": 1 - mine["compute_saved"], "their_compute": 1 - theirs["compute_saved"],
                       "ratio": ratio, "met": bool(ratio <= TARGETS[key] + 1e-9)}
        out[key] = rows
    known = [c["regret"] for c in ceilings.values()]
    per = {}
    for sweep, by in held_out.items():
        mine = by.get("earlyexit_transfer")
        if mine is None or "prefix_accuracy" not in points.get(sweep, {}):
            continue
        cheaper = [r for _, saved, r in points[sweep]["prefix_accuracy"]
                   if saved is not None and r is not None and saved >= mine["compute_saved"] - 1e-9]
        theirs = min(cheaper) if cheaper else None
        ceiling = ceilings[sweep]["regret"] if sweep in ceilings else (_mean(known) if known else None)
        gap = None if theirs is None else mine["regret"] - theirs
        per[sweep] = {"regret": mine["regret"], "prefix_accuracy_regret": theirs, "gap": gap,
                      "noise_ceiling": ceiling, "ceiling_from": "this sweep" if sweep in ceilings else "mean",
                      "met": None if gap is None or ceiling is None else bool(gap <= ceiling + 1e-9)}
    out["per_sweep_vs_prefix_accuracy"] = per
    return out


def format_targets(result: dict) -> str:
    """The targets block in words (empty where ``earlyexit_transfer`` was not measured)."""
    t = result.get("targets")
    if not t:
        return ""
    d = t["at_default"]
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [f"targets for earlyexit_transfer: at its setting {d['mean_compute_saved']:.1%} saved (target >= "
             f"{t['bounds']['mean_compute_saved']:.0%}; the same rule with perfect scores: "
             + ("-" if d["mean_rule_ceiling"] is None else f"{d['mean_rule_ceiling']:.1%}")
             + f"), mean regret {d['mean_regret']:.2f} (<= {t['bounds']['mean_regret']}), worst "
             f"{d['worst_regret']:.2f} (<= {t['bounds']['worst_regret']}) pts: {yes(d['met'])}"]
    best = t.get("best_rule_ceilings") or {}
    if best.get("candidates"):
        lines.append(f"  the most any candidate rule saves with perfect scores: {best['candidates']['compute_saved']:.1%} "
                     f"({best['candidates']['rule']})" + (
                         f"; without the learning-rate guard {best['unguarded']['compute_saved']:.1%} "
                         f"({best['unguarded']['rule']})" if best.get("unguarded") else ""))
    for key, who, frac in (("compute_vs_prefix_accuracy", "prefix_accuracy", "1/2"),
                           ("compute_vs_best_optuna", "the best Optuna pruner", "1/3")):
        for b, r in t[key].items():
            lines.append(f"  within a mean regret of {b} pts: compute {r['compute']:.1%} against {who}'s "
                         f"{r['their_compute']:.1%} (ratio {r['ratio']:.2f}, target <= {frac}): {yes(r['met'])}")
    for sweep, r in t["per_sweep_vs_prefix_accuracy"].items():
        if r["met"] is None:
            continue
        lines.append(f"  {sweep}: regret {r['regret']:.2f} against prefix_accuracy's {r['prefix_accuracy_regret']:.2f} "
                     f"at no more compute (gap {r['gap']:+.2f}; noise ceiling {r['noise_ceiling']:.2f}"
                     + ("" if r["ceiling_from"] == "this sweep" else ", the mean of the two-seed sweeps")
                     + f"): {yes(r['met'])}")
    return "\n".join(lines)


def _mean_within(per_sweep: dict[str, list]) -> dict:
    """Per budget: the setting whose mean regret over the sweeps is within it and saves most on average."""
    by_setting: dict[str, list] = defaultdict(list)
    for pts in per_sweep.values():
        for setting, saved, regret in pts:
            by_setting[setting].append((saved, regret))
    n = len(per_sweep)
    means = {s: (_mean([v[0] for v in vs]), _mean([v[1] for v in vs])) for s, vs in by_setting.items()
             if len(vs) == n and all(v[0] is not None and v[1] is not None for v in vs)}
    out = {}
    for b in BUDGETS:
        ok = [(saved, regret, s) for s, (saved, regret) in means.items() if regret <= float(b) + 1e-9]
        best = max(ok, key=lambda x: (x[0], -x[1])) if ok else None
        out[b] = None if best is None else {"compute_saved": best[0], "regret": best[1], "setting": best[2]}
    return out


def _best_optuna_within(points: dict) -> dict:
    """Per budget: the one Optuna pruner whose mean over the sweeps saves most within it."""
    out = {}
    per_pruner = {n: _mean_within({sw: p[n] for sw, p in points.items() if n in p}) for n in OPTUNA
                  if any(n in p for p in points.values())}
    for b in BUDGETS:
        ok = [(v[b]["compute_saved"], n, v[b]) for n, v in per_pruner.items() if v[b] is not None]
        best = max(ok, key=lambda x: x[0]) if ok else None
        out[b] = None if best is None else {**best[2], "setting": best[1]}
    return out


def _within(frontier_entry: dict, budget_points: str):
    key = str(float(budget_points) / 100)
    match = next((v for k, v in frontier_entry.items() if math.isclose(float(k), float(key), abs_tol=1e-12)), None)
    return None if match is None else match["compute_saved"]


def _points(regret):
    return None if regret is None else 100 * regret


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def format_transfer(result: dict, *, markdown: bool = False) -> str:
    """The leave-one-task-out table: per held-out sweep and aggregated, each policy's figures."""
    from ._tables import table

    head = ["held out", "policy", "saved (default)", "regret (pts)", "spearman",
            *[f"saved, regret <= {b} pts" for b in BUDGETS]]
    rows = []

    def cells(figures, within):
        saved = figures.get("compute_saved", figures.get("mean_compute_saved"))
        regret = figures.get("regret", figures.get("mean_regret"))
        return [_pct(saved), "-" if regret is None else f"{regret:.2f}",
                "-" if figures.get("spearman") is None else f"{figures['spearman']:.2f}",
                *[_pct(w if not isinstance(w, dict) else w["compute_saved"]) if w is not None else "-"
                  for w in (within[b] for b in BUDGETS)]]

    for sweep, by_policy in result["held_out"].items():
        for name, f in by_policy.items():
            label = f"{name} ({f['pruner']})" if name == "best_optuna" else name
            rows.append([sweep, label, *cells(f, f["saved_within"])])
        if sweep in result.get("noise_ceiling", {}):
            nc = result["noise_ceiling"][sweep]
            rows.append([sweep, "noise ceiling", "", f"{nc['regret']:.2f}", f"{nc['spearman']:.2f}",
                         *[""] * len(BUDGETS)])
    for name, f in result["aggregate"].items():
        worst = "-" if f["worst_regret"] is None else f"{f['worst_regret']:.2f}"
        rows.append([f"mean of {f['sweeps']} (worst regret {worst})", name, *cells(f, f["saved_within"])])
    lines = table(head, rows, markdown)
    seconds = result["protocol"].get("seconds")
    targets_text = format_targets(result)
    return "\n".join([f"leave-one-task-out over {', '.join(result['protocol']['tasks'])}: "
                      f"{result['protocol']['orders']} orders, decision at step {result['protocol']['prefix']}, "
                      f"keep top {result['protocol']['keep_top']}; regret in points of each sweep's metric"
                      + (f"; {seconds:.0f} s" if seconds is not None else ""), *lines,
                      *([targets_text] if targets_text else [])])


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def plot_transfer(result: dict, path: Path) -> None:
    """Mean compute saved against mean regret over the held-out sweeps, each policy's settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    names = {p for pts in result["points"].values() for p in pts}
    colours = plt.get_cmap("tab20")
    for i, name in enumerate(sorted(names)):
        per_sweep = {sw: [tuple(x) for x in p[name]] for sw, p in result["points"].items() if name in p}
        by_setting: dict[str, list] = defaultdict(list)
        for pts in per_sweep.values():
            for setting, saved, regret in pts:
                if saved is not None and regret is not None:
                    by_setting[setting].append((saved, regret))
        xs = [_mean([v[0] for v in vs]) for vs in by_setting.values() if len(vs) == len(per_sweep)]
        ys = [_mean([v[1] for v in vs]) for vs in by_setting.values() if len(vs) == len(per_sweep)]
        if xs:
            ax.plot(xs, ys, "o" if len(xs) > 1 else "x", alpha=0.7, color=colours(i % 20), ls="none", label=name)
    ax.set_xlabel("mean compute saved over held-out sweeps")
    ax.set_ylabel("mean regret (points of each sweep's metric)")
    ax.set_title("leave-one-task-out: " + ", ".join(result["protocol"]["tasks"]))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
