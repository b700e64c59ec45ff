"""Reproduces a figure only (the package does not need it): the dev-tie rule against the same rule without it, leave-one-task-out (one level), per sweep.

For each rule below, with and without ``dev_ties``: every task is pruned by a dev-only transfer scorer
fitted on the other tasks, replayed live over 20 arrival orders (what ``select_transfer`` measures for
each candidate). Prints the mean compute saved, mean and worst regret (points), then per sweep.

    python benchmarks/dev_ties.py studies/sst2-grid80 studies/sst2-wide ...   (about 7 s on a 2-core VM)
"""

import sys

from earlyexit.replay._transfer_rule import _Fits, _summary, leave_one_task_out_rule, studies_of
from earlyexit.scoring._transfer import Rule
from earlyexit.sweeps import load

RULES = (((0.05, 0.2), 2, 0.05), ((0.1, 0.2, 0.4), 2, 0.05))
"""(rungs as fractions of the budget, keep top, guard): the one-level choice on the ten complete sweeps
(added 2026-12-02, the default from 2026-12-03 to 2026-12-04) and the rule of the default before it (2026-12-02)."""


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit(__doc__)
    studies, fits = studies_of([load(p) for p in paths]), _Fits()
    for rungs, keep, guard in RULES:
        for ties in (False, True):
            rule = Rule(rungs, keep, guard, unit="budget", dev_ties=ties)
            by_sweep = leave_one_task_out_rule(studies, ("dev",), rule, fits)
            saved, regret, worst = _summary(by_sweep)
            print(f"{rule.label}: {saved:.1%} saved, regret {regret:.2f} (worst {worst:.2f}) pts")
            print("    " + ", ".join(f"{n} {s:.1%} / {r:.2f}" for n, (s, r) in sorted(by_sweep.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
