"""Reproduces a figure only (the package does not need it): where each sweep's eventual winner stands at each
rung of the shipped rule, synchronously (every trial measured at the rung).

For every sweep seed and every rung of ``earlyexit.pruning.DEFAULT_RULE`` (placed on the logged steps): the
winner's rank by dev metric among the trials at that rung, how many trials tie it, whether it is still warming
up (then it passes unjudged), and how many trials lead it by more than the rule's resolution (one or more
would prune it). Run from the repository root: ``python benchmarks/winner_ranks.py`` (about 20 s).
"""

import math
import sys

from earlyexit.pruning import DEFAULT_RULE
from earlyexit.replay._engine import held_sets
from earlyexit.sweeps import find_sweeps, load


def main(paths) -> int:
    print("| sweep (seed) | winner's warmup | rung: step (share) rank / ties / resolved leaders |")
    print("|---|---|---|")
    for folder in find_sweeps(paths):
        for held in held_sets(load(folder)):
            runs = [r for r in held.runs if math.isfinite(r.final)]
            winner = max(runs, key=lambda r: r.final)
            cells = []
            for step in DEFAULT_RULE.rung_steps(held.budget, held.logged_steps):
                at = [r for r in held.runs if step in r.signature]
                mine = held.reading(winner, step)
                others = [held.reading(r, step) for r in at if r is not winner]
                rank = 1 + sum(o.value > mine.value for o in others)
                ties = sum(o.value == mine.value for o in others)
                leaders = sum(DEFAULT_RULE.prune(mine, [o], n=held.n_dev, metric=held.metric,
                                                 labels=held.labels)[0] for o in others
                              if not mine.warming_up)
                state = "warming up" if mine.warming_up else f"{leaders} resolved"
                cells.append(f"{step} ({step / held.budget:.0%}): {rank} / {ties} / {state}")
            name = held.sweep + (f" ({held.seed})" if len({r.seed for r in held.runs}) == 1 else "")
            print(f"| {name} | {held.warmup[winner.run_id]:.2f} | " + "; ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["studies"]))
