"""Lanczos iteration on a symmetric operator given only as a matrix-vector product.

Pure linear algebra on flat vectors: nothing here knows about models. The
operator is a callable ``hvp(v) -> H @ v``; the Krylov basis and the Ritz
vector live in the dtype and on the device of the start vector. Only the small
``k x k`` tridiagonal matrix is solved on the host in float64 (exact, cheap,
and available on every backend, MPS included); its eigenvector is moved to the
basis' device before it touches the basis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LanczosResult:
    """What ``k`` Lanczos steps learned about the operator ``H``.

    Attributes:
        basis: ``(k, n)`` orthonormal rows ``Q`` spanning the Krylov space.
        tridiagonal: ``(k, k)`` matrix ``T = Q H Q^T`` (float64).
        top_eigenvalue: the largest Ritz value, a lower bound on the largest
            eigenvalue of ``H``, in the units of ``H``.
        top_eigenvector: ``(n,)`` unit Ritz vector of ``top_eigenvalue``.
        residual: ``|H y - theta y|`` for that Ritz pair, an upper bound on
            the distance from ``top_eigenvalue`` to an eigenvalue of ``H``.
        iterations: number of matrix-vector products spent.
        invariant: True when the Krylov space became invariant (breakdown),
            in which case ``T`` holds exact eigenvalues of ``H``.
    """

    basis: torch.Tensor
    tridiagonal: torch.Tensor
    top_eigenvalue: float
    top_eigenvector: torch.Tensor
    residual: float
    iterations: int
    invariant: bool


def lanczos(
    hvp: MatVec,
    start: torch.Tensor,
    *,
    max_iter: int,
    min_iter: int = 1,
    rtol: float = 1e-3,
) -> LanczosResult:
    """Run Lanczos with full reorthogonalisation from ``start``.

    Stops after ``max_iter`` products, or earlier (but not before
    ``min_iter``) once the top Ritz pair's residual is below
    ``rtol * |top_eigenvalue|``. The residual bounds the eigenvalue error to
    first order; the actual error is usually of the order residual**2 / gap.
    """
    if start.ndim != 1:
        raise ValueError(f"start must be a flat vector, got shape {tuple(start.shape)}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, but got {max_iter=}.")
    if not 1 <= min_iter <= max_iter:
        raise ValueError(f"min_iter must be in [1, max_iter], but got {min_iter=}, {max_iter=}.")
    norm = torch.linalg.vector_norm(start)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("start must be a finite, non-zero vector.")
    max_iter = min(max_iter, start.numel())

    basis = [start / norm]
    alphas: list[float] = []
    betas: list[float] = []
    invariant = False
    theta, y_small, residual = 0.0, None, math.inf
    while True:
        q = basis[-1]
        w = hvp(q)
        alpha = float(torch.dot(w, q))
        alphas.append(alpha)
        Q = torch.stack(basis)
        # Full reorthogonalisation, twice ("twice is enough"): w -= Q^T (Q w).
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        beta = float(torch.linalg.vector_norm(w))
        T = _tridiagonal(alphas, betas)
        evals, evecs = torch.linalg.eigh(T)
        theta, y_small = float(evals[-1]), evecs[:, -1]
        residual = abs(beta * float(y_small[-1]))
        k = len(alphas)
        scale = max(abs(theta), torch.finfo(start.dtype).tiny)
        if beta <= 1e-10 * max(scale, abs(alpha)):
            invariant = True
            residual = 0.0
            break
        if k >= max_iter or (k >= min_iter and residual <= rtol * scale):
            break
        betas.append(beta)
        basis.append(w / beta)

    Q = torch.stack(basis)
    vec = y_small.to(device=Q.device, dtype=Q.dtype) @ Q
    vec = vec / torch.linalg.vector_norm(vec)
    return LanczosResult(
        basis=Q,
        tridiagonal=_tridiagonal(alphas, betas),
        top_eigenvalue=theta,
        top_eigenvector=vec,
        residual=residual,
        iterations=len(alphas),
        invariant=invariant,
    )


def _tridiagonal(alphas: list[float], betas: list[float]) -> torch.Tensor:
    """``T`` on the host in float64, whatever the basis' device (see the module docstring)."""
    k = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64, device="cpu"))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64, device="cpu")
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return T
