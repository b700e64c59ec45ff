"""The logged-sweep format: a folder with a manifest and two CSV tables.

``<sweep>/manifest.json``
    ``format_version``, name, task, model, protocol (the fixed training
    settings), search space, probe steps and names, machine, command and
    package versions.
``<sweep>/runs.csv``
    one row per finished run: ``run_id``, ``config_id`` (same for all seeds
    of a config), ``seed``, the searched hyperparameters, ``status``
    (completed / diverged), ``final_accuracy``, ``final_loss``, ``steps``,
    ``compute_steps``, ``train_step_seconds``, ``wall_seconds``.
``<sweep>/checkpoints.csv``
    one row per run and probe step: ``run_id``, ``step``, one column per
    probe, ``dev_accuracy``, ``dev_loss``, ``train_loss``, ``wall_seconds``,
    ``compute_steps`` (training steps so far plus probe time so far divided
    by the run's mean step time), ``probe_seconds``, ``probe_error``.

A run's row in ``runs.csv`` is written after its checkpoints: it marks the
run as done, so checkpoint rows without one belong to a run that was cut off
and are dropped when the sweep resumes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RUNS = "runs.csv"
CHECKPOINTS = "checkpoints.csv"
RUN_STATUSES = ("completed", "diverged")
RUN_FIELDS = ("run_id", "config_id", "seed", "status", "final_accuracy", "final_loss", "steps",
              "compute_steps", "train_step_seconds", "wall_seconds")
CHECKPOINT_FIELDS = ("run_id", "step", "dev_accuracy", "dev_loss", "train_loss", "wall_seconds", "compute_steps",
                     "probe_seconds", "probe_error")


class SweepFormatError(ValueError):
    """A sweep folder that does not follow the format; the message names file, row and field."""


def write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / MANIFEST, json.dumps({"format_version": FORMAT_VERSION, **manifest}, indent=2) + "\n")


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise SweepFormatError(f"{path}: missing; a sweep folder holds {MANIFEST}, {RUNS} and {CHECKPOINTS}.")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SweepFormatError(f"{path}: not valid JSON ({exc}).") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise SweepFormatError(f"{path}: format_version {version!r}, but this earlyexit reads version "
                               f"{FORMAT_VERSION}; re-log the sweep or use the earlyexit version that wrote it.")
    return manifest


def append_run(folder: Path, run_row: dict, checkpoint_rows: list[dict], *, param_names: list[str],
               probe_names: list[str]) -> None:
    """Append one finished run: its checkpoint rows first, then its run row (the done marker)."""
    cp_fields = ["run_id", "step", *probe_names, *CHECKPOINT_FIELDS[2:]]
    run_fields = ["run_id", "config_id", "seed", *[p for p in param_names if p != "seed"], *RUN_FIELDS[3:]]
    _append_csv(folder / CHECKPOINTS, cp_fields, checkpoint_rows)
    _append_csv(folder / RUNS, run_fields, [run_row])


def drop_unfinished(folder: Path) -> int:
    """Remove checkpoint rows of runs with no run row (cut off mid-run); return how many were dropped."""
    runs_path, cps_path = folder / RUNS, folder / CHECKPOINTS
    if not cps_path.exists():
        return 0
    done = set()
    if runs_path.exists():
        with open(runs_path, newline="") as f:
            done = {row["run_id"] for row in csv.DictReader(f)}
    with open(cps_path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    keep = [r for r in rows if r["run_id"] in done]
    if len(keep) != len(rows):
        tmp = cps_path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, cps_path)
    return len(rows) - len(keep)


def done_run_ids(folder: Path) -> set[str]:
    path = folder / RUNS
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {row["run_id"] for row in csv.DictReader(f)}


def _append_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header != fields:
            raise SweepFormatError(f"{path}: header {header} does not match this sweep's columns {fields}.")
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="raise")
        if new:
            w.writeheader()
        for row in rows:
            w.writerow({k: _cell(row.get(k)) for k in fields})
        f.flush()
        os.fsync(f.fileno())


def _cell(value):
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(float(value))
    return value


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
