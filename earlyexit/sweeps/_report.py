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
    done = sweep.runs[sweep.runs["status"] == "completed"].set_index("run_id")["final_accuracy"]
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


def heatmap(rows: list[dict], probes: list[str], steps: list[int], path: Path, title: str) -> None:
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
    fig.colorbar(im, ax=ax, label="Pearson r with final dev accuracy")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(sweep: Sweep, out: Path | None = None) -> Path:
    """Write REPORT.md and correlations.png into the sweep folder (or next to ``out``)."""
    out = Path(out) if out else sweep.path / "REPORT.md"
    png = out.with_name("correlations.png")
    rows = correlations(sweep)
    summary = sweep.summary()
    heatmap(rows, sweep.probes, sweep.probe_steps, png,
            f"{summary['name']}: probe at step vs final accuracy (* p<0.05, n={summary['runs'] - summary['diverged']})")
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
    lines = [
        f"# {summary['name']}: probes against final accuracy",
        "",
        f"Written by `earlyexit sweeps report {sweep.path}`. Task {m.get('task')}, model `{m.get('model')}`; "
        f"{summary['runs']} of {summary['planned_runs']} planned runs logged ({summary['diverged']} diverged), "
        f"{summary['configs']} configs, seeds {summary['seeds']}. Machine: {m.get('machine', {}).get('platform', '?')}, "
        f"{m.get('machine', {}).get('torch_threads', '?')} torch threads; command `{m.get('command', '?')}`.",
        "",
        "## Headline figures, ours against the seed study's",
        "",
        "| figure | ours | seed |",
        "| --- | --- | --- |",
        f"| median final dev accuracy | {summary['median_final']:.3f} | {SEED_FIGURES['median_final']} |",
        f"| best final dev accuracy | {summary['best_final']:.3f} | {SEED_FIGURES['best_final']} |",
        f"| largest \\|r\\| at initialisation (step 0) | {max(init) if init else math.nan:.2f} | {SEED_FIGURES['init_abs_r_max']} |",
        f"| step-400 Hessian trace | {cell('hessian_trace', 400)} | r = {SEED_FIGURES['step400_hessian_trace_r']} |",
        f"| step-400 loss | {cell('loss', 400)} | r = {SEED_FIGURES['step400_loss_r']} |",
        f"| significant at p < 0.05 (seed's 6 probes) | {seed_like_sig} of {len(seed_like)} | {SEED_FIGURES['significant']} |",
        f"| significant at p < 0.05 (all probes) | {significant} of {len(finite)} | - |",
        "",
        "## Every probe at every step (Pearson r with final dev accuracy, p, n)",
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
