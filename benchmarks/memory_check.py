"""Memory across the trials of one study process: no leak from one trial to the next.

Runs ``--trials`` trials of a spec (the quick start by default) in one process through the study runner, on
``--device``, and after each finished trial records the memory the process holds: on CUDA the tensors allocated
and the memory reserved by PyTorch's caching allocator (``torch.cuda.memory_allocated`` / ``memory_reserved``,
after a garbage collection and a synchronize); on the CPU the resident set size. The check passes when the
allocated memory after the last trial is within ``--tolerance`` (5%) of that after the second (the first trial
warms the allocator, the kernels and the data caches). Prints a table and writes JSON with the device and date.

    python benchmarks/memory_check.py --device cuda:0 --trials 20 --out $OUT/memory_check.json
    python benchmarks/memory_check.py --device cpu --trials 3 --max-steps 30   # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import resource
import tempfile
import time

import torch

from earlyexit.stamp import machine, today


def _held(device: str) -> dict:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return {"allocated_mib": torch.cuda.memory_allocated() / 2**20,
                "reserved_mib": torch.cuda.memory_reserved() / 2**20}
    with open("/proc/self/statm") as f:  # resident pages now (ru_maxrss would be the peak)
        rss = int(f.read().split()[1]) * resource.getpagesize()
    return {"allocated_mib": rss / 2**20, "reserved_mib": float("nan")}


def main() -> int:
    from earlyexit.study import load_spec, run_study, with_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--spec", default="studies/quickstart.toml")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=None, help="cap each trial's training steps (a quicker run)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()
    if args.trials < 3:
        ap.error("--trials must be at least 3 (the second trial is the reference)")

    spec = with_device(load_spec(args.spec), args.device)
    if args.max_steps is not None:
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, max_steps=args.max_steps))
    rows = []
    started = time.perf_counter()

    def after_trial(study, trial):
        rows.append({"trial": trial.number, "state": trial.state.name, **_held(args.device),
                     "seconds": time.perf_counter() - started})
        r = rows[-1]
        print(f"trial {r['trial']:>3} {r['state']:<9} allocated {r['allocated_mib']:9.1f} MiB  "
              f"reserved {r['reserved_mib']:9.1f} MiB  {r['seconds']:7.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        run_study(spec, storage=f"sqlite:///{tmp}/memory.db", study_name="memory-check", n_trials=args.trials,
                  show_progress=False, callbacks=[after_trial])
    second, last = rows[1]["allocated_mib"], rows[-1]["allocated_mib"]
    growth = (last - second) / second if second else float("inf")
    ok = abs(growth) <= args.tolerance
    what = "CUDA tensors allocated" if args.device.startswith("cuda") else "resident set size"
    print(f"\n{what}: {second:.1f} MiB after trial 2, {last:.1f} MiB after trial {len(rows)} "
          f"({growth:+.1%}; within {args.tolerance:.0%}: {ok})")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {machine()}"
    result = {"device": device, "date": today(), "torch": torch.__version__,
              "measure": what, "trials": rows, "growth_after_second": growth, "tolerance": args.tolerance,
              "pass": ok, "command": f"python benchmarks/memory_check.py --device {args.device} --trials {args.trials}"
              + (f" --max-steps {args.max_steps}" if args.max_steps is not None else "")}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
