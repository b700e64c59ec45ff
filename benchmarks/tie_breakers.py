"""Reproduces a figure only (the package does not need it): does geometry earn its place where the dev metric
is blind?

At each rung of the synchronous resolution rule, after the rule has pruned the trials that are resolvably
behind, the trials left are tied with the leader within the dev set's noise. A tie-breaker ranks them by one
feature (a probe, the learning rate, or the learning-rate progress) with a sign and prunes the bottom
fraction ``q`` of the tied trials past their warmup (never the dev leader). Each tie-breaker's (feature, sign,
q) is chosen on the other tasks' sweeps by the selection rule of ``earlyexit.replay._nested.choose`` (with "no
tie-breaker" among the candidates), then replayed on the held-out task; a probe is charged what it costs at
every rung for every trial measured there (``probe_costs.json``). Run from the repository root:
``python benchmarks/tie_breakers.py`` (a few seconds).
"""

import itertools
import math
import sys
import warnings

import numpy as np

from earlyexit.pruning import DEFAULT_RULE
from earlyexit.replay._engine import held_sets
from earlyexit.replay._synchronous import synchronous
from earlyexit.replay._nested import choose
from earlyexit.sweeps import find_sweeps, load

PROBES = ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "hessian_top_eigenvalue", "hessian_trace",
          "critical_sharpness")
FREE = ("learning_rate", "lr_progress")
QS = (0.25, 0.5)


def candidates():
    yield None
    for feature, sign, q in itertools.product(PROBES + FREE, (1, -1), QS):
        yield feature, sign, q


def _value(run, step, feature):
    v = run.signature[step].get(feature, math.nan)
    if feature == "learning_rate":
        v = float(run.params.get("learning_rate", math.nan))
    if feature in ("hessian_trace",):
        return v
    return math.log(v) if v > 0 else (v if feature == "lr_progress" else math.nan)


def replay(held, cand):
    """The synchronous default rule on ``held``, with the tie-breaker ``cand`` (None: without one)."""
    reads = ("dev_metric",) + ((cand[0],) if cand and cand[0] in PROBES else ())

    def tie_breaker(step, at, readings, pruned):
        feature, sign, q = cand
        tied = [r for r in at if r.run_id not in pruned and not readings[r.run_id].warming_up]
        if not tied:
            return set()
        leader = max(tied, key=lambda r: readings[r.run_id].value)
        scored = [(sign * _value(r, step, feature), r) for r in tied if r is not leader]
        scored = sorted(((s, r) for s, r in scored if math.isfinite(s)), key=lambda sr: sr[0])
        return {r.run_id for _, r in scored[:int(q * len(tied))]}

    res = synchronous(held, DEFAULT_RULE, tie_breaker=tie_breaker if cand is not None else None, reads=reads)
    return 1 - res.compute_used, res.regret, res.test_regret


def main(paths):
    sweeps = [load(f) for f in find_sweeps(paths)]
    cands = list(candidates())
    figures, tasks = {}, {}
    for sw in sweeps:
        sets = held_sets(sw)
        if not set(PROBES) <= set(sw.probes):
            continue
        tasks[sw.name] = str(sw.manifest.get("task"))
        with warnings.catch_warnings():  # no test metric on most sweeps: an all-NaN column
            warnings.simplefilter("ignore", RuntimeWarning)
            figures[sw.name] = [tuple(np.nanmean([replay(h, c) for h in sets], axis=0)) for c in cands]
    label = lambda c: "none" if c is None else f"{'-' if c[1] < 0 else '+'}{c[0]}, q {c[2]}"  # noqa: E731
    rows, none_rows = [], []
    for task in sorted(set(tasks.values())):
        train = [s for s in figures if tasks[s] != task]
        k = choose([figures[s] for s in train])
        for s in (s for s in figures if tasks[s] == task):
            rows.append((s, label(cands[k]), *figures[s][k][:2]))
            none_rows.append(figures[s][0][:2])
    print("| held out | tie-breaker chosen on the other tasks | saved | regret | without (saved / regret) |")
    print("|---|---|---|---|---|")
    for (s, lab, saved, regret), (s0, r0) in zip(rows, none_rows):
        print(f"| {s} | {lab} | {saved:.1%} | {regret:.2f} | {s0:.1%} / {r0:.2f} |")
    saved = [r[2] for r in rows]
    regret = [r[3] for r in rows]
    print(f"\nnested mean: {np.mean(saved):.1%} saved, regret {np.mean(regret):.2f} (worst {max(regret):.2f}); "
          f"without a tie-breaker: {np.mean([r[0] for r in none_rows]):.1%}, "
          f"{np.mean([r[1] for r in none_rows]):.2f} (worst {max(r[1] for r in none_rows):.2f})")
    k = choose([figures[s] for s in figures])
    print(f"chosen on every sweep: {label(cands[k])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["studies"]))
