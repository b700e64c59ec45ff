"""What the look-ahead's benchmarks read: the complete sweeps of ``studies/``, never the look-ahead's clean test.

One place for the rule, so that the benchmarks that measure the look-ahead's predictor (neighbours, study refit,
frontier, predictor features) leave out the same task. Imported by those scripts, run from the repository root
as ``python benchmarks/<name>.py`` (their folder is then on the path).
"""

import argparse
import json
import time
from pathlib import Path

from earlyexit.stamp import machine, stamp, today
from earlyexit.sweeps import find_sweeps, load

CLEAN_TEST = ("agnews",)
"""The look-ahead's clean test (``studies/agnews-wide48``): no benchmark that shapes the look-ahead reads it. Kept
out after the clean test ran (``docs/lookahead.md``), so that each benchmark prints the figures it committed."""


def is_clean_test(sweep) -> bool:
    return str(sweep.manifest.get("task")) in CLEAN_TEST


def training_sweeps() -> list:
    """Every complete sweep of ``studies/`` but the clean test's, in the catalogue's order."""
    sweeps = [load(p) for p in find_sweeps(["studies"]) if (p / "runs.csv").exists()]
    return [sw for sw in sweeps if sw.missing_runs <= 0 and not is_clean_test(sw)]


def held_out_by_task():
    """For each task of :func:`training_sweeps`, in order: ``(task, the other tasks' held sets, {sweep name: its held
    sets})``, what a benchmark fits on and what it replays, each task left out in turn."""
    from earlyexit.replay._engine import held_sets

    sweeps = training_sweeps()
    sets = {sw.name: held_sets(sw) for sw in sweeps}
    tasks = {sw.name: str(sw.manifest.get("task")) for sw in sweeps}
    for task in sorted(set(tasks.values())):
        train = [h for n, hs in sets.items() if tasks[n] != task for h in hs]
        yield task, train, {n: sets[n] for n in sorted(sets) if tasks[n] == task}


def settings_table(per: dict, title: str) -> dict:
    """Print ``per`` (``{sweep: {setting: (saved, mean regret)}}``) as a table, one column a setting, with the mean
    over sweeps and the worst regret; return ``{setting: (mean saved, mean regret, worst regret)}``."""
    import numpy as np

    labels = list(next(iter(per.values())))
    mean = {k: (float(np.mean([per[s][k][0] for s in per])), float(np.mean([per[s][k][1] for s in per])),
                float(np.max([per[s][k][1] for s in per]))) for k in labels}
    width = max(28, *(len(k) for k in labels))
    print(f"\n{title}")
    print(f"{'sweep':16s} " + " ".join(f"{k:>{width}s}" for k in labels))
    for name in per:
        print(f"{name:16s} " + " ".join(f"{100 * per[name][k][0]:{width - 7}.1f}% {per[name][k][1]:5.2f}"
                                        for k in labels))
    print(f"{'mean (worst)':16s} " + " ".join(f"{100 * s:{width - 15}.1f}% {r:5.2f} ({w:5.2f})"
                                             for s, r, w in mean.values()))
    return mean


def replay_by_task(settings: dict, orders: int, *, workers: int = 1, seen=None) -> dict:
    """Replay each setting on every sweep of :func:`held_out_by_task`, its predictor fitted on the other tasks:
    ``{sweep: {label: (compute saved, mean regret)}}``, means over the sweep's seeds and ``orders`` arrival orders.

    ``settings``: ``{label: prepare(predictor, held set) -> judge(order)}``; ``prepare`` runs once a held set
    (what every order shares, such as a study pool) and returns what makes a fresh judge for each order.
    ``seen(label, judge)``, where given, is called with each judge after its replay."""
    import numpy as np

    from earlyexit.replay._engine import live
    from earlyexit.replay._lookahead import fit_predictor

    started = time.time()
    per: dict[str, dict] = {}
    for task, train, named in held_out_by_task():
        model = fit_predictor(train)
        for name, held_out in named.items():
            figs = {}
            for label, prepare in settings.items():
                outs = []
                for held in held_out:
                    make = prepare(model, held)
                    for o in range(orders):
                        judge = make(o)
                        outs.append(live(held, judge, o, workers))
                        if seen is not None:
                            seen(label, judge)
                figs[label] = (1 - float(np.mean([x.compute_used for x in outs])),
                               float(np.mean([x.regret for x in outs])))
            per[name] = figs
        print(f"{task}: {time.time() - started:.0f} s", flush=True)
    return per


def arguments(doc: str, *, orders: int = 10, extra=()) -> argparse.ArgumentParser:
    """The analyses' command line: ``--orders`` (arrival orders a study is replayed in) and ``--json`` (where the
    figures go), described by ``doc``'s first line; ``extra``: ``(flag, add_argument keywords)`` before them."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for flag, kwargs in extra:
        ap.add_argument(flag, **kwargs)
    ap.add_argument("--orders", type=int, default=orders)
    ap.add_argument("--json", default=None)
    return ap


def finish(started: float, path: str | None, protocol: dict, **figures) -> None:
    """Print the run's stamp (seconds since ``started``, date, machine) and, with ``path``, write ``{"protocol":
    protocol and the stamp, **figures}`` there as JSON."""
    seconds = round(time.time() - started, 1)
    print(f"{seconds} s, {stamp()}")
    if path:
        when = {"seconds": seconds, "date": today(), "machine": machine()}
        Path(path).write_text(json.dumps({"protocol": {**protocol, **when}, **figures}, indent=1) + "\n")
