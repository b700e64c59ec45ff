"""Same step or same share of the budget: where a pruner should meet trials of different lengths.

A study that searches the batch size (or the epochs) holds trials of different budgets: in
``benchmarks/budgets/sst2-2k-budgets32/`` they run 96, 189, 375 or 750 steps. ``ResolutionPruner`` judges each
trial at the rule's rungs on its own budget; what it compares it with there is the choice measured here:

- ``fraction``: every other trial's reading at the same share of *its* budget;
- ``step``: every other trial's reading at the same step number, or its latest before it where it went past
  the step without reporting there (what Optuna's own pruners do; the default, chosen here).

Each study is replayed through a real in-memory Optuna study (``earlyexit.replay``'s ``OptunaJudge``: the pruner's
own ``prune()`` on what ``earlyexit.report`` records from the log), the configs arriving in random orders, one at a
time and four at a time, beside Optuna's median pruner and no pruning. Compute is counted in training steps plus
the dev evaluations a pruner reads; regret in points of the best final found against the sweep's best.

    python benchmarks/judge_at.py [--orders 40] [--sweep benchmarks/budgets/sst2-2k-budgets32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optuna

from earlyexit.pruning import ResolutionPruner
from earlyexit.replay._engine import OptunaJudge, held_sets, live
from earlyexit.stamp import machine, stamp, today
from earlyexit.sweeps import load

POLICIES = {
    "fraction": lambda: ResolutionPruner(judge_at="fraction"),
    "step": lambda: ResolutionPruner(judge_at="step"),
    "optuna median": lambda: optuna.pruners.MedianPruner(),
    "none": lambda: optuna.pruners.NopPruner(),
}


def measure(held, policy: str, orders: int, workers: int) -> dict:
    """Mean compute used, mean and worst regret (dev and test) of ``policy`` over ``orders`` arrival orders."""
    used, regret, test = [], [], []
    for o in range(orders):
        judge = OptunaJudge(held, POLICIES[policy], o, attrs=True)
        r = live(held, judge, o, workers)
        used.append(r.compute_used)
        regret.append(r.regret)
        test.append(r.test_regret)
    return {"policy": policy, "workers": workers, "orders": orders, "saved": 100 * (1 - float(np.mean(used))),
            "mean_regret": float(np.mean(regret)), "worst_regret": float(np.max(regret)),
            "test_regret": float(np.nanmean(test)) if np.isfinite(test).any() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="benchmarks/budgets/sst2-2k-budgets32")
    ap.add_argument("--orders", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sweep = load(args.sweep)
    (held,) = held_sets(sweep)
    budgets = sorted({held.budget_of(r) for r in held.runs})
    if len(budgets) < 2:
        raise SystemExit(f"{args.sweep}: every run has the same budget ({budgets}); nothing to measure here.")
    start = time.perf_counter()
    rows = [measure(held, p, args.orders, w) for w in args.workers for p in POLICIES]
    seconds = time.perf_counter() - start
    print(f"{sweep.name}: {len(held.runs)} runs, budgets {budgets} steps; {args.orders} arrival orders; "
          f"{stamp()} ({seconds:.0f} s)")
    print("| policy | workers | saved | mean regret | worst regret | test regret |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        test = "-" if r["test_regret"] is None else f"{r['test_regret']:.2f}"
        print(f"| {r['policy']} | {r['workers']} | {r['saved']:.1f}% | {r['mean_regret']:.2f} | "
              f"{r['worst_regret']:.2f} | {test} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sweep": sweep.name, "runs": len(held.runs), "budgets": budgets,
                       "date": today(), "machine": machine(),
                       "command": f"python benchmarks/judge_at.py --orders {args.orders} --sweep {args.sweep}",
                       "rows": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
