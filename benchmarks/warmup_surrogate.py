"""Would judging warming-up trials by their hyperparameters save what the look-ahead leaves?

The look-ahead lets most trials it prunes run their warmup first: 14.4% of the full compute goes to pruned
trials' prefixes before their own warmup ends, against 5.6% for a judge that knows every final
(`benchmarks/where_compute_goes.py`). During a warmup the dev metric says little, so the look-ahead's intervals
are wide there. A trial's hyperparameters are known from its first step. This replays ``lookahead_refit`` (80%
each side, keep 1, z 1, shrink 0.25, its predictor fitted on the other tasks, W = 1) with one more judge: a
surrogate refit on the study's own completed trials, the median final of the ``k`` completed configs nearest
in hyperparameters (log10 learning rate and weight decay, the other numbers as they are, each scaled by its
range in the sweep; a different schedule adds one), with split-conformal margins from each completed trial's
error predicted by the others. At the look-ahead's decision steps before a trial's own warmup ends (or at its
first logged step, ``first``), a trial whose optimistic final is below the best completed final by more than
z standard errors of the dev set is pruned. Not nested, so no figure here is a result: it says whether the idea
moves the frontier enough to be built and chosen in the folds. Run from the repository root:

    python benchmarks/warmup_surrogate.py [--orders 10] [--json benchmarks/warmup-surrogate.json]
"""

from __future__ import annotations

import math
import time

import numpy as np

from earlyexit.protocol import warmup_steps
from earlyexit.pruning import DEFAULT_RULE, fallback_margins
from earlyexit.pruning._lookahead import lookahead_prunes, margins
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool

from _sweeps import arguments, finish, replay_by_task, settings_table  # benchmarks/ is on the path

SHRINK = 0.25
LOG_SCALE = ("learning_rate", "weight_decay")


def hyperparameter_rows(held) -> dict[str, np.ndarray]:
    """``run_id -> its hyperparameters as numbers``, each column scaled by its range over the sweep's configs
    (the search space, known before any trains); a categorical column becomes one column per level."""
    names = sorted({k for r in held.runs for k in r.params})
    columns = []
    for name in names:
        values = [r.params.get(name) for r in held.runs]
        if all(isinstance(v, (int, float)) for v in values):
            x = np.array(values, dtype=float)
            if name in LOG_SCALE:
                x = np.log10(np.maximum(x, 1e-8))
            span = float(np.ptp(x))
            columns.append((x - x.min()) / span if span > 0 else np.zeros_like(x))
        else:
            for level in sorted({str(v) for v in values}):
                columns.append(np.array([str(v) == level for v in values], dtype=float))
    X = np.stack(columns, axis=1) if columns else np.zeros((len(held.runs), 0))
    return {r.run_id: X[i] for i, r in enumerate(held.runs)}


def knn_final(x: np.ndarray, X: np.ndarray, finals: np.ndarray, k: int) -> float:
    """The median final of the ``k`` rows of ``X`` nearest ``x`` (squared Euclidean)."""
    d = ((X - x) ** 2).sum(axis=1)
    return float(np.median(finals[np.argsort(d, kind="stable")[:k]]))


class WarmupSurrogateJudge(LookaheadJudge):
    """``lookahead_refit``, and before each trial's own warmup ends, the study's hyperparameter surrogate."""

    def __init__(self, *args, k: int, first: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.k, self.first = k, first
        self.hp = hyperparameter_rows(self.held)
        self.surrogate_pruned = 0

    def at(self, index, run, step):
        if self._warming_up(run, step) and self._surrogate_prunes(run, step):
            self.surrogate_pruned += 1
            return True
        return super().at(index, run, step)

    def _warming_up(self, run, step) -> bool:
        if self.first:
            return step == min(s for s in self.held.logged_steps if s > 0)
        end = warmup_steps(self.held.budget, self.held.warmup.get(run.run_id, 0.0))
        return step < end and self._decides_at(run, step)

    def _surrogate_prunes(self, run, step) -> bool:
        done = [rid for rid in self.finals]
        if len(done) < 2:
            return False
        X = np.stack([self.hp[rid] for rid in done])
        finals = np.array([self.finals[rid] for rid in done])
        k = min(self.k, len(done) - 1)
        errors = [finals[j] - knn_final(X[j], np.delete(X, j, 0), np.delete(finals, j), k)
                  for j in range(len(done))]
        upper = margins(sorted(errors), self.coverage, (-math.inf, math.inf))[1]
        guess = knn_final(self.hp[run.run_id], X, finals, min(self.k, len(done)))
        return lookahead_prunes(guess, 0.0, upper, list(finals), headroom=1.0, keep=self.keep, z=self.z,
                                n=self.held.n_dev, metric=self.held.metric)


def main() -> int:
    args = arguments(__doc__).parse_args()
    started = time.time()

    def judge(surrogate):
        def prepare(model, held):
            common = dict(fallback=fallback_margins(model, "study", 0.8, held.budget), coverage=0.8, keep=1, z=1.0,
                          pool=StudyPool(model, held, SHRINK))
            if surrogate is None:
                return lambda o: LookaheadJudge(held, DEFAULT_RULE, {}, **common)
            return lambda o: WarmupSurrogateJudge(held, DEFAULT_RULE, {}, k=surrogate[0], first=surrogate[1], **common)
        return prepare

    settings = {"lookahead_refit (as now)": judge(None),
                "+ surrogate in warmup, k 3": judge((3, False)), "+ surrogate in warmup, k 1": judge((1, False)),
                "+ surrogate at the first step, k 3": judge((3, True))}
    pruned = dict.fromkeys(settings, 0)

    def count(label, j):
        pruned[label] += getattr(j, "surrogate_pruned", 0)

    per = replay_by_task(settings, args.orders, seen=count)
    mean = settings_table(per, f"study-refit look-ahead (80% each side, keep 1, z 1, shrink {SHRINK}) with a "
                          f"warmup surrogate, {len(per)} sweeps, W = 1, {args.orders} orders; not nested")
    print("trials the surrogate pruned, all sweeps and orders: "
          + "; ".join(f"{label}: {n}" for label, n in pruned.items() if n))
    finish(started, args.json, {"orders": args.orders, "shrink": SHRINK, "keep": 1, "z": 1.0, "coverage": 0.8},
           mean=mean, surrogate_pruned=pruned, sweeps=per)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
