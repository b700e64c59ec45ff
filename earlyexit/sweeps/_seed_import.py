"""Import the seed study's result files (a JSON list of per-run dicts) as a sweep folder."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ._format import append_run, write_manifest

#: The seed code's field names -> ours.
PROBE_ALIASES = {
    "loss": "loss",
    "gradient_norm": "gradient_norm",
    "grad_norm": "gradient_norm",
    "gradient_variance": "gradient_variance",
    "grad_variance": "gradient_variance",
    "sam_sharpness": "sam_sharpness",
    "hutchinson_trace": "hessian_trace",
    "hessian_trace": "hessian_trace",
    "top_eigenvalue": "hessian_top_eigenvalue",
    "hessian_top_eigenvalue": "hessian_top_eigenvalue",
    "critical_sharpness": "critical_sharpness",
}
PARAM_ALIASES = {"lr": "learning_rate", "learning_rate": "learning_rate", "warmup_ratio": "warmup_ratio",
                 "weight_decay": "weight_decay"}
_STEP_FIELD = re.compile(r"^(?:step_?(\d+)_(.+)|(.+?)_(?:at_)?step_?(\d+))$")


def import_seed_results(source: str | Path, folder: str | Path, *, step: int = 0, task: str = "sst2",
                        model: str = "prajjwal1/bert-mini") -> int:
    """Convert the seed's JSON results into a sweep folder; return the number of runs.

    Each dict needs ``lr`` (or ``learning_rate``), ``warmup_ratio``,
    ``weight_decay``, ``seed`` and ``val_accuracy``. Probe fields are either
    plain (``gradient_norm``: measured at ``step``) or carry their step
    (``step400_hutchinson_trace``, ``hutchinson_trace_step400``). Raises
    ``ValueError`` naming the entry and the field.
    """
    source, folder = Path(source), Path(folder)
    try:
        entries = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: cannot read a JSON list of runs ({exc}).") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{source}: expected a non-empty JSON list of run dicts.")
    if (folder / "runs.csv").exists():
        raise ValueError(f"{folder}: already holds a sweep; import into a new folder.")
    parsed, probes, steps = [], set(), set()
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not a JSON object.")
        params = {}
        for key, ours in PARAM_ALIASES.items():
            if key in entry:
                params[ours] = _number(entry[key], where, key)
        missing = [p for p in ("learning_rate", "warmup_ratio", "weight_decay") if p not in params]
        for field in ("seed", "val_accuracy"):
            if field not in entry:
                missing.append(field)
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}.")
        acc = _number(entry["val_accuracy"], where, "val_accuracy")
        if not 0 <= acc <= 1:
            raise ValueError(f"{where}: field val_accuracy {acc} is not in [0, 1].")
        values: dict[int, dict[str, float]] = {}
        for key, value in entry.items():
            name, at = PROBE_ALIASES.get(key), step
            if name is None:
                m = _STEP_FIELD.match(key)
                if m:
                    at = int(m.group(1) or m.group(4))
                    name = PROBE_ALIASES.get(m.group(2) or m.group(3))
            if name is not None:
                values.setdefault(at, {})[name] = _number(value, where, key)
                probes.add(name)
                steps.add(at)
        parsed.append((params, int(entry["seed"]), acc, values))
    probe_names = sorted(probes)
    configs: dict[tuple, str] = {}
    write_manifest(folder, {
        "name": folder.name, "task": task, "data": None, "model": model, "protocol": {"imported_from": str(source)},
        "params": ["learning_rate", "seed", "warmup_ratio", "weight_decay"], "grid": {}, "search": {},
        "runs": len(parsed), "probe_steps": sorted(steps), "probe_names": probe_names,
        "machine": {}, "command": f"earlyexit sweeps import-seed {source}", "packages": {}, "spec": "",
    })
    for n, (params, seed, acc, values) in enumerate(parsed):
        key = tuple(sorted(params.items()))
        config_id = configs.setdefault(key, f"c{len(configs):02d}")
        run_id = f"r{n:03d}"
        cps = [{"run_id": run_id, "step": s, **{p: values[s].get(p, math.nan) for p in probe_names},
                "dev_accuracy": math.nan, "dev_metric": math.nan, "dev_loss": math.nan, "train_loss": math.nan, "wall_seconds": math.nan,
                "compute_steps": float(s), "probe_seconds": math.nan,
                "probe_error": "" if all(p in values[s] for p in probe_names) else "not logged by the seed code"}
               for s in sorted(values)]
        run = {"run_id": run_id, "config_id": config_id, "seed": seed, **params, "status": "completed",
               "final_accuracy": acc, "final_metric": acc, "final_loss": math.nan, "steps": max(steps | {0}),
               "compute_steps": math.nan, "train_step_seconds": math.nan, "wall_seconds": math.nan}
        append_run(folder, run, cps, param_names=["learning_rate", "seed", "warmup_ratio", "weight_decay"],
                   probe_names=probe_names)
    return len(parsed)


def _number(value, where, field) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: field {field} must be a number, but got {value!r}.")
    return float(value)
