"""Would the look-ahead save more if its bound started before four trials have completed?

The study-only look-ahead bounds a trial at a step only once the study has enough completed trials for split
conformal's rank at its coverage: four at 80% each side. Under pruning few trials complete, so it is silent at
more than half of its decisions (`benchmarks/where_compute_goes.py`). This replays it with the bound starting
earlier: with two or three completed trials, the widest of their errors on each side (split conformal's bound
at coverage n / (n + 1): 67% or 75% each side, looser than 80%) until there are four. Everything else is
``lookahead_refit`` (keep 1, z 1, shrink 0.25, its predictor fitted on the other tasks), W = 1. Not nested, so
no figure here is a result: it says whether an earlier start moves the frontier enough to be built and chosen in
the folds. Run from the repository root:

    python benchmarks/early_bound.py [--orders 10] [--json benchmarks/early-bound.json]
"""

from __future__ import annotations

import math
import time

from earlyexit.pruning import DEFAULT_RULE
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool

from _sweeps import arguments, finish, replay_by_task, settings_table  # benchmarks/ is on the path

SHRINK = 0.25


class EarlyJudge(LookaheadJudge):
    """``LookaheadJudge`` (study-only margins) whose bound starts once ``least`` trials have completed: where a
    step has fewer errors than its coverage's rank but at least ``least``, the widest error on each side stands
    in for the margins (the judge's fallback); everything else is the look-ahead's own decision."""

    def __init__(self, *args, least: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.least = least
        self.fallback = self._widest

    def _widest(self, step: int) -> tuple[float, float]:
        errors = sorted(self._errors_at(step))
        return (errors[0], errors[-1]) if errors and len(errors) >= self.least else (-math.inf, math.inf)


def main() -> int:
    args = arguments(__doc__).parse_args()
    started = time.time()

    def early(least):
        def prepare(model, held):
            pool = StudyPool(model, held, SHRINK)
            return lambda o: EarlyJudge(held, DEFAULT_RULE, {}, fallback=None, coverage=0.8, keep=1, z=1.0,
                                        pool=pool, least=least)
        return prepare

    settings = {"from 4 completed (as now)": early(4), "from 3 (75% until 4)": early(3),
                "from 2 (67% until 4)": early(2)}
    per = replay_by_task(settings, args.orders)
    mean = settings_table(per, f"study-refit look-ahead (80% each side, keep 1, z 1, shrink {SHRINK}), {len(per)} sweeps, W = 1, "
                          f"{args.orders} orders; not nested")
    finish(started, args.json, {"orders": args.orders, "shrink": SHRINK, "keep": 1, "z": 1.0, "coverage": 0.8},
           mean=mean, sweeps=per)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
