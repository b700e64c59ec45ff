"""Measure a sweep's ``probe_costs.json``: what each probe part costs in training steps of its own model.

It trains (the spec's first config to step 100), so it lives beside the sweep runner; the costs it
writes are read, torch-free, by fit and replay (:class:`earlyexit.sweeps.ProbeCosts`).
"""

from __future__ import annotations

import platform
import statistics

from ..names import GRADIENT_PROBES, HESSIAN_PROBES
from ..sweeps import ProbeCosts
from ._spec import load_spec, with_device
from ._sweep import plan


def measure_probe_costs(spec_path, *, until: int = 100, command: str | None = None, progress=print,
                        device: str | None = None):
    """Measure :class:`earlyexit.sweeps.ProbeCosts` on a spec's model, data and probe set.

    Trains the spec's first sweep config to step ``until``, probing at the
    spec's own probe steps up to there, warm-started from one checkpoint to
    the next as in a run: the whole probe set, the gradient probes alone, and
    the loss alone. Each part's cost is the median of its ``seconds_<part>``
    over the warm checkpoints (all but the first) divided by the median
    training-step time of the same runs.
    """
    import dataclasses

    import torch

    from ..training import train

    spec = with_device(load_spec(spec_path), device)
    first = plan(spec)[0]
    base = spec.config_for(first.params)
    steps = [s for s in base.probe_steps if s <= until]
    if len(steps) < 2:
        raise ValueError(f"{spec_path}: probe costs need at least two probe steps up to step {until} (the first "
                         f"is cold), but the spec probes at {list(base.probe_steps)}.")
    measured: dict[str, list[float]] = {}
    counts: dict[str, list[float]] = {}
    step_times: list[float] = []
    probe_sets = {
        "all": tuple(base.probe_names),
        "gradient": GRADIENT_PROBES,
        "forward": ("loss",),
    }
    for label, names in probe_sets.items():
        config = dataclasses.replace(base, probe_names=names, probe_steps=tuple(steps),
                                     max_steps=steps[-1], max_epochs=None)
        progress(f"{label}: training {steps[-1]} steps, probing at steps {steps}")
        result = train(config)
        step_times.append(result.train_step_seconds)
        for cp in result.checkpoints[1:]:  # the first is cold
            measured.setdefault("dev_eval", []).append(cp.eval_seconds)
            if label == "all":
                for key in ("lanczos_iterations", "hessian_vector_products", "critical_sharpness_forward_passes"):
                    if key in cp.diagnostics:
                        counts.setdefault(key, []).append(cp.diagnostics[key])
            for key, seconds in cp.diagnostics.items():
                if key.startswith("seconds_"):
                    part = key.removeprefix("seconds_")
                    if label == "all" and part == "gradient":
                        part = "gradient_with_graph" if HESSIAN_PROBES & set(names) else "gradient"
                    elif label == "forward":
                        part = "forward"
                    elif label == "gradient" and part != "gradient":
                        continue
                    measured.setdefault(part, []).append(seconds)
    step_s = statistics.median(step_times)
    parts = {p: statistics.median(v) / step_s for p, v in measured.items()}
    provenance = {
        "spec": str(spec_path), "model": base.model, "num_layers": base.num_layers, "task": base.task,
        "config": first.params, "probe_steps": steps,
        "train_step_s": step_s, "threads": torch.get_num_threads(),
        "median_counts": {k: statistics.median(v) for k, v in counts.items()},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "device": result.device,
        "command": command or f"earlyexit bench probes --spec {spec_path} --write",
    }
    return ProbeCosts(parts, provenance)
