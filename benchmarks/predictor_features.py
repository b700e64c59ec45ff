"""Do more features help the look-ahead's predictor? A nested try of the probes, or of the per-example records.

The look-ahead predicts a reading's gain to its final (headroom units) as the median of its k = 40 nearest
readings: the other tasks' sweeps (the prior) and, with a study refit, the study's own completed trials (their
distances shrunk by 0.25), from six features that every task shares (:mod:`earlyexit.scoring._lookahead`). This
adds one family of features without units to those six:

- ``--features probes``: the probe features of :mod:`earlyexit.scoring._probe_features` (geometry);
- ``--features records``: the record features of :mod:`earlyexit.scoring._record_features` (the entropy of the
  predicted classes, their distance from the true classes' shares, and the share of dev examples whose prediction
  changed since the trial's previous evaluation).

The set is chosen *inside the training folds* (:func:`~earlyexit.scoring.choose_probe_features`: none, each
feature alone, or all of them; each other task in turn predicted by a prior fitted on the tasks that are neither
it nor the held-out one, then refit on its own completed trials in random arrival orders; the least 80% quantile of
the absolute refit error wins), and only then is the held-out task predicted with it. The table gives, per
held-out sweep, the refit error of the shipped features and of the chosen set (mean / 80% quantile), and the set
chosen. Nothing is pruned: this measures the predictor, which is what a feature would change.

Sweeps: AG News, the look-ahead's clean test, is left out. With ``probes``, every sweep of ``studies/`` whose
spec promises the probes and that holds them on at least 95% of its checkpoint rows; with ``records``, every
sweep that logs per-example records (format 3): only four tasks, so each inner choice sees three tasks and each
inner prior two, a thin base said beside the table.
Run from the repository root:

    python benchmarks/predictor_features.py --features probes [--orders 5] [--json benchmarks/probe-features.json]
    python benchmarks/predictor_features.py --features records [--orders 5] [--json benchmarks/record-features.json]
"""

import time

import numpy as np

from earlyexit.replay._engine import held_sets
from earlyexit.replay._lookahead import gain_rows
from earlyexit.scoring import PROBE_FEATURES, RECORD_FEATURE_NAMES, candidate_sets, choose_probe_features, \
    record_feature_row, refit_errors
from earlyexit.scoring._probe_features import COVERAGE
from earlyexit.sweeps import find_sweeps, load

from _sweeps import arguments, finish, is_clean_test  # benchmarks/ is on the path

PROBES = ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "hessian_top_eigenvalue", "hessian_trace",
          "critical_sharpness")
"""The probes the probe features are made of: a sweep must log every one."""


def label(cand) -> str:
    return ",".join(cand) or "none"


def record_rows(held, keys, names) -> np.ndarray:
    """The record features of every reading ``keys`` of ``held`` (NaN where its evaluation logged no record)."""
    steps = {}
    for rid, step in held.predictions:
        steps.setdefault(rid, []).append(step)
    out = []
    for rid, step in keys:
        now = held.predictions.get((rid, step))
        if now is None:
            out.append([np.nan] * len(names))
            continue
        before = [s for s in steps[rid] if s < step]
        previous = held.predictions[(rid, max(before))] if before else None
        out.append(record_feature_row(now, held.labels, held.classes, previous))
    return np.array(out, dtype=float).reshape(-1, len(names))


class Readings:
    """One held set's readings with a final and every feature of the family: base columns ``X``, the family's
    columns ``E``, gains, trials."""

    def __init__(self, held, family: str, names: list[str]):
        self.names = names
        if family == "probes":
            keys, X, self.gain = gain_rows(held, fitting=True, probes=tuple(names))
            self.X, self.E = X[:, :6], X[:, 6:]
        else:
            keys, X, gain = gain_rows(held, fitting=True)
            E = record_rows(held, keys, names)
            ok = np.isfinite(E).all(axis=1)
            keys = [k for k, o in zip(keys, ok) if o]
            self.X, self.E, self.gain = X[ok], E[ok], gain[ok]
        self.name, self.task, self.study = held.sweep, held.task, f"{held.sweep}/{held.seed}"
        self.run = np.array([rid for rid, _ in keys])

    def columns(self, cand):
        return np.hstack([self.X, self.E[:, [self.names.index(n) for n in cand]]])


def errors(train: list[Readings], held: Readings, cand, orders: int) -> np.ndarray:
    X = np.vstack([r.columns(cand) for r in train])
    y = np.concatenate([r.gain for r in train])
    return refit_errors(X, y, held.columns(cand), held.gain, held.run, orders=orders)


def select_sweeps(family: str):
    """The sweeps that hold the family's inputs; those left out, and why."""
    chosen, left = {}, []
    for path in find_sweeps(["studies"]):
        if not (path / "runs.csv").exists():
            continue
        sw = load(path)
        if is_clean_test(sw):
            left.append(f"{sw.name} (the clean test)")
            continue
        if family == "probes" and (sw.missing_runs > 0 or sw.probe_shortfalls() is not None
                                   or not set(PROBES) <= set(sw.probes)):
            left.append(f"{sw.name} (its probes are not logged)")
            continue
        if family == "records" and not (sw.path / "dev_predictions.csv").exists():
            continue
        chosen[sw.name] = sw
    return chosen, left


def main() -> int:
    args = arguments(__doc__, orders=5, extra=[("--features", dict(choices=("probes", "records"),
                                                                   required=True))]).parse_args()
    started = time.time()
    names = list(PROBE_FEATURES) if args.features == "probes" else list(RECORD_FEATURE_NAMES)
    candidates = candidate_sets(names)
    sweeps, left = select_sweeps(args.features)
    readings = [Readings(h, args.features, names) for sw in sweeps.values() for h in held_sets(sw)]
    table = {}
    for t in sorted({r.task for r in readings}):
        train = [r for r in readings if r.task != t]
        cat = lambda f: np.concatenate([f(r) for r in train])  # noqa: E731
        chosen, inner = choose_probe_features(np.vstack([r.X for r in train]), np.vstack([r.E for r in train]),
                                              cat(lambda r: r.gain), cat(lambda r: np.repeat(r.task, len(r.gain))),
                                              cat(lambda r: np.repeat(r.study, len(r.gain))), cat(lambda r: r.run),
                                              names=names)
        print(f"held out {t}: chose {label(chosen)} ({time.time() - started:.0f} s)", flush=True)
        for name in sorted({r.name for r in readings if r.task == t}):
            seeds = [r for r in readings if r.name == name]
            every = {}
            for cand in candidates:
                e = [errors(train, h, cand, args.orders) for h in seeds]
                every[label(cand)] = (float(np.mean([x.mean() for x in e])),
                                      float(np.mean([np.quantile(x, COVERAGE) for x in e])))
            table[name] = {"task": t, "chosen": label(chosen), "none": every["none"],
                           "with_chosen": every[label(chosen)], "every": every, "inner": inner}
    print(f"\nrefit gain error (headroom units): mean / {COVERAGE:.0%} quantile, {args.orders} arrival orders")
    print(f"{'held-out sweep':16s} {'shipped features':>18s} {'with chosen set':>18s}  chosen on the other tasks")
    for name, r in table.items():
        print(f"{name:16s} {r['none'][0]:8.3f} / {r['none'][1]:6.3f} {r['with_chosen'][0]:8.3f} / "
              f"{r['with_chosen'][1]:6.3f}  {r['chosen']}")
    mean = {c: tuple(float(np.mean([r[c][j] for r in table.values()])) for j in (0, 1))
            for c in ("none", "with_chosen")}
    print(f"{'mean':16s} {mean['none'][0]:8.3f} / {mean['none'][1]:6.3f} {mean['with_chosen'][0]:8.3f} / "
          f"{mean['with_chosen'][1]:6.3f}")
    print(f"\nevery candidate on every held-out sweep ({COVERAGE:.0%} quantile; read here, not chosen on):")
    print(f"{'sweep':16s} " + " ".join(f"{label(c)[:18]:>18s}" if len(c) <= 1 else f"{'all':>18s}"
                                       for c in candidates))
    for name, r in table.items():
        print(f"{name:16s} " + " ".join(f"{r['every'][label(c)][1]:18.3f}" for c in candidates))
    tasks = len({r.task for r in readings})
    print(f"\nsweeps: {', '.join(str(sw.path) for sw in sweeps.values())}; {tasks} tasks, so each inner choice sees "
          f"{tasks - 1} tasks and each inner prior {tasks - 2}")
    if left:
        print("left out: " + "; ".join(left))
    finish(started, args.json, {"orders": args.orders, "features": names,
                                "sweeps": {n: str(sw.path) for n, sw in sweeps.items()}, "left_out": left},
           sweeps=table, mean=mean)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
