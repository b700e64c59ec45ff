"""The catalogue of logged sweeps: find them by folder or glob, and summarize one row per sweep.

``earlyexit sweeps list studies/`` prints it; ``replay`` and ``fit`` take the
same folders and globs (:func:`find_sweeps`) wherever they take sweeps.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path

from ._ceiling import ceiling_summary, seed_ceiling
from ._format import MANIFEST, RUNS, SweepFormatError, read_manifest
from ._load import PROBE_COVERAGE_REQUIRED, Sweep, load


def find_sweeps(paths: list[str] | tuple[str, ...]) -> list[Path]:
    """Sweep folders named by ``paths``: a sweep folder itself, a folder holding sweep folders, or a glob.

    Order: as given, each folder's sweeps by name; duplicates once. Raises
    :class:`SweepFormatError` for a path that names no sweep.
    """
    found: list[Path] = []
    for raw in paths:
        matches = sorted(glob.glob(raw)) if glob.has_magic(raw) else [raw]
        hits: list[Path] = []
        for m in matches:
            p = Path(m)
            if (p / MANIFEST).is_file():
                hits.append(p)
            elif p.is_dir():
                hits += sorted(c for c in p.iterdir() if (c / MANIFEST).is_file())
        if not hits:
            raise SweepFormatError(f"{raw}: no sweep folder there (a sweep folder holds {MANIFEST}; give a sweep "
                                   "folder, a folder of sweep folders, or a glob such as 'studies/*-wide24').")
        found += [h for h in hits if h not in found]
    return found


def catalogue_row(sweep: Sweep) -> dict:
    """One sweep's row: what it is, how far it is, and its plain figures in its own metric.

    ``median_final``/``best_final`` are over completed runs; ``noise_ceiling``
    (where two seeds share configs and every planned run is logged) is the seed-to-seed ceiling's mean
    Spearman and regret in points (100 x the metric); ``probe_costs`` says
    whether ``probe_costs.json`` is there; ``probes`` counts the probes the manifest promises and
    ``probe_coverage`` is the lowest share of checkpoint rows on which one of them holds a value.
    """
    s = sweep.summary()
    protocol = sweep.manifest.get("protocol", {})
    # The ceiling of a sweep still being logged would rank a few configs of a partial seed: wait for all.
    ceiling = ceiling_summary(seed_ceiling(sweep)) if len(s["seeds"]) > 1 and sweep.missing_runs <= 0 else None
    budget = sweep.manifest.get("budget_steps") or protocol.get("max_steps")
    return {
        "name": s["name"], "path": s["path"], "task": s["task"], "metric": s["metric"],
        "model": Path(str(s["model"])).name, "layers": protocol.get("num_layers"),
        "configs": s["configs"], "seeds": len(s["seeds"]), "runs": s["runs"], "planned": s["planned_runs"],
        "budget_steps": int(budget) if budget is not None else None,
        "max_epochs": protocol.get("max_epochs"), "train_examples": sweep.manifest.get("train_examples"),
        "median_final": _finite(s["median_final"]), "best_final": _finite(s["best_final"]),
        "noise_ceiling": None if ceiling is None or not ceiling["seeds"] else
        {"spearman": _finite(ceiling["spearman"]), "regret_points": _finite(100 * ceiling["regret"])},
        "probe_costs": sweep.probe_costs is not None, "format_version": s["format_version"],
        "probes": len(s["probes"]), "probe_coverage": min(s["probe_coverage"].values(), default=None),
    }


def catalogue(paths) -> list[dict]:
    """:func:`catalogue_row` of every sweep :func:`find_sweeps` finds; a sweep that does not load is an error,
    but for one just started (a manifest, no run logged yet), which is a row of zeros."""
    return [_started_row(p) if not (p / RUNS).exists() else catalogue_row(load(p)) for p in find_sweeps(paths)]


def _started_row(folder: Path) -> dict:
    manifest = read_manifest(folder)
    protocol = manifest.get("protocol", {})
    return {"name": manifest.get("name") or folder.name, "path": str(folder), "task": manifest.get("task"),
            "metric": manifest.get("metric", "accuracy"), "model": Path(str(manifest.get("model"))).name,
            "layers": protocol.get("num_layers"), "configs": 0, "seeds": 0, "runs": 0,
            "planned": int(manifest.get("runs", 0)), "budget_steps": manifest.get("budget_steps"),
            "max_epochs": protocol.get("max_epochs"), "train_examples": manifest.get("train_examples"),
            "median_final": None, "best_final": None, "noise_ceiling": None,
            "probe_costs": (folder / "probe_costs.json").exists(), "format_version": manifest.get("format_version"),
            "probes": len(manifest.get("probe_names", [])), "probe_coverage": None}


def format_catalogue(rows: list[dict], *, markdown: bool = False) -> str:
    """The catalogue as a plain-text (or Markdown) table, with a line of totals."""
    head = ["sweep", "task", "metric", "model", "configs x seeds", "runs", "budget (steps)", "median final",
            "best final", "noise ceiling (rho / pts)", "probes logged", "probe costs"]
    body = []
    for r in rows:
        ceiling = r["noise_ceiling"]
        body.append([r["name"], r["task"], r["metric"], f"{r['model']} x{r['layers'] or '?'} layers",
                     f"{r['configs']} x {r['seeds']}", f"{r['runs']} of {r['planned']}",
                     str(r["budget_steps"] or "?") + (f" ({r['max_epochs']:g} ep)" if r["max_epochs"] else ""),
                     _fmt(r["median_final"]), _fmt(r["best_final"]),
                     f"{ceiling['spearman']:.2f} / {ceiling['regret_points']:.2f}" if ceiling else "-",
                     _probes_logged(r), "yes" if r["probe_costs"] else "no"])
    tasks = sorted({r["task"] for r in rows})
    total = (f"{len(rows)} sweeps over {len(tasks)} tasks ({', '.join(tasks)}); "
             f"{sum(r['runs'] for r in rows)} of {sum(r['planned'] for r in rows)} planned runs logged")
    short = [r["name"] for r in rows if r.get("probe_coverage") is not None
             and r["probe_coverage"] < PROBE_COVERAGE_REQUIRED]
    if short:
        total += (f"; {len(short)} of {len(rows)} sweeps miss promised probes ({', '.join(short)}: "
                  f"`earlyexit sweeps validate` says which and why)")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines + ["", total])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body]]
    return "\n".join(lines + [total])


def _probes_logged(row: dict) -> str:
    """``8 at 100%``: the promised probes and the lowest share of checkpoint rows any of them holds;
    ``MISSING`` where that share is under what a complete sweep needs."""
    if not row.get("probes"):
        return "none"
    share = row.get("probe_coverage")
    if share is None:
        return f"{row['probes']}, none yet"
    flag = " MISSING" if share < PROBE_COVERAGE_REQUIRED else ""
    return f"{row['probes']} at {share:.0%}{flag}"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _finite(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
