"""Load and validate a logged sweep; errors name the file, the line and the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ._costs import ProbeCosts, read_probe_costs
from ..metrics import METRIC_RANGES
from ._format import (CHECKPOINTS, RUN_STATUSES, RUNS, SweepFormatError, read_manifest, run_fields)

_CP_NUMERIC = ("dev_accuracy", "dev_metric", "dev_loss", "train_loss", "wall_seconds", "compute_steps",
               "probe_seconds")
PROBE_COVERAGE_REQUIRED = 0.95
"""The share of checkpoint rows on which each promised probe must hold a value for a sweep to be complete
(a diverged run's probes may be missing, so not 100%)."""


@dataclass(frozen=True)
class Sweep:
    """A validated sweep.

    Attributes:
        path: the sweep folder.
        manifest: the manifest dict.
        runs: one row per run (``run_id`` index), as in runs.csv.
        checkpoints: one row per run and step, as in checkpoints.csv.
        params: the searched hyperparameter columns (``seed`` included).
        probes: the probe columns.
        probe_steps: the probe steps of the protocol (within the budget; a
            version-2 sweep also has a row at each run's final step).
        metric: the sweep's metric (``final_metric``/``dev_metric`` columns;
            ``accuracy`` for a version-1 sweep, whose metric columns are
            copies of its accuracy columns).
        probe_costs: each probe's cost in training steps of the sweep's model
            (``probe_costs.json``), or None when the folder has none.
    """

    path: Path
    manifest: dict
    runs: pd.DataFrame
    checkpoints: pd.DataFrame
    params: list[str]
    probes: list[str]
    probe_steps: list[int]
    probe_costs: ProbeCosts | None = None
    metric: str = "accuracy"

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def missing_runs(self) -> int:
        """Runs the manifest plans that are not logged (yet)."""
        return int(self.manifest.get("runs", len(self.runs))) - len(self.runs)

    def probe_coverage(self) -> dict[str, dict]:
        """Per promised probe: ``{"logged": rows with a value, "rows": checkpoint rows, "share": logged/rows,
        "first_error": the first probe_error of a row without it}`` (inf counts as a value, NaN does not)."""
        errors = self.checkpoints["probe_error"]
        out = {}
        for p in self.probes:
            values = self.checkpoints[p]
            missing = values.isna()
            first = errors[missing & errors.astype(str).str.len().gt(0)]
            out[p] = {"logged": int((~missing).sum()), "rows": int(len(values)),
                      "share": float((~missing).mean()) if len(values) else 1.0,
                      "first_error": str(first.iloc[0]) if len(first) else None}
        return out

    def probe_shortfalls(self, required: float = PROBE_COVERAGE_REQUIRED) -> str | None:
        """None where every promised probe holds a value on at least ``required`` of the checkpoint rows;
        otherwise one sentence naming each probe short of it, its count, and the first ``probe_error``."""
        short = {p: c for p, c in self.probe_coverage().items() if c["rows"] and c["share"] < required}
        if not short:
            return None
        counts = ", ".join(f"{p} on {c['logged']} of {c['rows']} rows" for p, c in short.items())
        errors = list(dict.fromkeys(c["first_error"] for c in short.values() if c["first_error"]))
        return (f"{len(short)} of {len(self.probes)} promised probes hold a value on fewer than {required:.0%} of "
                f"the checkpoint rows: {counts}"
                + (f"; first probe_error: {errors[0]}" if errors else "; no probe_error says why"))

    def summary(self) -> dict:
        """The figures ``earlyexit sweeps validate --json`` prints."""
        finals = self.runs.loc[self.runs["status"] == "completed", "final_metric"]
        config_cols = [p for p in self.params if p != "seed"]
        return {
            "path": str(self.path),
            "name": self.manifest.get("name"),
            "task": self.manifest.get("task"),
            "metric": self.metric,
            "format_version": self.manifest.get("format_version"),
            "model": self.manifest.get("model"),
            "runs": int(len(self.runs)),
            "planned_runs": int(self.manifest.get("runs", len(self.runs))),
            "missing_runs": self.missing_runs,
            "configs": int(self.runs[config_cols].drop_duplicates().shape[0]) if config_cols else 1,
            "seeds": sorted(int(s) for s in self.runs["seed"].unique()),
            "checkpoints": list(self.probe_steps),
            "probes": list(self.probes),
            "probe_coverage": {p: c["share"] for p, c in self.probe_coverage().items()},
            "probe_costs": self._probe_costs_summary(),
            "diverged": int((self.runs["status"] == "diverged").sum()),
            "median_final": float(finals.median()) if len(finals) else math.nan,
            "best_final": float(finals.max()) if len(finals) else math.nan,
        }

    def _probe_costs_summary(self) -> dict | None:
        """What one checkpoint of the promised probes costs in training steps, and where that was measured."""
        if self.probe_costs is None or not self.probes:
            return None
        try:
            steps = self.probe_costs.of(self.probes)
        except (KeyError, ValueError):  # a price file without a part that a promised probe needs
            steps = math.nan
        return {"steps": steps,
                "machine": self.probe_costs.provenance.get("machine"),
                "device": self.probe_costs.provenance.get("device"),
                "torch": self.probe_costs.provenance.get("torch")}


def load(path: str | Path, *, require_complete: bool = False, require_probes: bool = False) -> Sweep:
    """Read a sweep folder and check it; raises :class:`SweepFormatError` on the first problem.

    Checks: manifest version; required columns; types and ranges (accuracy
    in [0, 1], steps non-negative integers, status known); duplicate runs and
    duplicate (run, step) rows; checkpoints of unknown runs; each completed
    run has every probe step up to its length; with ``require_complete``,
    every planned run is logged and every promised probe holds a value on at
    least :data:`PROBE_COVERAGE_REQUIRED` of the checkpoint rows; with
    ``require_probes``, the probes only. Probe values may be NaN only where
    the row records a ``probe_error``; +inf is allowed (critical sharpness of
    a step that is not a descent direction).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SweepFormatError(f"{folder}: not a sweep folder (expected a directory with manifest.json, "
                               f"{RUNS} and {CHECKPOINTS}).")
    manifest = read_manifest(folder)
    version = int(manifest["format_version"])
    metric = str(manifest.get("metric", "accuracy")) if version >= 2 else "accuracy"
    if metric not in METRIC_RANGES:
        raise SweepFormatError(f"{folder / 'manifest.json'}: metric {metric!r} is not one of {list(METRIC_RANGES)}.")
    probes = list(manifest.get("probe_names", []))
    steps = [int(s) for s in manifest.get("probe_steps", [])]
    params = list(manifest.get("params", []))
    runs = _read_csv(folder / RUNS)
    cps = _read_csv(folder / CHECKPOINTS)

    run_file, cp_file = folder / RUNS, folder / CHECKPOINTS
    base_fields = run_fields(version)
    cp_numeric = _CP_NUMERIC if version >= 2 else tuple(c for c in _CP_NUMERIC if c != "dev_metric")
    _require(runs, run_file, ["run_id", "config_id", "seed", *[p for p in params if p != "seed"], *base_fields[3:]])
    _require(cps, cp_file, ["run_id", "step", *probes, *cp_numeric, "probe_error"])
    if version < 2:  # accuracy is the metric: the metric columns are the accuracy columns
        runs["final_metric"] = runs["final_accuracy"]
        cps["dev_metric"] = cps["dev_accuracy"]
    if version < 3:  # no test split was evaluated
        runs["final_test_accuracy"] = runs["final_test_metric"] = ""

    _integers(runs, run_file, ["seed", "steps"])
    for col in params:
        if col != "seed":
            try:
                runs[col] = [float(v) for v in runs[col]]
            except ValueError:
                pass  # a categorical hyperparameter such as the schedule stays text
    _integers(cps, cp_file, ["step"])
    for col in ("final_accuracy", "final_metric", "final_loss", "compute_steps", "train_step_seconds", "wall_seconds",
                "final_test_accuracy", "final_test_metric"):
        _floats(runs, run_file, col)
    for col in (*probes, *_CP_NUMERIC):
        _floats(cps, cp_file, col)

    _check_runs(runs, run_file, metric)
    _check_checkpoints(cps, cp_file, runs, metric, steps, probes, version)
    _check_every_step_logged(runs, cps, run_file, cp_file, steps, version)
    try:
        costs = read_probe_costs(folder)
    except ValueError as exc:
        raise SweepFormatError(str(exc)) from exc
    sweep = Sweep(folder, manifest, runs, cps, params, probes, steps, costs, metric)
    if require_complete and sweep.missing_runs > 0:
        raise SweepFormatError(f"{run_file}: {sweep.missing_runs} of {manifest.get('runs')} planned runs are missing; "
                               "finish the sweep with `earlyexit sweep SPEC.toml`.")
    shortfall = sweep.probe_shortfalls() if require_complete or require_probes else None
    if shortfall:
        raise SweepFormatError(f"{cp_file}: not complete: {shortfall}. Re-log it with `earlyexit sweep SPEC.toml "
                               "--out NEW_FOLDER`.")
    return sweep


def _check_runs(runs: pd.DataFrame, run_file: Path, metric: str) -> None:
    """Each run once, with a known status, non-negative steps and finals in the metric's range."""
    dup = runs["run_id"].duplicated()
    if dup.any():
        i = int(dup.idxmax())
        raise SweepFormatError(f"{run_file}: line {i + 2}, field run_id: duplicate run {runs.at[i, 'run_id']!r}.")
    for i, row in runs.iterrows():
        where = f"{run_file}: line {i + 2}"
        if row["status"] not in RUN_STATUSES:
            raise SweepFormatError(f"{where}, field status: {row['status']!r} is not one of {list(RUN_STATUSES)}.")
        if row["steps"] < 0:
            raise SweepFormatError(f"{where}, field steps: {row['steps']} is negative.")
        acc = row["final_accuracy"]
        if row["status"] == "completed" and not 0 <= acc <= 1:
            raise SweepFormatError(f"{where}, field final_accuracy: {acc} is not in [0, 1].")
        low, high = METRIC_RANGES[metric]
        if row["status"] == "completed" and not low <= row["final_metric"] <= high:
            raise SweepFormatError(f"{where}, field final_metric: {row['final_metric']} is not in [{low:g}, {high:g}] "
                                   f"({metric}).")


def _check_checkpoints(cps: pd.DataFrame, cp_file: Path, runs: pd.DataFrame, metric: str, steps: list[int],
                       probes: list[str], version: int) -> None:
    """Each (run, step) once, of a known run, at a probe step (or the run's final step), its dev figures in range
    and each probe value finite or NaN with a ``probe_error`` saying why."""
    known = set(runs["run_id"])
    final_step = dict(zip(runs["run_id"], runs["steps"])) if version >= 2 else {}
    dup = cps.duplicated(["run_id", "step"])
    if dup.any():
        i = int(dup.idxmax())
        raise SweepFormatError(f"{cp_file}: line {i + 2}, fields run_id/step: duplicate row for run "
                               f"{cps.at[i, 'run_id']!r} at step {cps.at[i, 'step']}.")
    for i, row in cps.iterrows():
        where = f"{cp_file}: line {i + 2}"
        if row["run_id"] not in known:
            raise SweepFormatError(f"{where}, field run_id: run {row['run_id']!r} has no row in {RUNS} "
                                   "(a run cut off mid-way; `earlyexit sweep` drops such rows when it resumes).")
        if steps and row["step"] not in steps and row["step"] != final_step.get(row["run_id"]):
            raise SweepFormatError(f"{where}, field step: {row['step']} is not a probe step {steps}"
                                   + (" nor the run's final step." if version >= 2 else "."))
        if not math.isnan(row["dev_accuracy"]) and not 0 <= row["dev_accuracy"] <= 1:
            raise SweepFormatError(f"{where}, field dev_accuracy: {row['dev_accuracy']} is not in [0, 1].")
        low, high = METRIC_RANGES[metric]
        if not math.isnan(row["dev_metric"]) and not low <= row["dev_metric"] <= high:
            raise SweepFormatError(f"{where}, field dev_metric: {row['dev_metric']} is not in [{low:g}, {high:g}].")
        has_error = isinstance(row["probe_error"], str) and row["probe_error"] != ""
        for p in probes:
            v = row[p]
            if math.isnan(v) and not has_error:
                raise SweepFormatError(f"{where}, field {p}: NaN without a probe_error saying why.")
            if v == -math.inf:
                raise SweepFormatError(f"{where}, field {p}: -inf is not a valid probe value.")


def _check_every_step_logged(runs: pd.DataFrame, cps: pd.DataFrame, run_file: Path, cp_file: Path,
                             steps: list[int], version: int) -> None:
    """A completed run has a checkpoint row at every probe step up to its length (and, from version 2, its end)."""
    by_run = cps.groupby("run_id")["step"].apply(set).to_dict()
    for i, row in runs.iterrows():
        expected = {s for s in steps if s <= row["steps"]} if row["status"] == "completed" else set()
        if version >= 2 and row["status"] == "completed":
            expected.add(row["steps"])  # the final checkpoint
        missing = sorted(expected - by_run.get(row["run_id"], set()))
        if missing:
            raise SweepFormatError(f"{cp_file}: run {row['run_id']!r} ({run_file} line {i + 2}) has no checkpoint "
                                   f"rows for steps {missing}.")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise SweepFormatError(f"{path}: missing; a sweep folder holds manifest.json, {RUNS} and {CHECKPOINTS}.")
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=["nan", "NaN"], dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SweepFormatError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]}).") from None
    return frame


def _require(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SweepFormatError(f"{path}: missing column(s) {missing}.")


def _integers(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for col in columns:
        _convert(frame, path, col, int, "an integer")


def _floats(frame: pd.DataFrame, path: Path, col: str) -> None:
    """Numbers; an empty cell (or a missing value) is NaN."""
    _convert(frame, path, col, float, "a number", empty=math.nan)


def _convert(frame: pd.DataFrame, path: Path, col: str, kind, what: str, *, empty=None) -> None:
    """Convert column ``col`` to ``kind`` in place; an error names the line, the field and the value."""
    values = []
    for i, v in enumerate(frame[col]):
        if empty is not None and (v is None or (isinstance(v, float) and math.isnan(v)) or v == ""):
            values.append(empty)
            continue
        try:
            values.append(kind(v))
        except (TypeError, ValueError):
            raise SweepFormatError(f"{path}: line {i + 2}, field {col}: {v!r} is not {what}.") from None
    frame[col] = values
