"""The curve users meet: the best final a search finds within a compute budget, each policy at its nested setting.

On the 64- and 96-config sweeps, configs arrive in random order (one at a time) until a budget of B full
trainings is spent; a policy's find is the best final among the trials it trained to the end within that budget.
Each policy runs at the setting the nested comparison chose for that sweep on the other tasks (the rule: its
shipped setting; the look-ahead: its fold's choice, with a predictor fitted on the other tasks; Optuna's median
pruner: its fold's choice), beside unpruned random search. Prints a table, writes JSON and a plot.

    python benchmarks/fixed_budget.py [--orders 40] [--out benchmarks/fixed-budget]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from earlyexit.stamp import stamp
from earlyexit.pruning import DEFAULT_RULE
from earlyexit.pruning import fallback_margins
from earlyexit.replay._engine import Judge, OptunaJudge, RuleJudge, held_sets, live
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool, fit_predictor, predictions
from earlyexit.replay._nested import _optuna_candidates
from earlyexit.replay._nested_interval import CANDIDATES, candidate_labels
from earlyexit.sweeps import find_sweeps, load

LARGE = ("mpqa-wide96", "trec-wide64", "subj-wide64")
BUDGETS = (4, 8, 16, 32)
REFERENCE = 24  # unpruned random search's 24 full trainings: the find to match


class _Unpruned(Judge):
    def steps(self, held):
        return ()


def _curve(held, make_judge, orders):
    """``(grid of compute in full trainings, mean best dev final, mean best test final)`` over arrival orders."""
    full = held.budget
    grid = np.arange(1, 65) / 2  # 0.5 .. 32 full trainings
    dev, test = np.full((orders, len(grid)), np.nan), np.full((orders, len(grid)), np.nan)
    for o in range(orders):
        trace: list = []
        live(held, make_judge(o), o, 1, trace=trace)
        for j, c in enumerate(grid):
            within = [run for used, run in trace if used <= c * full and math.isfinite(run.final)]
            if within:
                best = max(within, key=lambda r: r.final)
                dev[o, j], test[o, j] = best.final, held.test.get(best.run_id, np.nan)
    return grid, np.nanmean(dev, axis=0), np.nanmean(test, axis=0)


def _plot(out: dict, path: str) -> None:
    """Each large sweep's expected best dev final against compute spent, one line per policy (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(LARGE), figsize=(5 * len(LARGE), 3.6))
    for ax, name in zip(axes, LARGE):
        for p, v in out["sweeps"][name].items():
            ax.plot(np.arange(1, 65) / 2, 100 * np.array(v["curve"]), label=p.split(" (")[0])
        ax.axvline(REFERENCE, color="grey", lw=0.5)
        ax.set_title(name)
        ax.set_xlabel("compute spent (full trainings)")
        ax.set_xscale("log", base=2)
    axes[0].set_ylabel("expected best dev final (points)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"fixed-budget search, each policy at its nested setting ({stamp()} CPU)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=40)
    ap.add_argument("--out", default="benchmarks/fixed-budget")
    ap.add_argument("--nested", default="benchmarks/nested/lookahead16-w1-first.json",
                    help="the nested run whose median choices to use")
    ap.add_argument("--lookahead", default="benchmarks/nested/lookahead16-w1.json",
                    help="the nested run whose look-ahead choices to use")
    ap.add_argument("--refit", default="benchmarks/nested/lookahead-refit16-w1.json",
                    help="the nested run whose study-refit look-ahead choices to use")
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    sweeps = [load(p) for p in find_sweeps(["studies"]) if (p / "runs.csv").exists()]
    sweeps = [sw for sw in sweeps if sw.missing_runs <= 0]
    nested, ahead = json.loads(Path(args.nested).read_text()), json.loads(Path(args.lookahead).read_text())
    refit = json.loads(Path(args.refit).read_text())
    out = {"protocol": {"orders": args.orders, "budgets": list(BUDGETS), "reference_trainings": REFERENCE,
                        "nested": args.nested, "lookahead": args.lookahead, "refit": args.refit}, "sweeps": {}}
    rows = []
    for name in LARGE:
        sweep = next(sw for sw in sweeps if sw.name == name)
        held = held_sets(sweep)[0]
        task = str(sweep.manifest.get("task"))
        others = [h for sw in sweeps if str(sw.manifest.get("task")) != task for h in held_sets(sw)]
        model = fit_predictor(others)
        gain = predictions(model, held)
        la_choice = ahead["held_out"][name]["lookahead"]["nested"]["choice"]
        cal, cov, keep = CANDIDATES["lookahead"][candidate_labels("lookahead").index(la_choice)]
        rf_choice = refit["held_out"][name]["lookahead_refit"]["nested"]["choice"]
        rcal, rcov, rkeep, shrink = CANDIDATES["lookahead_refit"][candidate_labels("lookahead_refit").index(rf_choice)]
        pool = StudyPool(model, held, shrink)
        med_choice = nested["held_out"][name]["median"]["nested"]["choice"]
        med = dict(_optuna_candidates(held.budget)["median"])[med_choice]
        policies = {
            "random search (unpruned)": lambda o: _Unpruned(),
            "default": lambda o: RuleJudge(held, DEFAULT_RULE),
            f"lookahead ({la_choice})": lambda o: LookaheadJudge(
                held, DEFAULT_RULE, gain, fallback=fallback_margins(model, cal, cov, held.budget), coverage=cov,
                keep=keep),
            f"lookahead_refit ({rf_choice})": lambda o: LookaheadJudge(
                held, DEFAULT_RULE, gain, fallback=fallback_margins(model, rcal, rcov, held.budget), coverage=rcov,
                keep=rkeep, pool=pool),
            f"median ({med_choice})": lambda o: OptunaJudge(held, med, o),
        }
        curves = {p: _curve(held, f, args.orders) for p, f in policies.items()}
        grid, ref_dev, _ = curves["random search (unpruned)"]
        target = ref_dev[list(grid).index(REFERENCE)]
        out["sweeps"][name] = {}
        for p, (g, dev, test) in curves.items():
            at = {b: (float(dev[list(g).index(b)]), float(test[list(g).index(b)])) for b in BUDGETS}
            reach = [c for c, d in zip(g, dev) if d >= target - 1e-12]
            share = float(reach[0] / REFERENCE) if reach else math.nan
            out["sweeps"][name][p] = {"best_at": {str(b): v for b, v in at.items()}, "share_to_match": share,
                                      "curve": [float(x) for x in dev]}
            rows.append((name, p, at, share))
    out["protocol"]["seconds"] = round(time.time() - started, 1)
    print(f"expected best dev final (test) within B full trainings; share of random search's {REFERENCE} full "
          f"trainings each policy needs to match its expected best ({args.orders} arrival orders)")
    print(f"{'sweep':12s} {'policy':66s} " + " ".join(f"B={b:<14d}" for b in BUDGETS) + " to match")
    for name, p, at, share in rows:
        cells = " ".join(f"{100 * d:6.2f} ({100 * t:6.2f})" if math.isfinite(t) else f"{100 * d:6.2f} (   -  )"
                         for d, t in at.values())
        print(f"{name:12s} {p[:66]:66s} {cells} {share:6.1%}" if math.isfinite(share) else
              f"{name:12s} {p[:66]:66s} {cells}  never")
    Path(args.out + ".json").write_text(json.dumps(out, indent=1) + "\n")
    _plot(out, args.out + ".png")


if __name__ == "__main__":
    main()
