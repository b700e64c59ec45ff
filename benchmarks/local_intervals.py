"""Would intervals that widen and narrow with the predictor's own uncertainty prune more at the same loss?

The look-ahead's interval at a step is the same for every trial: quantiles of the study's errors there. Where a
trial's nearest readings agree on its gain (a learning rate the study has already tried, say), that width is more
than it needs; where they disagree, less. Normalized split-conformal intervals scale each trial's margins by the
spread of its own neighbours' gains (their median absolute deviation around the median, the prediction): the
study's errors are divided by the spread of each erring prediction, and a trial's margins are those quantiles
times its own spread. Coverage holds as before (the normalized errors are exchangeable in the same way); only the
width moves. This replays the study-refit look-ahead (``lookahead_refit``: keep 1, z 1, shrink 0.25, study-only
margins, its predictor fitted on the other tasks) with the plain and the normalized intervals at coverages of 80%
and 70% each side, every sweep, W = 1. Not nested, so no figure here is a result: it says whether the idea moves
the frontier (`benchmarks/lookahead_frontier.py`) enough to be built into the predictor. Run from the repository root:

    python benchmarks/local_intervals.py [--orders 10] [--json benchmarks/local-intervals.json]
"""

from __future__ import annotations

import math
import time

import numpy as np

from earlyexit.pruning import DEFAULT_RULE, fallback_margins
from earlyexit.pruning._lookahead import lookahead_prunes, margins
from earlyexit.replay._lookahead import LookaheadJudge, StudyPool

from _sweeps import arguments, finish, replay_by_task, settings_table  # benchmarks/ is on the path

SHRINK = 0.25
FLOOR = 0.01
"""The least spread, in headroom units: neighbours that agree exactly (a plateau) still leave the dev set's noise."""


def median_spread(prior_d, prior_g, study_d, study_gain, k):
    """Each query's median gain over its ``k`` nearest (as ``earlyexit.scoring.study_medians`` picks them) and the
    median absolute deviation of those gains around it (at least :data:`FLOOR`)."""
    n, kp = prior_d.shape
    d = np.concatenate([prior_d, study_d], axis=1) if study_d.shape[1] else prior_d
    med, spread = np.full(n, np.nan), np.full(n, np.nan)
    ok = np.isfinite(prior_d).all(axis=1)
    if ok.any():
        kk = min(k, d.shape[1])
        near = np.argpartition(d[ok], kk - 1, axis=1)[:, :kk]
        study_gain = np.asarray(study_gain, dtype=float)
        prior = prior_g[np.flatnonzero(ok)[:, None], np.minimum(near, kp - 1)]
        gains = np.where(near < kp, prior, study_gain[np.maximum(near - kp, 0)]) if len(study_gain) else prior
        m = np.median(gains, axis=1)
        med[ok] = m
        spread[ok] = np.maximum(np.median(np.abs(gains - m[:, None]), axis=1), FLOOR)
    return med, spread


class LocalPool(StudyPool):
    """A study pool whose predictions come with their neighbours' spread, and whose errors are normalized by it."""

    def gains_spreads(self, rows, pool):
        index = np.asarray(pool, dtype=np.intp)
        return median_spread(self.d[rows], self.g[rows], self.D[rows][:, index], self.true[index], self.model.k)

    def _leave_trial_out(self, rows, pool, row_trials, pool_trials):
        own = np.asarray(row_trials)[:, None] == np.asarray(pool_trials)[None, :]
        study_d = np.where(own, np.inf, self.D[np.ix_(rows, pool)])
        med, spread = median_spread(self.d[rows], self.g[rows], study_d, self.true[pool], self.model.k)
        return (self.true[rows] - med) / spread  # normalized by each prediction's own spread


class LocalJudge(LookaheadJudge):
    """``LookaheadJudge`` with each trial's margins scaled by its own neighbours' spread (study-only margins)."""

    def _decide(self, v, r, step, running):
        med, spread = self.pool.gains_spreads([r] + [rr for _, _, rr in running], self.pool_rows)
        if not math.isfinite(med[0]):
            return False
        none = (-math.inf, math.inf)
        upper = margins(self._errors_at(step), self.coverage, none)[1] * spread[0]
        references = list(self.finals.values())
        for (s, rv, _), g, sp in zip(running, med[1:], spread[1:]):
            if math.isfinite(g):
                references.append(rv + (g + margins(self._errors_at(s), self.coverage, none)[0] * sp) * self.H)
        return lookahead_prunes(v, float(med[0]), upper, references, headroom=self.H, keep=self.keep, z=self.z,
                                n=self.held.n_dev, metric=self.held.metric)


def main() -> int:
    args = arguments(__doc__).parse_args()
    started = time.time()

    def intervals(coverage, local):
        def prepare(model, held):
            pool = (LocalPool if local else StudyPool)(model, held, SHRINK)
            fallback = fallback_margins(model, "study", coverage, held.budget)
            make = LocalJudge if local else LookaheadJudge
            return lambda o: make(held, DEFAULT_RULE, {}, fallback=fallback, coverage=coverage, keep=1, z=1.0,
                                  pool=pool)
        return prepare

    settings = {f"{c:.0%} each side, {'normalized' if local else 'plain'}": intervals(c, local)
                for c in (0.8, 0.7) for local in (False, True)}
    per = replay_by_task(settings, args.orders)
    mean = settings_table(per, f"study-refit look-ahead (keep 1, z 1, shrink {SHRINK}), {len(per)} sweeps, W = 1, {args.orders} orders; "
                          "not nested")
    finish(started, args.json, {"orders": args.orders, "shrink": SHRINK, "floor": FLOOR, "keep": 1, "z": 1.0},
           mean=mean, sweeps=per)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
