"""Does choosing the look-ahead predictor's neighbours inside the training folds sharpen it? A nested measurement.

The look-ahead predicts a reading's gain to its final (headroom units) as the median of its k = 40 nearest
readings, every standardized feature counting alike in the distance; a study refit adds the study's own completed
trials (shrink 0.25). Here, for each held-out task, ``k`` (40, 20 or 10) and the dev metric's weight in the
distance (1 or 2) are chosen on the *other* tasks alone (:func:`~earlyexit.scoring.choose_neighbours`: each of
them predicted by the rest and refit on its own completed trials in random arrival orders; the least 80% quantile
of the absolute error wins), and only then is the held-out task's refit error measured, with the shipped
predictor's beside it. Nothing is pruned: this measures the predictor that the replay's ``lookahead_tuned``
policy reads.

Sweeps: every complete sweep of ``studies/`` but the look-ahead's clean test (AG News). Run from the repository
root:

    python benchmarks/neighbours.py [--orders 5] [--json benchmarks/neighbours.json]
"""

import time

import numpy as np

from earlyexit.replay._engine import held_sets
from earlyexit.replay._lookahead import gain_rows
from earlyexit.scoring import NEIGHBOUR_CANDIDATES, choose_neighbours, refit_errors
from earlyexit.scoring._probe_features import COVERAGE

from _sweeps import arguments, finish, training_sweeps  # benchmarks/ is on the path



class Readings:
    """One held set's readings with a final: features, gains, trials."""

    def __init__(self, held):
        keys, self.X, self.gain = gain_rows(held, fitting=True)
        self.name, self.task, self.study = held.sweep, held.task, f"{held.sweep}/{held.seed}"
        self.run = np.array([rid for rid, _ in keys])


def main() -> int:
    args = arguments(__doc__, orders=5).parse_args()
    started = time.time()
    sweeps = training_sweeps()
    readings = [Readings(h) for sw in sweeps for h in held_sets(sw)]
    table = {}
    for t in sorted({r.task for r in readings}):
        train = [r for r in readings if r.task != t]
        cat = lambda f: np.concatenate([f(r) for r in train])  # noqa: E731
        X, y = np.vstack([r.X for r in train]), cat(lambda r: r.gain)
        (k, w), inner = choose_neighbours(X, y, cat(lambda r: np.repeat(r.task, len(r.gain))),
                                          cat(lambda r: np.repeat(r.study, len(r.gain))), cat(lambda r: r.run))
        print(f"held out {t}: chose k {k}, metric weight {w:g} ({time.time() - started:.0f} s)", flush=True)
        for name in sorted({r.name for r in readings if r.task == t}):
            seeds = [r for r in readings if r.name == name]
            figs = {}
            for label, (kk, ww) in (("shipped", NEIGHBOUR_CANDIDATES[0]), ("chosen", (k, w))):
                e = [refit_errors(X, y, h.X, h.gain, h.run, k=kk, metric_weight=ww, orders=args.orders)
                     for h in seeds]
                figs[label] = (float(np.mean([x.mean() for x in e])),
                               float(np.mean([np.quantile(x, COVERAGE) for x in e])))
            table[name] = {"task": t, "choice": [k, w], **figs, "inner": inner}
    print(f"\nrefit gain error (headroom units): mean / {COVERAGE:.0%} quantile, {args.orders} arrival orders")
    print(f"{'held-out sweep':16s} {'k 40, weight 1':>18s} {'chosen':>18s}  chosen on the other tasks")
    for name, r in table.items():
        print(f"{name:16s} {r['shipped'][0]:8.3f} / {r['shipped'][1]:6.3f} {r['chosen'][0]:8.3f} / "
              f"{r['chosen'][1]:6.3f}  k {r['choice'][0]}, metric weight {r['choice'][1]:g}")
    mean = {c: tuple(float(np.mean([r[c][j] for r in table.values()])) for j in (0, 1)) for c in ("shipped",
                                                                                                  "chosen")}
    print(f"{'mean':16s} {mean['shipped'][0]:8.3f} / {mean['shipped'][1]:6.3f} {mean['chosen'][0]:8.3f} / "
          f"{mean['chosen'][1]:6.3f}")
    finish(started, args.json, {"orders": args.orders, "candidates": NEIGHBOUR_CANDIDATES, "shrink": 0.25,
                                "sweeps": [sw.name for sw in sweeps]}, sweeps=table, mean=mean)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
