"""The replay's tables as text (``earlyexit replay`` prints them; ``--markdown`` for a README)."""

from __future__ import annotations

import math


def format_replay(result: dict, *, markdown: bool = False) -> str:
    """The replay's tables: every policy at the replayed setting, then the best of each at regret budgets."""
    lines: list[str] = []
    p = result["protocol"]
    lines.append(f"{result['sweep']}: {p['held_out']}, seeds {p['seeds']}, {p['configs_per_seed']} configs each, "
          f"{p['orders']} orders; decision at step {p['prefix']}, keep top {p['keep_top']}")
    if p.get("incomplete_seeds_skipped"):
        lines.append("not held out (still being logged): " + ", ".join(
            f"seed {s} ({n} of {p['configs_per_seed']} runs)" for s, n in p["incomplete_seeds_skipped"].items()))
    costs = ", ".join(f"{k} {v:.1f}" for k, v in p.get("probe_cost_steps", {}).items() if math.isfinite(v))
    lines.append(f"probe cost: {p['probe_cost']}" + (f"; per checkpoint: {costs}" if costs else ""))
    chosen = p.get("feature_sets", {}).get("earlyexit", {})
    if chosen:
        lines.append("earlyexit reads, per held-out seed: " + "; ".join(
            f"seed {s}: {c['feature_set'] or ', '.join(c['names'] or [])} ({c['model']})" for s, c in chosen.items()))
    ceiling = result.get("noise_ceiling")
    if ceiling:
        lines.append(f"noise ceiling (rank each seed's configs by their mean final over the other seeds, "
              f"{ceiling['seeds']} seeds): Spearman {ceiling['spearman']:.2f}, regret {100 * ceiling['regret']:.2f} pts")
    lines.append("")
    rows = []
    for name, r in result["policies"].items():
        cs = "-" if r["compute_saved"] is None else f"{r['compute_saved']:.1%} +- {r['compute_saved_std']:.1%}"
        rg = "-" if r["regret"] is None else f"{100 * r['regret']:.2f} +- {100 * r['regret_std']:.2f}"
        sp = "-" if r["spearman"] is None else f"{r['spearman']:.2f}"
        rows.append([name, cs, rg, sp])
    lines += table(["policy", "compute saved", "regret (pts)", "spearman"], rows, markdown)
    if result.get("frontier"):
        budgets = list(next(iter(result["frontier"].values())))
        lines.append("")
        lines.append("most compute saved at a mean regret within each budget (setting: decision step, keep top):")
        rows = []
        for name, by_budget in result["frontier"].items():
            cells = []
            for b in budgets:
                best = by_budget[b]
                cells.append("-" if best is None else f"{best['compute_saved']:.1%} ({best['setting']})")
            rows.append([name, *cells])
        lines += table(["policy", *[f"regret <= {100 * float(b):g} pts" for b in budgets]], rows, markdown)
    if "plot" in result:
        lines.append(f"\nPareto plot: {result['plot']}; probe x step correlations: {result['heatmap']}")
    return "\n".join(lines)


def table(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    """Lines of a table: Markdown, or the first column left-aligned and the others right-aligned."""
    if markdown:
        return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
                *("| " + " | ".join(row) + " |" for row in rows)]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return [f"{row[0]:<{widths[0] + 2}}" + "".join(f"{x:>{w + 2}}" for x, w in zip(row[1:], widths[1:], strict=True))
            for row in [header, *rows]]
