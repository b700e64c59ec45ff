"""``earlyexit sweeps report``: how each probe at each step correlates with final accuracy.

The equivalent of the seed study's Table 1: Pearson r, its two-sided p-value
and n for every (probe, step) over the completed runs, how many are
significant at p < 0.05, median and best final accuracy, and a probe x step
heatmap of r.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from ..metrics import majority_share
from ._ceiling import ceiling_summary, seed_ceiling
from ._load import Sweep

SEED_FIGURES = {
    "init_abs_r_max": 0.18,
    "step400_hessian_trace_r": -0.52,
    "step400_loss_r": -0.51,
    "significant": "15 of 42",
    "median_final": 0.832,
    "best_final": 0.858,
}


def correlations(sweep: Sweep) -> list[dict]:
    """One dict per (probe, step): ``probe``, ``step``, ``r``, ``p``, ``n`` (finite pairs only)."""
    done = sweep.runs[sweep.runs["status"] == "completed"].set_index("run_id")["final_metric"]
    cps = sweep.checkpoints[sweep.checkpoints["run_id"].isin(done.index)]
    out = []
    for probe in sweep.probes:
        for step in sweep.probe_steps:
            rows = cps[cps["step"] == step]
            x = rows[probe].to_numpy(dtype=float)
            y = done.loc[rows["run_id"]].to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            n = int(ok.sum())
            if n >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                r, p = stats.pearsonr(x[ok], y[ok])
                out.append({"probe": probe, "step": step, "r": float(r), "p": float(p), "n": n})
            else:
                out.append({"probe": probe, "step": step, "r": math.nan, "p": math.nan, "n": n})
    return out


def heatmap(rows: list[dict], probes: list[str], steps: list[int], path: Path, title: str,
            metric: str = "accuracy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.full((len(probes), len(steps)), np.nan)
    sig = np.zeros_like(grid, dtype=bool)
    for row in rows:
        i, j = probes.index(row["probe"]), steps.index(row["step"])
        grid[i, j] = row["r"]
        sig[i, j] = row["p"] < 0.05 if math.isfinite(row["p"]) else False
    fig, ax = plt.subplots(figsize=(1.1 * len(steps) + 3, 0.5 * len(probes) + 1.5))
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set_yticks(range(len(probes)), probes)
    ax.set_xlabel("probe step")
    for i in range(len(probes)):
        for j in range(len(steps)):
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}{'*' if sig[i, j] else ''}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label=f"Pearson r with final dev {metric}")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def correlation_heatmap(sweep: Sweep, path: Path, rows: list[dict] | None = None) -> None:
    """The probe x step heatmap of :func:`correlations` for ``sweep``, as ``earlyexit sweeps report`` draws it."""
    summary = sweep.summary()
    heatmap(correlations(sweep) if rows is None else rows, sweep.probes, sweep.probe_steps, path,
            f"{summary['name']}: probe at step vs final {sweep.metric} (* p<0.05, n={summary['runs'] - summary['diverged']})",
            metric=sweep.metric)


def _accuracy_beside_metric(sweep: Sweep) -> list[str]:
    """Where the sweep's metric is not accuracy, the accuracy figures too (CoLA: MCC and accuracy)."""
    if sweep.metric == "accuracy":
        return []
    finals = sweep.runs.loc[sweep.runs["status"] == "completed", "final_accuracy"]
    return [f"| median final dev accuracy (beside {sweep.metric}) | {finals.median():.3f} | - |",
            f"| best final dev accuracy (beside {sweep.metric}) | {finals.max():.3f} | - |"]


def constant_accuracy(sweep: Sweep, labels=None) -> float:
    """The dev accuracy of a constant classifier (the majority class's share; NaN where it cannot be told).

    From the dev labels where given (format 3), else the manifest's class fractions (``dev_class_fractions``,
    format 2 sweeps logged from 2026-12-02); else it is read off step 0, where an untrained head predicts one
    class: the larger of ``a`` and ``1 - a`` over the step-0 dev accuracies of a binary task, and for more
    classes the largest step-0 accuracy (a lower bound).
    """
    if labels is not None and len(labels):
        return majority_share(labels)
    fractions = sweep.manifest.get("dev_class_fractions")
    if fractions:
        return float(max(fractions))
    at0 = sweep.checkpoints.loc[sweep.checkpoints["step"] == 0, "dev_accuracy"].dropna()
    if at0.empty:
        return math.nan
    if int(sweep.manifest.get("num_labels", 2)) == 2:
        return float(np.maximum(at0, 1 - at0).max())
    return float(at0.max())


def stuck_at_chance(sweep: Sweep, margin: float = 0.005) -> dict[int, tuple[int, int]]:
    """Per probe step: (runs whose dev accuracy is no better than a constant classifier, runs measured);
    the constant classifier's accuracy from :func:`constant_accuracy`."""
    cps = sweep.checkpoints
    chance = constant_accuracy(sweep)
    if not math.isfinite(chance):
        return {}
    out = {}
    for step in sweep.probe_steps:
        acc = cps.loc[cps["step"] == step, "dev_accuracy"].dropna()
        out[step] = (int((acc <= chance + margin).sum()), int(len(acc)))
    return out


def inert_parameters(sweep: Sweep, tolerance: float = 0.0025) -> dict[str, tuple[int, int]]:
    """Per searched parameter: (pairs of runs differing only in it whose finals agree within ``tolerance``,
    such pairs). A parameter whose pairs all agree changed nothing visible in this sweep."""
    runs = sweep.runs[sweep.runs["status"] == "completed"]
    params = [p for p in sweep.manifest.get("params", []) if p in runs.columns and p != "seed"]
    out = {}
    for p in params:
        others = [q for q in params if q != p] + (["seed"] if "seed" in runs.columns else [])
        agree = total = 0
        for _, group in runs.groupby(others, dropna=False) if others else [(None, runs)]:
            finals = group.drop_duplicates(p)["final_metric"].to_numpy(dtype=float)
            if len(finals) >= 2:
                total += 1
                agree += int(np.ptp(finals) <= tolerance)
        if total:
            out[p] = (agree, total)
    return out


def _trace_on_and_off_plateau(sweep: Sweep, step: int = 400) -> str:
    """The median Hessian trace at ``step`` of runs still at chance accuracy and of runs past it."""
    cps = sweep.checkpoints
    at0 = cps.loc[cps["step"] == 0, "dev_accuracy"].dropna()
    rows = cps[cps["step"] == step]
    if at0.empty or rows.empty or "hessian_trace" not in rows:
        return ""
    chance = float(np.maximum(at0, 1 - at0).max())
    on = rows.loc[rows["dev_accuracy"] <= chance + 0.005, "hessian_trace"].dropna()
    off = rows.loc[rows["dev_accuracy"] > chance + 0.005, "hessian_trace"].dropna()
    if on.empty or off.empty:
        return ""
    return (f" Runs still at chance at step {step} have a median trace of {on.median():+.1f} (n = {len(on)}), runs "
            f"past it {off.median():+.1f} (n = {len(off)}): on this model the trace swings through the escape "
            "from the plateau, so at one step it ranks runs by where they are in that swing, not by how good "
            "they will be.")


def _differences(sweep: Sweep, rows: list[dict], summary: dict) -> list[str]:
    """Where this sweep's figures differ from the seed study's, with what the log itself says about why."""
    m = sweep.manifest
    proto = m.get("protocol", {})
    lines = ["## Where ours differ from the seed study, and why", ""]
    layers = proto.get("num_layers")
    task = str(m.get("task", "sst2")).lower()
    if task != "sst2":
        lines.append(f"- Task: {task}, not the seed's SST-2, so this is a comparison across tasks: accuracy "
                     "levels are not comparable (a constant classifier scores differently on each task), only "
                     "the pattern of which probes track the final accuracy, and when.")
    lines.append(f"- Model: `{m.get('model')}`" + (f" cut to {layers} layers" if layers else "") +
                 " instead of the seed's BERT-mini (4 layers, 11M parameters); "
                 f"speed levers: length-grouped batches {proto.get('group_by_length')}, pruned vocabulary "
                 f"{proto.get('prune_vocabulary')}, frozen word embeddings {proto.get('freeze_word_embeddings')}."
                 + (_level_sentence(summary) if task == "sst2" else ""))
    if summary["runs"] < summary["planned_runs"]:
        lines.append(f"- Only {summary['runs']} of {summary['planned_runs']} runs are logged so far (seeds "
                     f"{summary['seeds']}): p-values are of a smaller n than the seed's 80, so fewer correlations "
                     "can be significant; rerun this command when the sweep is complete.")
    stuck = stuck_at_chance(sweep)
    if stuck:
        cells = ", ".join(f"step {s}: {k} of {n}" for s, (k, n) in stuck.items())
        lines.append(f"- Runs whose dev accuracy is still no better than a constant classifier: {cells}. While "
                     "most runs sit on that plateau, early probes mostly measure how fast each run leaves it "
                     "(its effective learning rate so far), which is why early correlations are strong only "
                     "where the learning rate alone decides the final accuracy.")
    inert = inert_parameters(sweep)
    flat = [f"{p} ({a} of {t} pairs within 0.25 points)" for p, (a, t) in inert.items() if t and a >= 0.9 * t]
    if flat:
        lines.append("- Parameters that changed next to nothing: " + ", ".join(flat) + ". Runs that differ only "
                     "in them are near-duplicates, so there are fewer distinct configs than the grid has, and "
                     "counting the duplicates twice inflates the significance of every r.")
    cps = sweep.checkpoints
    at0 = cps[cps["step"] == 0].merge(sweep.runs[["run_id", "seed"]], on="run_id")
    if len(at0) and "loss" in at0 and (at0.groupby("seed")["loss"].nunique() <= 1).all():
        lines.append("- At step 0 every run of a seed has the same model and probe batches, so step-0 probes "
                     "vary only between seeds: their r says how the seeds' finals differ"
                     + (" (and here the seeds logged so far hold different configs)"
                        if sweep.runs.groupby("seed")["config_id"].apply(frozenset).nunique() > 1 else "")
                     + ", not how configs do.")
    by = {(r["probe"], r["step"]): r for r in rows}
    trace, loss = by.get(("hessian_trace", 400)), by.get(("loss", 400))
    if trace and loss and math.isfinite(trace["r"]) and math.isfinite(loss["r"]):
        lines.append(f"- At step 400 the Hessian trace has r = {trace['r']:+.2f} and the loss r = {loss['r']:+.2f} "
                     f"(seed: {SEED_FIGURES['step400_hessian_trace_r']} and {SEED_FIGURES['step400_loss_r']}): "
                     + ("same sign as the seed's." if trace["r"] < 0 and loss["r"] < 0 else
                        "a sign differs from the seed's." + _trace_on_and_off_plateau(sweep)))
    return lines + [""]


def _ceiling_section(sweep: Sweep) -> list[str]:
    """The seed-to-seed noise ceiling as a table, or nothing for a one-seed sweep."""
    rows = seed_ceiling(sweep)
    if not rows:
        return []
    mean = ceiling_summary(rows)
    lines = ["## How well could any early signal do? The seed-to-seed noise ceiling", "",
             "Leave one seed out and rank its configs by their mean final accuracy over the other seeds: a "
             "predictor that knew every config's mean final exactly. The held-out seed still moves the "
             "finals. A scorer that learns how good a config is from other seeds' runs should not expect a "
             "higher Spearman (only what a run's own first steps reveal about its remaining steps could lift "
             "it), and the regret is what keeping the config that is best on average costs on that seed "
             "(written by `earlyexit.sweeps.seed_ceiling`).", "",
             "| held-out seed | configs | Spearman | regret (points) | best config | picked |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['seed']} | {r['configs']} | {r['spearman']:.2f} | {100 * r['regret']:.2f} | {r['best_config']} | "
              f"{r['picked_config']} |" for r in rows]
    lines += [f"| mean | | {mean['spearman']:.2f} | {100 * mean['regret']:.2f} | | |", ""]
    return lines


def write_report(sweep: Sweep, out: Path | None = None) -> Path:
    """Write REPORT.md and correlations.png into the sweep folder (or next to ``out``)."""
    out = Path(out) if out else sweep.path / "REPORT.md"
    png = out.with_name("correlations.png")
    rows = correlations(sweep)
    summary = sweep.summary()
    correlation_heatmap(sweep, png, rows)
    finite = [r for r in rows if math.isfinite(r["p"])]
    significant = sum(r["p"] < 0.05 for r in finite)
    seed_like = [r for r in finite if r["probe"] != "critical_sharpness"]
    seed_like_sig = sum(r["p"] < 0.05 for r in seed_like)
    by = {(r["probe"], r["step"]): r for r in rows}
    init = [abs(r["r"]) for r in finite if r["step"] == 0]

    def cell(probe, step):
        r = by.get((probe, step))
        return "n/a" if r is None or not math.isfinite(r["r"]) else f"r = {r['r']:+.2f} (p = {r['p']:.2g}, n = {r['n']})"

    m = sweep.manifest
    what = sweep.metric
    lines = [
        f"# {summary['name']}: probes against final {what}",
        "",
        f"Written by `earlyexit sweeps report {sweep.path}`. Task {m.get('task')}, model `{m.get('model')}`; "
        f"{summary['runs']} of {summary['planned_runs']} planned runs logged ({summary['diverged']} diverged), "
        f"{summary['configs']} configs, seeds {summary['seeds']}. Machine: {m.get('machine', {}).get('platform', '?')}, "
        f"{m.get('machine', {}).get('torch_threads', '?')} torch threads; command `{m.get('command', '?')}`.",
        "",
        "## Headline figures, ours against the seed study's (SST-2)",
        "",
        "| figure | ours | seed |",
        "| --- | --- | --- |",
        f"| median final dev {what} | {summary['median_final']:.3f} | {SEED_FIGURES['median_final']} |",
        f"| best final dev {what} | {summary['best_final']:.3f} | {SEED_FIGURES['best_final']} |",
        *_accuracy_beside_metric(sweep),
        f"| largest \\|r\\| at initialisation (step 0) | {max(init) if init else math.nan:.2f} | {SEED_FIGURES['init_abs_r_max']} |",
        f"| step-400 Hessian trace | {cell('hessian_trace', 400)} | r = {SEED_FIGURES['step400_hessian_trace_r']} |",
        f"| step-400 loss | {cell('loss', 400)} | r = {SEED_FIGURES['step400_loss_r']} |",
        f"| significant at p < 0.05 (seed's 6 probes) | {seed_like_sig} of {len(seed_like)} | {SEED_FIGURES['significant']} |",
        f"| significant at p < 0.05 (all probes) | {significant} of {len(finite)} | - |",
        "",
        *_differences(sweep, rows, summary),
        *_ceiling_section(sweep),
        f"## Every probe at every step (Pearson r with final dev {what}, p, n)",
        "",
        "| probe | " + " | ".join(f"step {s}" for s in sweep.probe_steps) + " |",
        "| --- | " + " | ".join("---" for _ in sweep.probe_steps) + " |",
    ]
    for probe in sweep.probes:
        cells = []
        for s in sweep.probe_steps:
            r = by[(probe, s)]
            cells.append("n/a" if not math.isfinite(r["r"]) else
                         f"{r['r']:+.2f}{'*' if r['p'] < 0.05 else ''} (p={r['p']:.2g}, n={r['n']})")
        lines.append(f"| {probe} | " + " | ".join(cells) + " |")
    lines += ["", f"![probe x step correlations]({png.name})", "", "`*`: p < 0.05. n counts runs with a finite "
              "value (critical sharpness is +inf where the optimizer's update is not a descent direction)."]
    out.write_text("\n".join(lines) + "\n")
    return out


def _level_sentence(summary: dict) -> str:
    """How our SST-2 accuracy levels compare with the seed's, without claiming a direction the numbers lack."""
    best, median = summary["best_final"], summary["median_final"]
    figures = (f"best {best:.3f} against the seed's {SEED_FIGURES['best_final']}, median {median:.3f} against "
               f"{SEED_FIGURES['median_final']}")
    if best < SEED_FIGURES["best_final"] and median < SEED_FIGURES["median_final"]:
        return f" A smaller encoder ends lower: {figures}."
    return f" Accuracy levels: {figures} (a different search space and model, so levels compare loosely)."
