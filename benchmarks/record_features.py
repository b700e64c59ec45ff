"""Do the per-example records help the look-ahead's predictor? A nested try of the dev predictions as features.

The look-ahead predicts a reading's gain to its final (headroom units) from six features that every task shares
(:mod:`earlyexit.scoring._lookahead`); none reads the per-example records that a format-3 sweep logs. This adds
the record features of :mod:`earlyexit.scoring._record_features` (the entropy of the predicted classes, their
distance from the true classes' shares, and the share of dev examples whose prediction changed since the trial's
previous evaluation), the set chosen *inside the training folds* exactly as for the probe features
(:func:`~earlyexit.scoring.choose_probe_features` with ``names=RECORD_FEATURE_NAMES``: none, each feature alone,
or all three; each other task in turn predicted by a prior fitted on the tasks that are neither it nor the held-out
one, then refit on its own completed trials in random arrival orders; the least 80% quantile of the absolute refit
error wins), and only then is the held-out task predicted with it. Nothing is pruned: this measures the predictor.

Sweeps: every sweep of ``studies/`` that logs per-example records (format 3), its re-log in ``relogs/`` standing
in where that is complete; AG News, the look-ahead's clean test, is left out. Only four tasks have records, so each
inner choice sees three tasks and each inner prior two: a thin base, said beside the table. Run from the
repository root:

    python benchmarks/record_features.py [--orders 5] [--json benchmarks/record-features.json]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from earlyexit.replay._engine import held_sets
from earlyexit.replay._lookahead import gain_rows
from earlyexit.scoring import RECORD_FEATURE_NAMES, candidate_sets, choose_probe_features, record_feature_row, \
    refit_errors
from earlyexit.scoring._probe_features import COVERAGE
from earlyexit.sweeps import find_sweeps, load

CLEAN_TEST = ("agnews",)
NAMES = list(RECORD_FEATURE_NAMES)
CANDIDATES = candidate_sets(NAMES)


def label(cand) -> str:
    return ",".join(cand) or "none"


def record_rows(held, keys) -> np.ndarray:
    """The record features of every reading ``keys`` of ``held`` (NaN where its evaluation logged no record)."""
    steps = {}
    for rid, step in held.predictions:
        steps.setdefault(rid, []).append(step)
    out = []
    for rid, step in keys:
        now = held.predictions.get((rid, step))
        if now is None:
            out.append([np.nan] * len(NAMES))
            continue
        before = [s for s in steps[rid] if s < step]
        previous = held.predictions[(rid, max(before))] if before else None
        out.append(record_feature_row(now, held.labels, held.classes, previous))
    return np.array(out, dtype=float).reshape(-1, len(NAMES))


class Readings:
    """One held set's readings with a final and every record feature: base and record columns, gains, trials."""

    def __init__(self, held):
        keys, X, gain = gain_rows(held, fitting=True)
        R = record_rows(held, keys)
        ok = np.isfinite(R).all(axis=1)
        self.name, self.task, self.study = held.sweep, held.task, f"{held.sweep}/{held.seed}"
        self.X, self.R, self.gain = X[ok], R[ok], gain[ok]
        self.run = np.array([rid for (rid, _), o in zip(keys, ok) if o])

    def columns(self, cand):
        return np.hstack([self.X, self.R[:, [NAMES.index(n) for n in cand]]])


def errors(train: list[Readings], held: Readings, cand, orders: int) -> np.ndarray:
    X = np.vstack([r.columns(cand) for r in train])
    y = np.concatenate([r.gain for r in train])
    return refit_errors(X, y, held.columns(cand), held.gain, held.run, orders=orders)


def sweeps_with_records():
    """The sweeps that log per-example records, a complete re-log standing in for its original; those left out."""
    chosen, left = {}, []
    relogs = {p.name: p for p in find_sweeps(["relogs"]) if (p / "runs.csv").exists()} if Path("relogs").is_dir() \
        else {}
    for path in find_sweeps(["studies"]):
        if not (path / "runs.csv").exists():
            continue
        sw = load(path)
        if str(sw.manifest.get("task")) in CLEAN_TEST:
            left.append(f"{sw.name} (the clean test)")
            continue
        if sw.name in relogs and load(relogs[sw.name]).missing_runs <= 0:
            sw = load(relogs[sw.name])
        if not (sw.path / "dev_predictions.csv").exists():
            continue
        chosen[sw.name] = sw
    return chosen, left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    started = time.time()
    sweeps, left = sweeps_with_records()
    readings = [Readings(h) for sw in sweeps.values() for h in held_sets(sw)]
    table = {}
    for t in sorted({r.task for r in readings}):
        train = [r for r in readings if r.task != t]
        cat = lambda f: np.concatenate([f(r) for r in train])  # noqa: E731
        chosen, inner = choose_probe_features(np.vstack([r.X for r in train]), np.vstack([r.R for r in train]),
                                              cat(lambda r: r.gain), cat(lambda r: np.repeat(r.task, len(r.gain))),
                                              cat(lambda r: np.repeat(r.study, len(r.gain))), cat(lambda r: r.run),
                                              names=NAMES)
        print(f"held out {t}: chose {label(chosen)} ({time.time() - started:.0f} s)", flush=True)
        for name in sorted({r.name for r in readings if r.task == t}):
            seeds = [r for r in readings if r.name == name]
            every = {}
            for cand in CANDIDATES:
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
                                       for c in CANDIDATES))
    for name, r in table.items():
        print(f"{name:16s} " + " ".join(f"{r['every'][label(c)][1]:18.3f}" for c in CANDIDATES))
    print(f"\nsweeps: {', '.join(str(sw.path) for sw in sweeps.values())}; four tasks, so each inner choice sees "
          "three tasks and each inner prior two")
    if left:
        print("left out: " + "; ".join(left))
    seconds = round(time.time() - started, 1)
    machine = f"{os.cpu_count()}-core {platform.machine()}"
    print(f"{seconds} s, {time.strftime('%Y-%m-%d')}, {machine}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "protocol": {"orders": args.orders, "features": NAMES, "sweeps": {n: str(sw.path) for n, sw in
                                                                              sweeps.items()},
                         "left_out": left, "seconds": seconds, "date": time.strftime("%Y-%m-%d"),
                         "machine": machine},
            "sweeps": table, "mean": mean}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
