"""Synchronous successive halving by the resolution rule over a logged sweep: every trial to each rung, judged
together (the number of trials is known up front). Order-free; the live shape, trials arriving W at a time, is
:func:`earlyexit.replay._engine.live`."""

from __future__ import annotations

from collections.abc import Callable

from ..pruning import Reading, ResolutionRule
from ._engine import HeldSet, Result, stopped_result
from ._simulate import Compute, Run


def synchronous(held: HeldSet, rule: ResolutionRule, *, paired: bool = True,
                tie_breaker: Callable[[int, list[Run], dict, set], set] | None = None,
                reads: tuple[str, ...] = ("dev_metric",)) -> Result:
    """Synchronous successive halving by ``rule``: all trials to each rung, judged together. ``tie_breaker(step,
    trials, readings, pruned)`` names more to prune after the rule (``benchmarks/tie_breakers.py``); ``reads``:
    what a trial is charged for at each rung."""
    steps = rule.rung_steps(held.budget, held.logged_steps)
    compute = Compute(reads, held.costs, steps=steps)
    alive = [r for r in held.runs]
    stopped: dict[str, int] = {}
    labels = held.labels if paired else None
    history: dict[str, list[Reading]] = {r.run_id: [] for r in held.runs}
    for step in steps:
        at = [r for r in alive if step in r.signature and not (r.diverged and r.steps <= step)]
        readings = {r.run_id: held.reading(r, step, paired=paired) for r in at}
        for r in at:
            history[r.run_id].append(readings[r.run_id])
        pruned = set()
        for r in at:
            others = [readings[o.run_id] for o in at if o is not r]
            histories = [h for rid, h in history.items() if rid != r.run_id and h]
            if rule.prune(readings[r.run_id], others, n=held.n_dev, metric=held.metric, labels=labels,
                          histories=histories)[0]:
                pruned.add(r.run_id)
        if tie_breaker is not None:
            pruned |= tie_breaker(step, at, readings, pruned)
        for rid in pruned:
            stopped[rid] = step
        alive = [r for r in alive if r.run_id not in stopped]
    return stopped_result(held, compute, stopped)
