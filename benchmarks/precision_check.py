"""Training in bf16 autocast with the probes in fp32: the check a GPU run must pass.

Trains the quick start's first config (the bundled tiny BERT on the bundled SST-2 sample) twice on ``--device``
from the same seed: once in fp32, once with the training step under bf16 autocast and the probes in fp32 (the
default ``probe_precision``). At step 0 both models hold the same weights, so fp32 probes must agree within
``--rtol`` (1e-4); every probe of the bf16 run must be finite at every checkpoint. The dev accuracy of both runs is reported beside them (not a pass condition: bf16 rounds each step).
Prints a table and writes JSON with the device, date and torch version.

    python benchmarks/precision_check.py --device cuda --out $OUT/precision_check.json
    python benchmarks/precision_check.py --device cpu --steps 30   # the script itself, on a CPU-only machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time

import torch


def main() -> int:
    from earlyexit.stamp import today
    from earlyexit.study import load_spec, plan, with_device
    from earlyexit.training import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--spec", default="studies/quickstart.toml")
    ap.add_argument("--steps", type=int, default=100, help="training steps of each run (probes at 0, and at the "
                                                           "spec's probe steps up to it)")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()

    spec = with_device(load_spec(args.spec), args.device)
    base = spec.config_for(plan(spec)[0].params)
    steps = tuple(s for s in base.probe_steps if s <= args.steps)
    runs = {}
    for precision in ("fp32", "bf16"):
        config = dataclasses.replace(base, precision=precision, probe_precision="fp32", max_steps=args.steps,
                                     max_epochs=None, probe_steps=steps)
        t0 = time.perf_counter()
        runs[precision] = train(config)
        print(f"{precision}: {args.steps} steps in {time.perf_counter() - t0:.1f} s, "
              f"dev accuracy {runs[precision].final_accuracy:.4f}")
    first = {p: r.checkpoints[0].probes for p, r in runs.items()}
    rows, failures = [], []
    for name, a in first["fp32"].items():
        b = first["bf16"].get(name, math.nan)
        same = math.isfinite(a) and math.isfinite(b) and abs(a - b) <= args.rtol * max(abs(a), 1e-12)
        rows.append({"probe": name, "fp32_step0": a, "bf16_step0": b, "agree": same})
        if not same:
            failures.append(f"{name} at step 0: fp32 {a!r}, bf16 run {b!r}")
    for cp in runs["bf16"].checkpoints:
        bad = [n for n, v in cp.probes.items() if not (math.isfinite(v) or v == math.inf)]
        if cp.probe_error or bad:
            failures.append(f"bf16 run, step {cp.step}: {cp.probe_error or 'non-finite ' + ', '.join(bad)}")
    print(f"\n{'probe':<24} {'fp32, step 0':>14} {'bf16 run, step 0':>17}  agree")
    for r in rows:
        print(f"{r['probe']:<24} {r['fp32_step0']:>14.6g} {r['bf16_step0']:>17.6g}  {r['agree']}")
    result = {"device": runs["bf16"].device, "date": today(),
              "machine": platform.machine(), "torch": torch.__version__, "steps": args.steps, "rtol": args.rtol,
              "probes_step0": rows, "final_dev_accuracy": {p: r.final_accuracy for p, r in runs.items()},
              "failures": failures,
              "command": f"python benchmarks/precision_check.py --device {args.device} --steps {args.steps}"}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    print("\n" + ("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
