"""The fair comparison's tables and plots (``replay --nested``, ``replay SWEEP --trials``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..stamp import stamp
from ._nested import POLICIES


def _table(head, rows, markdown):
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return [fmt(head)] + [fmt(r) for r in rows]

def format_nested(result: dict, *, markdown: bool = False) -> str:
    """The nested table first (every policy's setting chosen on the other tasks), then the best case."""
    agg = result["aggregate"]
    head = ["policy", "saved (nested)", "mean regret", "worst regret", "test regret", "best case: saved / regret"]
    rows = []
    for p, a in sorted(agg.items(), key=lambda kv: POLICIES.index(kv[0]) if kv[0] in POLICIES else 99):
        n, b = a["nested"], a["best_case"]
        test = "-" if n["mean_test_regret"] is None else f"{n['mean_test_regret']:.2f}"
        rows.append([p, f"{n['mean_compute_saved']:.1%}", f"{n['mean_regret']:.2f}", f"{n['worst_regret']:.2f}",
                     test, f"{b['mean_compute_saved']:.1%} / {b['mean_regret']:.2f}"])
    p = result.get("protocol", {})
    lines = [f"nested leave-one-task-out over {len(p.get('sweeps', []))} sweeps; W={p.get('workers')} workers"
             + (f", studies of {p['trials']} configs ({p['draws']} draws a seed)" if p.get("trials") else "")
             + f"; {p.get('orders')} arrival orders; {p.get('seconds')} s", ""]
    if p.get("work_seconds"):  # where the time went: seconds of work, all processes together
        work = sorted(p["work_seconds"].items(), key=lambda kv: -kv[1])
        lines[-1:-1] = ["seconds of work by part (all processes): " + ", ".join(f"{k} {v:.0f}" for k, v in work)]
    lines += _table(head, rows, markdown)
    lines.append("")
    sweeps = sorted(result["held_out"])
    policies = [p for p in POLICIES if p in agg]
    head2 = ["held out"] + policies
    rows2 = []
    for s in sweeps:
        cells = [s]
        for p in policies:
            f = result["held_out"][s].get(p, {}).get("nested")
            cells.append("-" if f is None else f"{f['compute_saved']:.0%} / {f['regret']:.2f}")
        rows2.append(cells)
    lines += _table(head2, rows2, markdown)
    return "\n".join(lines)

OPTUNA_FAMILY = ("median", "patient_median", "percentile", "successive_halving", "hyperband", "wilcoxon")


def _marker(policy: str) -> str:
    """One marker a family: our rules (circle), Optuna's pruners (square), the look-ahead (triangle), other (diamond)."""
    if policy.startswith("lookahead"):
        return "^"
    if policy in OPTUNA_FAMILY:
        return "s"
    return "D" if policy in ("hyperparameters",) else "o"


def plot_nested(result: dict, path, *, x_max: float = 1.0) -> list[str]:
    """Compute saved against mean regret, one point per policy (nested; the best case as an open marker of the
    same colour), a legend naming each policy. A policy whose regret is beyond ``x_max`` points is drawn at the
    right edge with its regret written beside it, so that the others stay legible (returned: those policies).
    Stamped with the date and the machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = result["aggregate"]
    order = sorted(agg, key=lambda q: POLICIES.index(q) if q in POLICIES else 99)
    worst = max([agg[q][k]["mean_regret"] for q in order for k in ("nested", "best_case")] + [0.0])
    right = min(max(worst, 0.2) * 1.08, x_max)
    colours = plt.get_cmap("tab20").colors
    edge = []
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, policy in enumerate(order):
        colour, marker = colours[i % len(colours)], _marker(policy)
        for key, filled in (("nested", True), ("best_case", False)):
            f = agg[policy][key]
            x, y = f["mean_regret"], 100 * f["mean_compute_saved"]
            beyond = x > right
            ax.scatter(min(x, right), y, s=55 if filled else 30, marker=">" if beyond else marker,
                       facecolors=colour if filled else "none", edgecolors=colour, linewidths=1.2,
                       label=policy if filled else None, zorder=3 if filled else 2, clip_on=False)
            if beyond and filled:
                edge.append(policy)
                ax.annotate(f"{policy}: {x:.2f}", (right, y), xytext=(-6, -12), textcoords="offset points",
                            ha="right", fontsize=7, color=colour)
    p = result["protocol"]
    ax.set_xlim(-0.02, right)
    ax.set_xlabel("mean held-out regret (points of each sweep's metric)")
    ax.set_ylabel("mean compute saved (%)")
    when = stamp()
    ax.set_title(f"leave-one-task-out, settings chosen on the other tasks ({len(p['sweeps'])} sweeps, "
                 f"W={p['workers']}" + (f", {p['trials']} trials" if p["trials"] else "") + f"; {when})\n"
                 "filled: nested; open: the same policy's best case on the held-out sweep itself", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return edge


def plot_study_size(results: Sequence[dict], path, policies: Sequence[str] = ("default", "default_sync",
                                                                               "prefix_accuracy", "median",
                                                                               "successive_halving", "hyperband")) -> None:
    """Compute saved and regret against the study size N, one panel pair per sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 6), squeeze=False)
    for j, res in enumerate(results):
        sizes = [int(n) for n in res["by_size"]]
        for p in policies:
            if p not in res["choices"]:
                continue
            saved = [100 * res["by_size"][str(n)][p]["compute_saved"] for n in sizes]
            regret = [res["by_size"][str(n)][p]["regret"] for n in sizes]
            axes[0, j].plot(sizes, saved, marker="o", label=p)
            axes[1, j].plot(sizes, regret, marker="o", label=p)
        axes[0, j].set_title(res["sweep"], fontsize=10)
        axes[0, j].set_ylabel("compute saved (%)")
        axes[1, j].set_ylabel("dev regret (points)")
        axes[1, j].set_xlabel("configs in the study (N)")
        for ax in axes[:, j]:
            ax.set_xticks(sizes)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"studies of N configs drawn from each sweep, each policy at its setting chosen on other tasks "
                 f"({stamp()})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_study_size(result: dict) -> str:
    sizes = list(result["by_size"])
    policies = list(result["choices"])
    head = ["policy (setting chosen on other tasks)"] + [f"N={n}: saved / regret / test" for n in sizes]
    rows = []
    for p in policies:
        cells = [f"{p} ({result['choices'][p]})"]
        for n in sizes:
            f = result["by_size"][n][p]
            t = "-" if f["test_regret"] is None else f"{f['test_regret']:.2f}"
            cells.append(f"{f['compute_saved']:.1%} / {f['regret']:.2f} / {t}")
        rows.append(cells)
    p = result["protocol"]
    return "\n".join([f"{result['sweep']}: studies of N configs drawn from it ({p['draws']} draws a seed, "
                      f"{p['orders']} arrival orders, W={p['workers']})", ""] + _table(head, rows, False))
