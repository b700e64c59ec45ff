"""The logged-sweep format: a folder with a manifest and two CSV tables.

``<sweep>/manifest.json``
    ``format_version``, name, task, model, protocol (the fixed training
    settings), search space, probe steps and names, machine, command and
    package versions.
``<sweep>/runs.csv``
    one row per finished run: ``run_id``, ``config_id`` (same for all seeds
    of a config), ``seed``, the searched hyperparameters, ``status``
    (completed / diverged), ``final_accuracy``, ``final_metric`` (the
    study's metric on dev, from version 2), ``final_loss``, ``steps``,
    ``compute_steps``, ``train_step_seconds``, ``wall_seconds``.
``<sweep>/checkpoints.csv``
    one row per run and probe step: ``run_id``, ``step``, one column per
    probe, ``dev_accuracy``, ``dev_metric`` (from version 2), ``dev_loss``,
    ``train_loss``, ``wall_seconds``, ``compute_steps`` (training steps so
    far plus probe time so far divided by the run's mean step time),
    ``probe_seconds``, ``probe_error``. From version 2 every completed run
    also has a row at its final step (every probe and the dev metrics at the
    end of the budget), whether or not that is a probe step.

``<sweep>/dev_predictions.csv`` (from version 3)
    one row per run and dev evaluation: ``run_id``, ``step``,
    ``predictions``: the predicted class id of every dev example in the dev
    split's order, one character each (``0``-``9``, then ``a``-``z``; see
    :func:`encode_classes`). The manifest's ``dev_labels`` holds the true
    class ids the same way, so which examples a model got right at a step is
    ``predictions == dev_labels``: the per-example record a paired test
    between two trials reads.

Versions: 1 (accuracy only, no final row) is still read as it is: its metric
is accuracy, ``final_metric`` and ``dev_metric`` are its accuracy columns.
Version 2 adds the metric columns, the final row, and the manifest's
``metric``, ``label_names``, ``train_examples`` and ``budget_steps``.
Version 3 adds ``dev_predictions.csv`` with the manifest's ``dev_labels``,
and ``final_test_accuracy`` / ``final_test_metric`` in ``runs.csv``: the final
model evaluated once on the task's test split (empty where the data has no
labelled test split). Nothing in earlyexit decides on the test columns; the
replay reports the test regret beside the dev regret.

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

from ..protocol import CLASS_CHARS, decode_classes, encode_classes  # noqa: F401  (the class records' one codec)

FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
RUNS = "runs.csv"
CHECKPOINTS = "checkpoints.csv"
DEV_PREDICTIONS = "dev_predictions.csv"
RUN_STATUSES = ("completed", "diverged")
V2_RUN_FIELDS = ("run_id", "config_id", "seed", "status", "final_accuracy", "final_metric", "final_loss", "steps",
                 "compute_steps", "train_step_seconds", "wall_seconds")
RUN_FIELDS = (*V2_RUN_FIELDS, "final_test_accuracy", "final_test_metric")
PREDICTION_FIELDS = ("run_id", "step", "predictions")
CHECKPOINT_FIELDS = ("run_id", "step", "dev_accuracy", "dev_metric", "dev_loss", "train_loss", "wall_seconds",
                     "compute_steps", "probe_seconds", "probe_error")
V1_RUN_FIELDS = tuple(f for f in V2_RUN_FIELDS if f != "final_metric")


def run_fields(version: int) -> tuple[str, ...]:
    """The base columns of ``runs.csv`` in a sweep of format ``version``."""
    return V1_RUN_FIELDS if version < 2 else V2_RUN_FIELDS if version == 2 else RUN_FIELDS


V1_CHECKPOINT_FIELDS = tuple(f for f in CHECKPOINT_FIELDS if f != "dev_metric")


class SweepWriteError(OSError):
    """A sweep folder that could not be written (a full disk, a read-only folder); the log is left as it was."""

    def __str__(self) -> str:
        return str(self.strerror)


class SweepFormatError(ValueError):
    """A sweep folder that does not follow the format; the message names file, row and field."""


def write_manifest(folder: Path, manifest: dict, *, version: int = FORMAT_VERSION) -> None:
    """Write the manifest; ``version`` keeps an older sweep's version when its manifest is updated."""
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / MANIFEST, json.dumps({"format_version": version, **manifest}, indent=2) + "\n")


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise SweepFormatError(f"{path}: missing; a sweep folder holds {MANIFEST}, {RUNS} and {CHECKPOINTS}.")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SweepFormatError(f"{path}: not valid JSON ({exc}).") from None
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise SweepFormatError(f"{path}: format_version {version!r}, but this earlyexit reads versions "
                               f"{list(READABLE_VERSIONS)}; use the earlyexit version that wrote it.")
    return manifest


def append_run(folder: Path, run_row: dict, checkpoint_rows: list[dict], *, param_names: list[str],
               probe_names: list[str], version: int = FORMAT_VERSION,
               prediction_rows: list[dict] | None = None) -> None:
    """Append one finished run: its dev predictions and checkpoint rows first, then its run row (the done marker).

    ``version`` is the sweep's own format version: a version-1 or -2 sweep
    resumed by this earlyexit goes on with its own columns (and, before
    version 3, no prediction rows).
    """
    run_base = run_fields(version)
    cp_base = CHECKPOINT_FIELDS if version >= 2 else V1_CHECKPOINT_FIELDS
    cp_fields = ["run_id", "step", *probe_names, *cp_base[2:]]
    run_columns = ["run_id", "config_id", "seed", *[p for p in param_names if p != "seed"], *run_base[3:]]
    checkpoint_rows = [{k: v for k, v in r.items() if k in cp_fields} for r in checkpoint_rows]
    run_row = {k: v for k, v in run_row.items() if k in run_columns}
    files = (folder / DEV_PREDICTIONS, folder / CHECKPOINTS, folder / RUNS)
    sizes = {p: p.stat().st_size if p.exists() else None for p in files}
    try:
        if version >= 3 and prediction_rows:
            _append_csv(folder / DEV_PREDICTIONS, list(PREDICTION_FIELDS), prediction_rows)
        _append_csv(folder / CHECKPOINTS, cp_fields, checkpoint_rows)
        _append_csv(folder / RUNS, run_columns, [run_row])
    except OSError as exc:
        # A full disk or a folder gone read-only: put every file back as it was, so the log stays valid and the
        # same command resumes (this run is trained again) once the folder is writable.
        for p, size in sizes.items():
            try:
                if size is None:
                    p.unlink(missing_ok=True)
                else:
                    os.truncate(p, size)
            except OSError:
                pass
        raise SweepWriteError(exc.errno, f"{folder}: cannot write run {run_row.get('run_id')!r} ({exc.strerror or exc}); "
                                         "the runs logged before it stay valid; run the same command again once the "
                                         "folder is writable") from None


def drop_unfinished(folder: Path) -> int:
    """Remove checkpoint (and prediction) rows of runs with no run row (cut off mid-run); return the checkpoint rows dropped."""
    done = set()
    if (folder / RUNS).exists():
        with open(folder / RUNS, newline="") as f:
            done = {row["run_id"] for row in csv.DictReader(f)}
    _drop_rows(folder / DEV_PREDICTIONS, done)
    return _drop_rows(folder / CHECKPOINTS, done)


def _drop_rows(cps_path: Path, done: set[str]) -> int:
    """Keep only the rows of ``cps_path`` whose run is in ``done``; return how many were dropped."""
    if not cps_path.exists():
        return 0
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
