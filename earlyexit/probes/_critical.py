"""The critical step size along a direction, found with forward passes only.

Given ``phi(eta) = L(theta + eta * u) - L(theta)``, the critical step
``eta_c`` is the smallest ``eta > 0`` with ``phi(eta) > 0``: the learning rate
at which the update ``u`` stops decreasing the loss. Critical sharpness is
``2 / eta_c``; on a quadratic with Hessian ``H`` and gradient ``g`` it equals
``u^T H u / (-g^T u)`` (for ``u = -g``: the curvature along the gradient).

The search works on ``psi(eta) = phi(eta) / eta``, which is linear in
``eta`` on a quadratic, so secant steps land on the root at once there:

1. bracketing: from a warm start ``eta0`` (the previous ``eta_c``), grow by
   secant extrapolation (at least doubling) or halve until
   ``psi(lo) <= 0 < psi(hi)``; when the slope ``psi(0) = g^T u`` is known it
   anchors the lower end at 0 for free;
2. refinement: Illinois-modified regula falsi (a bisection that uses the
   function values) until the bracket is narrower than ``rtol * hi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CriticalStep:
    """Result of :func:`critical_step`.

    Attributes:
        eta: the critical step size (in units of the direction ``u``: a
            learning rate when ``u`` is the update at learning rate 1); 0 when
            the loss rises at any step (``u`` is not a descent direction),
            ``inf`` when no rise was found within ``max_eta``.
        lower, upper: final bracket, ``phi(lower) <= 0 < phi(upper)``.
        forward_passes: number of evaluations of ``phi``.
    """

    eta: float
    lower: float
    upper: float
    forward_passes: int

    @property
    def sharpness(self) -> float:
        """``2 / eta`` in inverse learning-rate units (inf when eta is 0)."""
        if self.eta == 0:
            return math.inf
        return 2.0 / self.eta


def critical_step(
    phi: Callable[[float], float],
    *,
    eta0: float,
    slope: float | None = None,
    rtol: float = 0.02,
    max_passes: int = 40,
    min_eta: float = 1e-12,
    max_eta: float = 1e12,
) -> CriticalStep:
    """Find the critical step of ``phi`` (see the module docstring).

    Args:
        phi: ``eta -> L(theta + eta u) - L(theta)``; one call is one forward
            pass over the probe batches.
        eta0: first step to try (> 0), typically the previous ``eta_c``.
        slope: ``phi'(0) = g^T u`` when known (costs no pass here). A slope
            >= 0 means the loss rises immediately: ``eta = 0`` with no pass.
        rtol: stop when ``(upper - lower) <= rtol * upper``.
        max_passes: hard cap on evaluations of ``phi``.
    """
    if not (eta0 > 0 and math.isfinite(eta0)):
        raise ValueError(f"eta0 must be a positive finite number, but got {eta0=}.")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), but got {rtol=}.")
    if slope is not None and slope >= 0:
        return CriticalStep(0.0, 0.0, 0.0, 0)

    psi = _Psi(phi)
    bracket = _bracket(psi, eta0, slope, max_passes, min_eta, max_eta)
    if isinstance(bracket, CriticalStep):
        return bracket
    return _refine(psi, *bracket, rtol, max_passes)


class _Psi:
    """``eta -> phi(eta) / eta``, counting its forward passes; a non-finite loss counts as a rise (the step is
    past critical)."""

    def __init__(self, phi: Callable[[float], float]):
        self.phi, self.passes = phi, 0

    def __call__(self, eta: float) -> float:
        self.passes += 1
        value = self.phi(eta)
        return value / eta if math.isfinite(value) else math.inf


def _bracket(psi: _Psi, eta0: float, slope: float | None, max_passes: int, min_eta: float,
             max_eta: float) -> CriticalStep | tuple[float, float, float, float]:
    """Points ``(lo, psi(lo), hi, psi(hi))`` with ``psi(lo) <= 0 < psi(hi)``, by halving from ``eta0`` while
    psi is positive and growing (secant-extrapolated) while it is not; or the answer where there is none."""
    lo, psi_lo = (0.0, slope) if slope is not None else (None, None)
    hi, psi_hi = None, None
    eta = eta0
    while psi.passes < max_passes:
        value = psi(eta)
        if value > 0:
            hi, psi_hi = eta, value
            if lo is not None:
                break
            if eta / 2 < min_eta:
                return CriticalStep(0.0, 0.0, eta, psi.passes)
            eta = eta / 2
        else:
            prev_lo, prev_psi = lo, psi_lo
            lo, psi_lo = eta, value
            if hi is not None:
                break
            if eta * 2 > max_eta:
                return CriticalStep(math.inf, eta, math.inf, psi.passes)
            guess = 2 * eta
            if prev_lo is not None and prev_psi is not None and value > prev_psi:
                # Secant extrapolation of psi to its root, 10% past it so the
                # next point lands on the far side; at least a doubling.
                root = eta - value * (eta - prev_lo) / (value - prev_psi)
                guess = max(guess, min(1.1 * root, 64 * eta))
            eta = guess
    if hi is None or lo is None:
        eta = hi if hi is not None else math.inf
        return CriticalStep(eta, lo or 0.0, hi if hi is not None else math.inf, psi.passes)
    return lo, psi_lo, hi, psi_hi


def _refine(psi: _Psi, lo: float, psi_lo: float, hi: float, psi_hi: float, rtol: float,
            max_passes: int) -> CriticalStep:
    """Shrink the bracket to ``rtol`` by Illinois-modified regula falsi: the secant uses weights that halve at
    the end that stayed put twice, the bracket keeps true values."""
    w_lo, w_hi = psi_lo, psi_hi
    side = 0
    while psi.passes < max_passes and hi - lo > rtol * hi:
        width = hi - lo
        point = lo + width / 2
        if math.isfinite(w_hi) and w_hi != w_lo:
            point = lo - w_lo * width / (w_hi - w_lo)
        # Stay a little inside the bracket so it always shrinks, and far
        # enough from the ends that an exact secant point closes it next.
        margin = min(max(0.05 * width, 0.4 * rtol * hi), 0.5 * width)
        point = min(max(point, lo + margin), hi - margin)
        value = psi(point)
        if value > 0:
            hi, psi_hi, w_hi = point, value, value
            if side == -1:
                w_lo /= 2
            side = -1
        else:
            lo, psi_lo, w_lo = point, value, value
            if side == 1 and math.isfinite(w_hi):
                w_hi /= 2
            side = 1
    if math.isfinite(psi_hi) and psi_hi != psi_lo:
        eta_c = min(max(lo - psi_lo * (hi - lo) / (psi_hi - psi_lo), lo), hi)
    else:
        eta_c = (lo + hi) / 2
    return CriticalStep(eta_c, lo, hi, psi.passes)
