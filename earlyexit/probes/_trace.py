"""Trace of a symmetric operator from matrix-vector products (Hutch++ style).

The trace splits over an orthonormal basis ``Q`` (rows) and its complement:

    tr(H) = tr(Q H Q^T) + tr((I - P) H (I - P)),   P = Q^T Q.

The first term is exact (it is the trace of the Lanczos tridiagonal matrix,
whose products were already paid for). The second is estimated by Hutchinson
with Rademacher vectors projected onto the complement. Deflating the top
eigendirections removes the outlier eigenvalues that dominate the variance
of plain Hutchinson on neural-network Hessians.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate and its own error bar.

    Attributes:
        value: the estimate of tr(H), in the units of H times the dimension.
        stderr: standard error of the stochastic part (sample standard
            deviation over vectors / sqrt(vectors)); 0 when the estimate is
            exact, NaN when fewer than two vectors were drawn.
        exact_part: tr(Q H Q^T), computed exactly.
        vectors: number of extra matrix-vector products spent.
    """

    value: float
    stderr: float
    exact_part: float
    vectors: int


def rademacher(n: int, generator: torch.Generator, *, dtype: torch.dtype, device) -> torch.Tensor:
    """A vector of n independent +-1 entries drawn from ``generator``."""
    bits = torch.randint(0, 2, (n,), generator=generator, device=generator.device)
    return (bits.to(device=device, dtype=dtype) * 2 - 1)


def deflated_hutchinson(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    basis: torch.Tensor | None,
    exact_part: float,
    *,
    dim: int,
    vectors: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> TraceEstimate:
    """Estimate tr(H) as ``exact_part`` plus Hutchinson on the complement of ``basis``.

    ``basis`` is ``(k, dim)`` with orthonormal rows (or None for plain
    Hutchinson with ``exact_part = 0``). When the rows span the whole space,
    no vectors are drawn and the estimate is exact.
    """
    if vectors < 0:
        raise ValueError(f"vectors must be at least 0, but got {vectors=}.")
    k = 0 if basis is None else basis.shape[0]
    if k >= dim:
        return TraceEstimate(exact_part, 0.0, exact_part, 0)
    samples = []
    for _ in range(vectors):
        z = rademacher(dim, generator, dtype=dtype, device=device)
        if basis is not None and k:
            z = z - basis.T @ (basis @ z)
        samples.append(float(torch.dot(z, hvp(z))))
    if not samples:
        return TraceEstimate(exact_part, math.nan, exact_part, 0)
    mean = math.fsum(samples) / len(samples)
    stderr = (math.sqrt(math.fsum((s - mean) ** 2 for s in samples) / (len(samples) - 1) / len(samples))
              if len(samples) > 1 else math.nan)
    return TraceEstimate(exact_part + mean, stderr, exact_part, len(samples))
