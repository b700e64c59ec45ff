"""The probes computed the way the seed study did: the baseline the benchmark compares against.

Each quantity on its own: per-batch gradients one by one, a separate forward
and double backward for every Hessian-vector product, 20 power iterations,
10 plain Hutchinson vectors, and a cold exponential search with 4 bisection
steps for the critical step. Same objective as :func:`measure` (eval mode,
mean over the probe batches), so values are comparable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._objective import LossFn, probing
from ._trace import rademacher


def measure_reference(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[Any],
    *,
    names: Sequence[str],
    seed: int = 0,
    power_iterations: int = 20,
    hutchinson_vectors: int = 10,
    sam_rho: float = 0.05,
) -> dict[str, float]:
    """Seed-style probe values by name, plus ``<name>_seconds`` for each."""
    out: dict[str, float] = {}
    generator = torch.Generator().manual_seed(seed)
    with probing(model, loss_fn, batches) as objective:
        theta = objective.theta

        def fresh_hvp(v: torch.Tensor) -> torch.Tensor:
            # A new forward and double backward for every product.
            _, _, hvp = objective.gradients_and_hvp()
            return hvp(v)

        def gradient():
            loss, grads = objective.gradients()
            return loss, grads, torch.stack(grads).mean(0)

        for name in names:
            t0 = time.perf_counter()
            if name == "loss":
                out[name] = objective.loss(theta)
            elif name == "gradient_norm":
                out[name] = float(torch.linalg.vector_norm(gradient()[2]))
            elif name == "gradient_variance":
                _, grads, g = gradient()
                out[name] = float(sum(torch.sum((gb - g) ** 2) for gb in grads) / len(grads))
            elif name == "sam_sharpness":
                loss, _, g = gradient()
                out[name] = objective.loss(theta + sam_rho * g / torch.linalg.vector_norm(g)) - loss
            elif name == "hessian_top_eigenvalue":
                out[name] = power_iteration(fresh_hvp, objective.dim, generator, iterations=power_iterations,
                                            device=theta.device)[0]
            elif name == "hessian_trace":
                samples = []
                for _ in range(hutchinson_vectors):
                    z = rademacher(objective.dim, generator, dtype=theta.dtype, device=theta.device)
                    samples.append(float(torch.dot(z, fresh_hvp(z))))
                out[name] = sum(samples) / len(samples)
            elif name == "critical_sharpness":
                loss, _, g = gradient()
                eta = bisection_critical_step(lambda e: objective.loss(theta - e * g) - loss)
                out[name] = 2.0 / eta if eta > 0 else math.inf
            else:
                raise ValueError(f"the reference has no probe {name!r}.")
            out[name + "_seconds"] = time.perf_counter() - t0
    return out


def power_iteration(hvp, dim: int, generator: torch.Generator, *, iterations: int = 20,
                    rtol: float | None = None, max_iterations: int = 1000,
                    device: torch.device | str | None = None) -> tuple[float, int]:
    """Power iteration from a Gaussian start: (Rayleigh quotient, products used).

    With ``rtol`` it runs until the relative change of the estimate is below
    ``rtol`` (at most ``max_iterations``), otherwise exactly ``iterations``.
    Converges to the eigenvalue of largest magnitude. ``device`` is the operator's (default: the
    generator's).
    """
    # Drawn on the generator's device (the CPU for a seeded torch.Generator(), so a seed gives the same
    # start everywhere), then moved to the operator's device on its first product.
    v = torch.randn(dim, generator=generator, dtype=torch.float32, device=generator.device)
    v = v / torch.linalg.vector_norm(v)
    v = v.to(device=device) if device is not None else v
    value, used = 0.0, 0
    limit = max_iterations if rtol is not None else iterations
    while used < limit:
        hv = hvp(v)
        used += 1
        new = float(torch.dot(v, hv))
        converged = rtol is not None and used > 1 and abs(new - value) <= rtol * abs(new)
        value = new
        v = hv / torch.linalg.vector_norm(hv)
        if converged:
            break
    return value, used


def bisection_critical_step(phi, *, eta0: float = 1e-3, bisections: int = 4) -> float:
    """Cold exponential search (doubling or halving from eta0), then plain bisection."""
    lo, hi = 0.0, None
    eta = eta0
    for _ in range(60):
        if phi(eta) > 0:
            hi = eta
            if lo > 0 or eta < 1e-12:
                break
            eta /= 2
        else:
            lo = eta
            if hi is not None:
                break
            eta *= 2
    if hi is None:
        return math.inf
    for _ in range(bisections):
        mid = (lo + hi) / 2
        if phi(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2
