"""A synthetic logged sweep with a planted signal, for testing the scorer and the replay.

Final accuracy is driven by a latent quality q per config. The step-50 and
later Hessian trace reveal q (noisy); early dev accuracy is misleading for
some configs (fast starters that plateau). One config per seed diverges.
"""

import math

import numpy as np

from earlyexit.sweeps._format import append_run, write_manifest

PROBES = ["loss", "gradient_norm", "hessian_trace"]
STEPS = [0, 10, 50, 100, 200]


def write_synthetic_sweep(folder, *, configs=8, seeds=(0, 1, 2), max_steps=1000, seed=0, diverge=True):
    rng = np.random.default_rng(seed)
    quality = np.linspace(0.0, 1.0, configs)
    rng.shuffle(quality)
    fast_start = rng.random(configs) < 0.4
    write_manifest(folder, {"name": folder.name, "task": "sst2", "data": None, "model": "synthetic",
                            "protocol": {}, "params": ["learning_rate", "seed"], "grid": {}, "search": {},
                            "runs": configs * len(seeds), "probe_steps": STEPS, "probe_names": PROBES,
                            "machine": {}, "command": "synthetic", "packages": {}, "spec": ""},
                   version=1)  # the first format: also what keeps the replay's pinned figures reading old sweeps
    n = 0
    for s in seeds:
        for c in range(configs):
            q = quality[c]
            diverged = diverge and c == configs - 1
            final = math.nan if diverged else 0.80 + 0.05 * q + rng.normal(0, 0.002)
            steps = 120 if diverged else max_steps
            cps = []
            cum = 0.0
            for step in STEPS:
                if step > steps:
                    break
                t = step / 200
                early = 0.5 + (0.3 if fast_start[c] else 0.15 * q) * min(1.0, t * 2) + rng.normal(0, 0.01)
                cum += 3.0  # probe overhead in training steps per checkpoint
                cps.append({"run_id": f"r{n:03d}", "step": step, "loss": 0.7 - 0.2 * t * (0.5 + q) + rng.normal(0, 0.01),
                            "gradient_norm": 1.0 + rng.normal(0, 0.1),
                            "hessian_trace": 10 - 8 * q * min(1.0, step / 50) + rng.normal(0, 0.1),
                            "dev_accuracy": min(1.0, early), "dev_loss": 0.6, "train_loss": 0.6,
                            "wall_seconds": float(step), "compute_steps": step + cum, "probe_seconds": 0.1,
                            "probe_error": ""})
            append_run(folder, {"run_id": f"r{n:03d}", "config_id": f"c{c:02d}", "seed": s,
                                "learning_rate": 1e-5 * (c + 1), "status": "diverged" if diverged else "completed",
                                "final_accuracy": final, "final_loss": math.nan, "steps": steps,
                                "compute_steps": steps + cum, "train_step_seconds": 0.1, "wall_seconds": 1.0},
                       cps, param_names=["learning_rate", "seed"], probe_names=PROBES, version=1)
            n += 1
    return folder
