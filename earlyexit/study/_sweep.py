"""``earlyexit sweep``: train every config of a spec to completion (no pruning) and log it, resumably."""

from __future__ import annotations

import dataclasses
import itertools
import math
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data import load_task
from ..metrics import check_metric
from ..sweeps import (FORMAT_VERSION, append_run, done_run_ids, drop_unfinished, encode_classes, read_manifest,
                      write_manifest)
from ..training import train
from ..training import compute_steps
from ._claims import claim, folder_lock, release
from ._spec import StudySpec

PARTIAL = ".partial"  # <sweep>/.partial/<run_id>.pt: the state of a run in progress, to resume it after a kill


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its id, its config's id, and its hyperparameters (seed included)."""

    run_id: str
    config_id: str
    params: dict


def plan(spec: StudySpec) -> list[PlannedRun]:
    """Every run of the sweep, seeds outermost so that a partial sweep holds whole seeds.

    A grid sweep runs the Cartesian product of ``[search.grid]`` (``seed`` is
    one of its keys, or the spec's single training seed). A sampled sweep
    draws ``study.n_trials`` configs from ``[search]`` with ``study.seed``
    and trains each with every seed of ``[search.grid] seed`` (default: the
    spec's single training seed), so a sampled sweep can have several seeds.
    """
    if spec.sampler == "grid":
        grid = dict(spec.grid)
        seeds = list(grid.pop("seed", [spec.train.seed]))
        keys = list(grid)
        configs = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    else:
        rng = np.random.default_rng(spec.seed)
        search = {k: d for k, d in spec.search.items() if k != "seed"}
        configs = [{k: _draw(d, rng) for k, d in search.items()} for _ in range(spec.n_trials)]
        seeds = list(spec.grid.get("seed", [spec.train.seed]))
    runs = []
    for s_index, seed in enumerate(seeds):
        for c_index, cfg in enumerate(configs):
            runs.append(PlannedRun(f"r{s_index * len(configs) + c_index:03d}", f"c{c_index:02d}",
                                   {**cfg, "seed": seed}))
    return runs


def _draw(d, rng):
    if d.kind == "categorical":
        return d.choices[int(rng.integers(len(d.choices)))]
    if d.log:
        value = math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
    else:
        value = rng.uniform(d.low, d.high)
    return int(round(value)) if d.kind == "int" else float(value)


def run_budgets(spec: StudySpec, runs: list[PlannedRun], train_examples: int) -> dict[str, int]:
    """Each run's budget in optimiser steps (its own where it searches the batch size)."""
    return {r.run_id: spec.config_for(r.params).with_budget(train_examples).max_steps for r in runs}


def manifest(spec: StudySpec, runs: list[PlannedRun], command: str, task=None) -> dict:
    """The sweep's manifest; with ``task`` (its loaded data) the budget is resolved and the labels recorded."""
    import optuna
    import sklearn
    import torch
    import transformers

    train_config = spec.train if task is None else spec.train.with_budget(len(task.train))
    own = {} if task is None else run_budgets(spec, runs, len(task.train))
    longest = max([train_config.max_steps, *own.values()])
    searched = sorted({k for r in runs for k in r.params})
    protocol = {k: v for k, v in dataclasses.asdict(train_config).items() if k not in searched and k != "extra"}
    data = {}
    if task is not None:
        counts = [sum(1 for r in task.dev if r[2] == k) for k in range(task.num_labels)]
        data = {"label_names": [_plain(x) for x in task.label_names], "num_labels": task.num_labels,
                "dev_class_fractions": [c / len(task.dev) for c in counts],
                "train_examples": len(task.train), "dev_examples": len(task.dev),
                "test_examples": len(task.test), "budget_steps": train_config.max_steps,
                "dev_labels": encode_classes(r[2] for r in task.dev)}
        if set(own.values()) != {train_config.max_steps}:  # a searched batch size: each run has its own budget
            data["run_budgets"] = own
    return {
        "name": spec.name,
        "task": spec.train.task,
        "metric": spec.train.metric,
        "data": spec.train.data,
        **data,
        "model": spec.train.model,
        "protocol": protocol,
        "params": searched,
        "grid": {k: list(v) for k, v in spec.grid.items()},
        "search": {k: dataclasses.asdict(d) for k, d in spec.search.items()},
        "runs": len(runs),
        "probe_steps": [s for s in train_config.probe_steps if s <= longest],
        "probe_names": list(spec.train.probe_names),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": _cpus(), "torch_threads": torch.get_num_threads(),
                    "device": _device(train_config.device), "precision": train_config.precision},
        "command": command,
        "packages": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "optuna": optuna.__version__,
                     "scikit-learn": sklearn.__version__},
        "spec": Path(spec.path).read_text() if Path(spec.path).exists() else "",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _device(name: str) -> str:
    from ..training import device_name, resolve_device

    return device_name(resolve_device(name))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_sweep(spec: StudySpec, folder: Path, *, limit: int | None = None, command: str | None = None,
              log: Callable[[str], None] = print, storage: str | None = None) -> int:
    """Train the sweep's runs that are not logged yet, logging each as it finishes.

    Returns the number of runs trained now by this process. A killed sweep
    loses about a minute of the run in progress: the run's state is kept in
    ``<folder>/.partial/<run_id>.pt`` after each checkpoint and each minute of
    training, and the next worker to claim the run goes on from it, to the
    same rows (on the CPU, to the bit; ``train(snapshot=...)``). Several
    processes may work on one folder at once (two
    1-thread workers use 2 cores best): each claims a run before training it
    (see ``_claims``), so no run is trained twice. With ``storage`` (a study storage URL such as
    ``postgresql://...``) the runs are claimed through that storage instead, so that workers on machines that
    share no folder log one sweep; each writes every finished run into its own ``folder`` (see ``_ledger``).
    """
    import torch

    folder = Path(folder)
    runs = plan(spec)
    command = command or " ".join(sys.argv)
    task = load_task(spec.train.source)  # bad data fails here, before anything is written
    check_metric(spec.train.metric, task.num_labels)
    budget = spec.train.with_budget(len(task.train))
    # A searched batch size gives each run its own budget: only steps past the longest are never reached.
    longest = max([budget.max_steps, *run_budgets(spec, runs, len(task.train)).values()])
    past = dataclasses.replace(budget, max_steps=longest).probe_steps_past_budget()
    if past:
        log(f"note: probe steps {list(past)} lie past the budget of {longest} steps and are dropped; "
            "the final step is logged as a checkpoint")
    version = FORMAT_VERSION
    with folder_lock(folder):
        if not (folder / "manifest.json").exists():
            write_manifest(folder, manifest(spec, runs, command, task))
        else:
            # Provenance of every invocation that resumed a long sweep (the manifest's "sittings"): when, with
            # how many threads, by which command
            # (an invocation that finds the sweep complete trains nothing and is not recorded).
            current = read_manifest(folder)
            version = int(current.pop("format_version"))
            logged = len(done_run_ids(folder))
            if logged < len(runs):
                current.setdefault("sittings", []).append({
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "torch_threads": torch.get_num_threads(), "command": command,
                    "device": _device(budget.device),
                    "runs_logged_before": logged})
                write_manifest(folder, current, version=version)
        # Other workers write a run's rows only under this lock, so any run without its run row is cut off.
        dropped = drop_unfinished(folder)
        done = done_run_ids(folder)
        _drop_snapshots(folder, done)
    if dropped:
        log(f"dropped {dropped} checkpoint rows of a run that was cut off")
    param_names = sorted({k for r in runs for k in r.params})
    if storage is not None:
        return _run_on_ledger(spec, runs, folder, task, param_names, log, version, storage, limit)
    todo = [r for r in runs if r.run_id not in done]
    log(f"{spec.name}: {len(done)} of {len(runs)} runs logged, {len(todo)} left"
        + (f", training at most {limit} now" if limit is not None else "") + f" -> {folder}")
    trained = 0
    for run in todo:
        if limit is not None and trained >= limit:
            break
        with folder_lock(folder):
            if run.run_id in done_run_ids(folder) or not claim(folder, run.run_id):
                continue  # logged or being trained by another worker meanwhile
        try:
            _train_and_log(spec, run, folder, task, param_names, log, version)
        finally:
            release(folder, run.run_id)
        trained += 1
    return trained


def _train_and_log(spec: StudySpec, run: PlannedRun, folder: Path, task, param_names: list[str],
                   log: Callable[[str], None], version: int = FORMAT_VERSION) -> None:
    """Train one run to completion (or on from its snapshot) and append its rows (checkpoints first, then the run
    row)."""
    rows = _train_rows(spec, run, task, log, version, snapshot=snapshot_path(folder, run.run_id))
    with folder_lock(folder):
        _append(folder, rows, param_names, spec, version)
        logged = len(done_run_ids(folder))
        _drop_snapshots(folder, {run.run_id})
    log(f"[{logged} logged] {rows['message']}")


def snapshot_path(folder: Path, run_id: str) -> Path:
    """Where a sweep keeps the state of ``run_id`` while it trains."""
    return Path(folder) / PARTIAL / f"{run_id}.pt"


def _drop_snapshots(folder: Path, run_ids) -> None:
    """Remove the snapshots of runs whose rows are logged (the caller holds the folder's lock)."""
    for run_id in run_ids:
        snapshot_path(folder, run_id).unlink(missing_ok=True)


def _append(folder: Path, rows: dict, param_names: list[str], spec: StudySpec, version: int) -> None:
    """Append one run's rows (the caller holds the folder's lock); a resumed run is named in the manifest's
    ``resumed_runs``, with the step it went on from."""
    append_run(folder, rows["run"], rows["checkpoints"], param_names=param_names,
               probe_names=list(spec.train.probe_names), version=version, prediction_rows=rows["predictions"])
    if rows.get("resumed_at") is not None:
        current = read_manifest(folder)
        current.pop("format_version")
        current.setdefault("resumed_runs", []).append({"run_id": rows["run"]["run_id"],
                                                       "from_step": rows["resumed_at"]})
        write_manifest(folder, current, version=version)


def _train_rows(spec: StudySpec, run: PlannedRun, task, log: Callable[[str], None],
                version: int = FORMAT_VERSION, snapshot: Path | None = None) -> dict:
    """Train one run to completion: its rows (``run``, ``checkpoints``, ``predictions``) and a ``message``.

    With ``snapshot`` the run keeps its state in that file and goes on from it where it holds one (see
    ``train``); the run row's ``wall_seconds`` then counts the earlier sittings too.

    A version-1 sweep (resumed by this earlyexit) keeps its probe steps only: no final row. From version 3
    each dev evaluation's predictions are logged, and the final model is evaluated once on the task's test
    split where it has one.
    """
    started = time.perf_counter()
    config = spec.config_for(run.params).with_budget(len(task.train))
    quarter = max(1, config.max_steps // 4)

    def progress(step, total, run=run):
        if step % quarter == 0 and step < total:
            log(f"  {run.run_id}: step {step}/{total}, {(time.perf_counter() - started) / 60:.1f} min")

    if snapshot is not None and snapshot.exists():
        log(f"  {run.run_id}: going on from its snapshot {snapshot}")
    result = train(config, task=task, progress=progress, evaluate_test=version >= 3 and bool(task.test),
                   snapshot=snapshot)
    wall = time.perf_counter() - started + result.earlier_seconds
    step_s = result.train_step_seconds
    cum_probe = 0.0
    cp_rows = []
    for cp in result.checkpoints:
        cum_probe += cp.probe_seconds
        if version < 2 and cp.step not in config.probe_steps:
            continue
        row = {"run_id": run.run_id, "step": cp.step, **cp.probes, "dev_accuracy": cp.dev_accuracy,
               "dev_metric": cp.dev_metric, "dev_loss": cp.dev_loss, "train_loss": cp.train_loss, "wall_seconds": cp.wall_seconds,
               "compute_steps": compute_steps(cp.step, cum_probe, step_s),
               "probe_seconds": cp.probe_seconds, "probe_error": cp.probe_error or ""}
        cp_rows.append(row)
    prediction_rows = [{"run_id": run.run_id, "step": cp.step, "predictions": encode_classes(cp.dev_predictions)}
                       for cp in result.checkpoints if cp.dev_predictions]
    run_row = {"run_id": run.run_id, "config_id": run.config_id, **run.params, "status": result.status,
               "final_accuracy": result.final_accuracy, "final_metric": result.final_metric,
               "final_loss": result.final_loss, "steps": result.steps,
               "final_test_accuracy": result.final_test_accuracy, "final_test_metric": result.final_test_metric,
               "compute_steps": result.compute_steps, "train_step_seconds": step_s, "wall_seconds": wall}
    message = (f"{run.run_id} {run.params} -> {result.status}, final accuracy {result.final_accuracy:.4f}"
               + (f", {config.metric} {result.final_metric:.4f}" if config.metric != "accuracy" else "")
               + (f", test {config.metric} {result.final_test_metric:.4f}"
                  if result.final_test_metric == result.final_test_metric else "")
               + f", {result.steps} steps, {wall / 60:.1f} min"
               + (f" (went on from step {result.resumed_at}; {result.earlier_seconds / 60:.1f} min of it trained "
                  "before)" if result.resumed_at is not None else ""))
    return {"run": run_row, "checkpoints": cp_rows, "predictions": prediction_rows, "message": message,
            "resumed_at": result.resumed_at}


def _run_on_ledger(spec: StudySpec, runs: list[PlannedRun], folder: Path, task, param_names: list[str],
                   log: Callable[[str], None], version: int, storage: str, limit: int | None) -> int:
    """Train runs claimed through the ledger in ``storage``; write every finished run into ``folder``."""
    import optuna

    from ._ledger import Ledger
    from ._storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the ledger's trials are runs: logged below, as runs

    ledger = Ledger(make_storage(storage, heartbeat_seconds=spec.heartbeat_seconds), spec.name,
                    [r.run_id for r in runs])

    def sync() -> int:
        with folder_lock(folder):
            have = done_run_ids(folder)
            new = {k: v for k, v in ledger.complete().items() if k not in have}
            for rows in sorted(new.values(), key=lambda r: r["run"]["run_id"]):
                _append(folder, rows, param_names, spec, version)
            logged = len(have) + len(new)
            _drop_snapshots(folder, new)
        for rows in new.values():
            log(f"[{logged} logged] {rows['message']}")
        return logged

    logged = sync()
    log(f"{spec.name}: {logged} of {len(runs)} runs logged, claimed through {ledger.study.study_name!r} in the "
        f"storage -> {folder}")
    trained = ledger.work(lambda i: _train_rows(spec, runs[i], task, log, version,
                                                snapshot=snapshot_path(folder, runs[i].run_id)),
                          limit=limit, after=sync)
    sync()
    return trained
