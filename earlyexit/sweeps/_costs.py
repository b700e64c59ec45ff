"""What each probe costs at one checkpoint, in training steps of a sweep's own model.

Probes share work: the per-batch gradient pass gives the loss, the gradient
norm and the gradient variance at once; SAM sharpness and critical sharpness
add forward passes on top of that gradient; the Hessian probes need the
gradient pass with its graph kept, then Hessian-vector products. So the cost
of a set of probes is the cost of the parts it needs:

==========================  ===============================================
part                        what it pays for
==========================  ===============================================
``forward``                 the loss alone (one forward pass of the probe set)
``gradient``                the per-batch gradient pass (loss, norm, variance)
``gradient_with_graph``     the same pass keeping the graph (for the Hessian)
``sam``                     SAM's perturbed forward pass
``critical``                the forward-only search for eta_c
``relative_critical``       the same on the second batch set
``lanczos``                 Lanczos's Hessian-vector products (top eigenvalue)
``trace``                   the trace's extra products on top of Lanczos
``fisher``                  the Fisher trace's sampled-label gradient pass
``dev_eval``                one evaluation of the dev split (dev accuracy, loss)
==========================  ===============================================

Figures are medians over a few checkpoints of ``seconds_<part>`` (from
:func:`earlyexit.probes.measure`'s diagnostics) divided by the median
training-step time of the same run, measured by ``earlyexit bench probes
--spec SPEC --write`` on the spec's model and data, and kept in the sweep
folder as ``probe_costs.json``. Counting costs this way, instead of from the
wall time logged during a long sweep, keeps the replay's compute free of
whatever else the machine was doing during the sweep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..names import (CHEAP_PROBES, CONTEXT_NAMES, DEFAULT_PROBES, DEV_METRICS, GRADIENT_PROBES, HESSIAN_PROBES,
                     NEEDS_GRADIENT)

PROBE_COSTS = "probe_costs.json"
PARTS = ("forward", "gradient", "gradient_with_graph", "sam", "critical", "relative_critical", "lanczos", "trace",
         "fisher", "dev_eval")
_GRADIENT_PROBES = NEEDS_GRADIENT
_EXTRA_PART = {"sam_sharpness": "sam", "critical_sharpness": "critical",
               "relative_critical_sharpness": "relative_critical", "fisher_trace": "fisher"}


@dataclass(frozen=True)
class ProbeCosts:
    """Cost of each probe part at one checkpoint, in training steps.

    Attributes:
        parts: ``{part: training steps}`` for the parts of :data:`PARTS` that
            were measured (``forward`` and ``gradient`` always are).
        provenance: how and where they were measured (machine, command, model).
    """

    parts: Mapping[str, float]
    provenance: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown:
            raise ValueError(f"unknown probe-cost part(s) {unknown}; the parts are {list(PARTS)}.")
        missing = [p for p in ("forward", "gradient") if p not in self.parts]
        if missing:
            raise ValueError(f"probe costs lack part(s) {missing}.")
        bad = {p: v for p, v in self.parts.items() if not (isinstance(v, (int, float)) and math.isfinite(v)
                                                           and v >= 0)}
        if bad:
            raise ValueError(f"probe costs must be finite and non-negative training steps, but got {bad}.")

    def of(self, probes: Iterable[str]) -> float:
        """Training steps to measure ``probes`` (names of :data:`earlyexit.probes.PROBE_NAMES`) once.

        ``dev_accuracy`` and ``dev_loss`` cost one dev evaluation
        (``dev_eval``), or nothing where it was not measured (older cost
        files). Unknown names are an error.
        """
        probes = set(probes) - set(CONTEXT_NAMES)  # known without measuring
        dev = self.parts.get("dev_eval", 0.0) if probes & set(DEV_METRICS) else 0.0
        return dev + self._probe_cost({p for p in probes if p not in DEV_METRICS})

    def _probe_cost(self, names: set) -> float:
        known = {"loss", "fisher_trace"} | _GRADIENT_PROBES | HESSIAN_PROBES
        unknown = sorted(names - known)
        if unknown:
            raise ValueError(f"no cost is known for probe(s) {unknown}.")
        if not names:
            return 0.0
        if names & HESSIAN_PROBES:
            # The trace deflates Lanczos's basis: it always pays for Lanczos too.
            needed = ["gradient_with_graph", "lanczos"] + (["trace"] if "hessian_trace" in names else [])
        elif names & _GRADIENT_PROBES:
            needed = ["gradient"]
        else:
            needed = ["forward"]
        needed += [_EXTRA_PART[p] for p in sorted(names) if p in _EXTRA_PART]
        missing = [p for p in needed if p not in self.parts]
        if missing:
            raise ValueError(f"no cost was measured for part(s) {missing} (needed by {sorted(names)}); measure "
                             "them with `earlyexit bench probes --spec SPEC --write` on a spec that probes them.")
        return float(sum(self.parts[p] for p in needed))

    def to_dict(self) -> dict:
        return {"parts": dict(self.parts), "provenance": dict(self.provenance)}


def read_probe_costs(folder: str | Path) -> ProbeCosts | None:
    """The sweep folder's ``probe_costs.json``, or None when it has none."""
    path = Path(folder) / PROBE_COSTS
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return ProbeCosts(raw["parts"], raw.get("provenance", {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid probe-cost file ({exc}).") from exc


def write_probe_costs(folder: str | Path, costs: ProbeCosts) -> Path:
    path = Path(folder) / PROBE_COSTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(costs.to_dict(), indent=2) + "\n")
    return path


def format_costs(costs: ProbeCosts) -> str:
    """The probe costs as a table: each part, then the usual probe sets, in training steps per checkpoint."""
    prov = costs.provenance
    lines = [(f"probe costs on {prov.get('model')} ({prov.get('task')}), one training step "
              f"{prov.get('train_step_s', math.nan):.3f} s, {prov.get('threads')} threads"),
             f"{'part':<22}{'training steps':>16}"]
    lines += [f"{p:<22}{v:>16.2f}" for p, v in costs.parts.items()]
    sets = {"loss only": ["loss"], "gradient probes": list(GRADIENT_PROBES), "no Hessian probes": list(CHEAP_PROBES),
            "all but the trace": [n for n in DEFAULT_PROBES if n != "hessian_trace"],
            "all probes": list(DEFAULT_PROBES), "Fisher trace (opt-in)": ["fisher_trace"],
            "hessian trace alone": ["hessian_trace"]}
    lines.append("")
    for label, names in sets.items():
        try:
            lines.append(f"{label:<22}{costs.of(names):>16.2f}")
        except ValueError:
            lines.append(f"{label:<22}{'not measured':>16}")
    return "\n".join(lines)
