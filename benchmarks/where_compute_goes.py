"""Where a pruned study's compute goes, against a judge that knew every final: why the look-ahead saves ~55%, not 70%.

Each sweep's seeds are replayed as live studies (W = 1, random arrival orders) under the shipped rule and under
the study-refit look-ahead (``lookahead_refit`` at the setting nearly every nested fold chose: 80% each side,
keep 1, z 1, shrink 0.25; its predictor fitted on the other tasks' sweeps). Not nested: a decomposition, not a
result. The compute each study spends (in shares of training every config to the end, dev evaluations at the
sweep's prices) is split into

- ``winner``: training the sweep's best config to the end (paid by every search that finds it);
- ``other kept``: training other configs to the end;
- ``pruned, warming up``: the prefixes of pruned trials up to the end of their own warmup (the first logged step
  past it), which a rule that exempts warming-up trials cannot save;
- ``pruned, later``: the rest of pruned trials' prefixes.

The oracle trains only the winner to the end and stops every other trial at the first of the rule's rungs
(5/10/25/50% of the budget) past its own warmup: the pruner's evidence notes' 71-79% (dev evaluations free). The
online oracle judges at the same step and knows the final of every trial that has started, but not which trials
are still to come: it must train to the end every trial that is the best so far when judged (about ln n of n in
a random order at W = 1). It is the
most a judge that decides at those steps can save, however good its predictor (the shipped rule's schedule: a
warming-up trial passes its rungs); the gap between it and the oracle is the arrival order's. ``online, 1st
rung`` is the same judge without the warmup exemption, deciding at the first rung (5% of the budget): the most
the look-ahead's schedule allows (it judges at every rung, warming up or not, and at each warmup's end). Run from
the repository root:

    python benchmarks/where_compute_goes.py [--orders 10] [--workers 1] [--json benchmarks/where-compute-goes.json]
"""

from __future__ import annotations

import math
import time

import numpy as np

from earlyexit.protocol import warmup_steps
from earlyexit.pruning import DEFAULT_RULE, fallback_margins
from earlyexit.pruning._lookahead import margins
from earlyexit.replay._engine import Judge, RuleJudge, live
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool, fit_predictor
from earlyexit.replay._simulate import Compute

from _sweeps import arguments, finish, held_out_by_task  # benchmarks/ is on the path

PARTS = ("winner", "other kept", "pruned, warming up", "pruned, later")


class _Recorded(Judge):
    """A judge that notes the step where it prunes each trial."""

    def __init__(self, inner: Judge):
        self.inner, self.pruned = inner, {}
        self.reads = inner.reads

    def steps(self, held):
        return self.inner.steps(held)

    def start(self, index, run):
        self.inner.start(index, run)

    def at(self, index, run, step):
        prune = self.inner.at(index, run, step)
        if prune:
            self.pruned[run.run_id] = step
        return prune

    def end(self, index, run, completed):
        self.inner.end(index, run, completed)


class _OnlineOracle(Judge):
    """Knows the final of every trial that has started but not which trials come next: at the first of the rule's
    rungs past a trial's own warmup it prunes the trial if another started trial's final is higher (that one is
    never pruned: the best of those started is the best so far). It keeps every trial that is the best so far
    when it is judged, as any judge that cannot see the future must."""

    def __init__(self, held, exempt: bool = True):
        self.held, self.started, self.exempt = held, {}, exempt
        self.rungs = DEFAULT_RULE.rung_steps(held.budget, held.logged_steps)

    def steps(self, held):
        return self.rungs

    def start(self, index, run):
        self.started[index] = run.final if np.isfinite(run.final) else -np.inf

    def at(self, index, run, step):
        after = _warmup_end(self.held, run) if self.exempt else 0
        first = min((s for s in self.rungs if s >= after), default=None)
        return step == first and run.final < max((f for i, f in self.started.items() if i != index), default=-np.inf)


class _Counted(LookaheadJudge):
    """``LookaheadJudge`` that notes, at each decision, whether the study had enough errors there for its bound."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = self.bounded = 0

    def _errors_at(self, step):
        errors = super()._errors_at(step)
        self.asked += 1
        self.bounded += math.isfinite(margins(errors, self.coverage, (-math.inf, math.inf))[1])
        return errors


def _warmup_end(held, run) -> int:
    """The first logged step at or past the end of ``run``'s own warmup (0 without one)."""
    end = warmup_steps(held.budget, held.warmup.get(run.run_id, 0.0))
    return min((s for s in held.logged_steps if s >= end), default=held.budget) if end > 0 else 0


def _split(held, compute: Compute, pruned: dict[str, int], kept) -> dict[str, float]:
    full = float(sum(r.steps for r in held.runs)) or 1.0
    best = max((r for r in held.runs if np.isfinite(r.final)), key=lambda r: r.final)
    out = dict.fromkeys(PARTS, 0.0)
    for r in held.runs:
        if r.run_id in kept:
            out["winner" if r.run_id == best.run_id else "other kept"] += compute.whole(r) / full
        else:
            stop = pruned.get(r.run_id, r.steps)
            warm = min(_warmup_end(held, r), stop)
            early = compute.until(r, warm) if warm > 0 else 0.0
            out["pruned, warming up"] += early / full
            out["pruned, later"] += (compute.until(r, stop) - early) / full
    return out


def _oracle(held, compute: Compute) -> dict[str, float]:
    best = max((r for r in held.runs if np.isfinite(r.final)), key=lambda r: r.final)
    rungs = DEFAULT_RULE.rung_steps(held.budget, held.logged_steps)
    pruned = {r.run_id: min((s for s in rungs if s >= _warmup_end(held, r)), default=r.steps)
              for r in held.runs if r.run_id != best.run_id}
    return _split(held, compute, pruned, {best.run_id})


def main() -> int:
    args = arguments(__doc__, extra=[("--workers", dict(type=int, default=1,
                                                       help="trials in flight at once (W)"))]).parse_args()
    started = time.time()
    per: dict[str, dict] = {}
    active: dict[str, tuple[float, float]] = {}  # sweep -> (share of look-ahead decisions with a bound, share kept)
    for task, train, named in held_out_by_task():
        model = fit_predictor(train)
        for name, held_out in named.items():
            rows = {"oracle": [], "online oracle": [], "online, 1st rung": [], "default": [], "lookahead_refit": []}
            bounds, completed = [], []
            for held in held_out:
                rows["oracle"].append(_oracle(held, Compute()))  # dev evaluations free, as in the evidence notes
                pool = StudyPool(model, held, 0.25)
                fallback = fallback_margins(model, "study", 0.8, held.budget)
                for o in range(args.orders):
                    for policy, inner in (("online oracle", _OnlineOracle(held)),
                                          ("online, 1st rung", _OnlineOracle(held, exempt=False)),
                                          ("default", RuleJudge(held, DEFAULT_RULE)),
                                          ("lookahead_refit", _Counted(held, DEFAULT_RULE, {}, fallback=fallback,
                                                                       coverage=0.8, keep=1, z=1.0, pool=pool))):
                        judge = _Recorded(inner)
                        res = live(held, judge, o, args.workers)
                        steps = Compute(judge.reads, held.costs, steps=judge.steps(held))
                        split = _split(held, steps, judge.pruned, set(res.kept))
                        assert abs(sum(split.values()) - res.compute_used) < 1e-9, (name, policy, o)
                        rows[policy].append(split)
                        if isinstance(inner, _Counted):
                            bounds.append(inner.bounded / max(inner.asked, 1))
                            completed.append(len(res.kept) / len(held.runs))
            per[name] = {p: {k: float(np.mean([r[k] for r in rs])) for k in PARTS} for p, rs in rows.items()}
            active[name] = (float(np.mean(bounds)), float(np.mean(completed)))
        print(f"{task}: {time.time() - started:.0f} s", flush=True)
    mean = {p: {k: float(np.mean([per[s][p][k] for s in per])) for k in PARTS}
            for p in ("oracle", "online oracle", "online, 1st rung", "default", "lookahead_refit")}
    print(f"\ncompute spent, in shares of training every config to the end; {len(per)} sweeps, W = {args.workers}, "
          f"{args.orders} orders (not nested)")
    print(f"{'sweep':16s} {'policy':16s} {'saved':>6s} " + " ".join(f"{k:>18s}" for k in PARTS))
    for name in list(per) + ["mean"]:
        figs = per[name] if name != "mean" else mean
        for p, parts in figs.items():
            print(f"{name:16s} {p:16s} {100 * (1 - sum(parts.values())):5.1f}% "
                  + " ".join(f"{100 * parts[k]:17.1f}%" for k in PARTS))
    print("\nlookahead_refit: share of its decisions at which the study had enough completed trials for its bound "
          "(80%: four), and share of the configs it trained to the end")
    for name, (b, c) in active.items():
        print(f"{name:16s} {100 * b:5.1f}% {100 * c:5.1f}%")
    print(f"{'mean':16s} {100 * np.mean([b for b, _ in active.values()]):5.1f}% "
          f"{100 * np.mean([c for _, c in active.values()]):5.1f}%")
    finish(started, args.json, {"orders": args.orders, "workers": args.workers,
                                "setting": "80% each side, keep 1, z 1, shrink 0.25"},
           mean=mean, sweeps=per, bound_active=active)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
