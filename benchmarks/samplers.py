"""Random search against TPE, each with and without the shipped pruner, on a live study.

The quick start's study (``studies/quickstart.toml``: the bundled tiny BERT on the bundled SST-2 subset, 300
steps) with 40 trials, run by ``earlyexit``'s own study runner for each of 3 seeds, with the random sampler and
with TPE (Optuna's default), pruned by the shipped rule or not at all. A pruned trial tells TPE its last reported
value (the dev metric where it was pruned): Optuna's convention, which TPE reads as the trial's value.

Reports, per sampler and pruner, the mean over seeds of the best final dev accuracy found, the compute spent (in
full trainings: training steps over the 300-step budget; the dev evaluations a pruner reads are left out) and the
trials pruned. Each finished study is
written to the JSON at once, so a killed benchmark resumes where it stopped.

    python benchmarks/samplers.py [--trials 40] [--seeds 0 1 2] [--json benchmarks/samplers.json]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from earlyexit.stamp import machine, stamp, today

QUICKSTART = Path(__file__).resolve().parent.parent / "studies" / "quickstart.toml"
SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "resolution")


def spec_text(sampler: str, pruner: str, seed: int, trials: int) -> str:
    """The quick start's spec with another sampler, pruner, seed and number of trials."""
    text = QUICKSTART.read_text()
    for key, value in (("sampler", f'"{sampler}"'), ("seed", str(seed)), ("n_trials", str(trials)),
                       ("kind", f'"{pruner}"')):
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"{QUICKSTART}: no line '{key} = ...' to set")
    if pruner == "none":  # an unpruned study measures every listed probe (to log them): only the cheapest here
        text = re.sub(r'^names = \[[^\]]*\]', 'names = ["loss"]', text, count=1, flags=re.M)
    return text


def one_study(sampler: str, pruner: str, seed: int, trials: int) -> dict:
    import optuna

    from earlyexit.study import load_spec, run_study, summary

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.toml"
        path.write_text(spec_text(sampler, pruner, seed, trials))
        start = time.perf_counter()
        study = run_study(load_spec(path), storage=f"sqlite:///{tmp}/study.db", show_progress=False)
        seconds = time.perf_counter() - start
        s = summary(study)
        budget = float(study.user_attrs.get("earlyexit:budget_steps") or 300)
    return {"sampler": sampler, "pruner": pruner, "seed": seed, "trials": s["trials"], "pruned": s["pruned"],
            "failed": s["failed"], "best": s.get("best", {}).get("value"),
            "compute_trainings": sum(t.user_attrs.get("steps", 0) for t in study.trials) / budget,
            "seconds": seconds}


def table(rows: list[dict]) -> str:
    lines = ["| sampler | pruner | seeds | best final (mean) | best final (each seed) | compute (full trainings) "
             "| pruned trials |", "|---|---|---|---|---|---|---|"]
    for sampler in SAMPLERS:
        for pruner in PRUNERS:
            got = sorted((r for r in rows if r["sampler"] == sampler and r["pruner"] == pruner),
                         key=lambda r: r["seed"])
            if not got:
                continue
            best = [r["best"] for r in got]
            lines.append(f"| {sampler} | {pruner} | {len(got)} | {np.mean(best):.4f} | "
                         f"{' / '.join(f'{b:.4f}' for b in best)} | "
                         f"{np.mean([r['compute_trainings'] for r in got]):.1f} | "
                         f"{np.mean([r['pruned'] for r in got]):.1f} of {got[0]['trials']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", default="benchmarks/samplers.json", help="results, written after each study")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.json)
    saved = json.loads(out.read_text()) if out.exists() else {}
    if saved and saved.get("trials") != args.trials:
        raise SystemExit(f"{out} holds studies of {saved.get('trials')} trials, not {args.trials}: "
                         "pass another --json")
    rows = saved.get("rows", [])
    for seed in args.seeds:
        for sampler in SAMPLERS:
            for pruner in PRUNERS:
                if any((r["sampler"], r["pruner"], r["seed"]) == (sampler, pruner, seed) for r in rows):
                    continue
                print(f"{sampler} / {pruner} / seed {seed} ...", flush=True)
                rows.append(one_study(sampler, pruner, seed, args.trials))
                print(f"  best {rows[-1]['best']:.4f}, {rows[-1]['compute_trainings']:.1f} full trainings, "
                      f"{rows[-1]['pruned']} pruned, {rows[-1]['seconds']:.0f} s", flush=True)
                out.write_text(json.dumps({"trials": args.trials, "date": today(),
                                           "machine": machine(), "threads": args.threads,
                                           "command": f"python benchmarks/samplers.py --trials {args.trials}",
                                           "rows": rows}, indent=1) + "\n")
    print(f"{args.trials} trials a study; the quick start's task; {stamp()}")
    print(table(rows))


if __name__ == "__main__":
    main()
