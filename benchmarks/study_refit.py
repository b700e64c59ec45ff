"""Would refitting the look-ahead's predictor on the study's own completed trials predict finals better?

The look-ahead predicts a reading's gain to its final (headroom units) as the median of its k = 40 nearest
readings among the sweeps of *other* tasks (the prior). A study refit adds the readings of the study's own
completed trials to that pool, their distances shrunk by a factor ``w`` (``w`` < 1 prefers the study's own
trials). This replays each sweep seed one trial at a time in random arrival orders: each reading of a trial is
predicted from the prior alone and from the prior plus the trials completed before it, and the absolute error
of each is recorded, with the 80% quantile of the errors (what an 80% interval must cover). Nothing is pruned:
this measures the predictor, not a policy. Run from the repository root:

    python benchmarks/study_refit.py [--orders 5] [--json benchmarks/study-refit.json]
"""

import time

import numpy as np

from earlyexit.replay._interval import grouped_rows
from earlyexit.replay._lookahead import fit_predictor, gain_rows, lookahead_rows
from earlyexit.scoring import refit_errors

from _sweeps import arguments, finish, held_out_by_task  # benchmarks/ is on the path

SHRINK = (1.0, 0.5, 0.25, 0.1)
K = 40


def training_rows(sets):
    """The prior's readings, as :func:`~earlyexit.replay._lookahead.fit_predictor` reads them: ``(X, gain)``."""
    X, finals, _ = grouped_rows(sets, lookahead_rows)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(finals)
    return X[ok], finals[ok] - X[ok, 0]


def replay(held, model, train, orders):
    """Mean and 80% quantile of the absolute gain error of the prior alone and of each study refit."""
    keys, X, gain = gain_rows(held)
    runs = np.array([rid for rid, _ in keys])
    errors = {"prior": np.tile(np.abs(gain - model.predict(X)), orders)}
    for w in SHRINK:  # the library's own replay of a study, one trial at a time (scoring.refit_errors)
        errors[f"study w={w}"] = refit_errors(*train, X, gain, runs, k=K, shrink=w, orders=orders)
    return {k: (float(np.mean(v)), float(np.quantile(v, 0.8))) for k, v in errors.items()}


def main() -> int:
    args = arguments(__doc__, orders=5).parse_args()
    started = time.time()
    out = {}
    for task, train, named in held_out_by_task():
        model = fit_predictor(train), training_rows(train)
        for name, held_out in named.items():
            per_seed = [replay(h, *model, args.orders) for h in held_out]
            out[name] = {k: tuple(float(np.mean([s[k][j] for s in per_seed])) for j in (0, 1)) for k in per_seed[0]}
    cols = list(next(iter(out.values())))
    print(f"gain error (headroom units): mean / 80% quantile, {args.orders} arrival orders, one trial at a time")
    print(f"{'sweep':16s} " + " ".join(f"{c:>20s}" for c in cols))
    for name, row in out.items():
        print(f"{name:16s} " + " ".join(f"{m:9.3f} / {q:7.3f}" for m, q in row.values()))
    mean = {c: tuple(float(np.mean([row[c][j] for row in out.values()])) for j in (0, 1)) for c in cols}
    print(f"{'mean':16s} " + " ".join(f"{m:9.3f} / {q:7.3f}" for m, q in mean.values()))
    finish(started, args.json, {"orders": args.orders, "k": K, "shrink": SHRINK}, sweeps=out, mean=mean)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
