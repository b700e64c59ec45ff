"""``measure``: every probe of one model at one point, sharing the work between them."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..names import DEFAULT_PROBES, HESSIAN_PROBES
from ._critical import critical_step
from ._fisher import LabelSampler, fisher_trace, sample_labels
from ._lanczos import lanczos
from ._objective import LossFn, probing
from ._trace import deflated_hutchinson, rademacher
from ._update import update_direction

from ..names import NEEDS_GRADIENT as _NEEDS_GRADIENT
from ..names import PROBE_NAMES


@dataclass(frozen=True)
class ProbeSettings:
    """Accuracy and cost knobs of :func:`measure`.

    Attributes:
        sam_rho: radius of the SAM perturbation, in parameter units.
        lanczos_max_iter: Hessian-vector products for the top eigenvalue from
            a random start (a cold checkpoint).
        lanczos_warm_iter: the same when warm-started from the previous
            checkpoint's eigenvector.
        lanczos_rtol: stop Lanczos early once the top Ritz residual is below
            this fraction of the eigenvalue.
        trace_vectors: extra Hutchinson vectors on the complement of the
            Lanczos basis (Hutch++); 0 reports the Krylov part only.
        critical_rtol: relative width of the final bracket on eta_c.
        critical_max_passes: cap on forward passes per critical search.
    """

    sam_rho: float = 0.05
    lanczos_max_iter: int = 8
    lanczos_warm_iter: int = 5
    lanczos_rtol: float = 1e-2
    trace_vectors: int = 6
    critical_rtol: float = 0.03
    critical_max_passes: int = 30

    def __post_init__(self):
        if not self.sam_rho > 0:
            raise ValueError(f"sam_rho must be positive, but got {self.sam_rho=}.")
        for name in ("lanczos_max_iter", "lanczos_warm_iter", "critical_max_passes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, but got {getattr(self, name)}.")
        if self.trace_vectors < 0:
            raise ValueError(f"trace_vectors must be at least 0, but got {self.trace_vectors=}.")
        if not 0 < self.critical_rtol < 1:
            raise ValueError(f"critical_rtol must be in (0, 1), but got {self.critical_rtol=}.")


@dataclass(frozen=True)
class WarmStart:
    """What one checkpoint hands to the next to make it cheaper.

    Attributes:
        eigenvector: flat unit top eigenvector of the Hessian, or None.
        eta_c: critical step of ``critical_sharpness``, or None.
        relative_eta_c: critical step of ``relative_critical_sharpness``.
    """

    eigenvector: torch.Tensor | None = None
    eta_c: float | None = None
    relative_eta_c: float | None = None


class ProbeResult(dict):
    """Probe values by name (a ``dict[str, float]``), plus two attributes.

    Attributes:
        diagnostics: cost and convergence figures (forward passes,
            Hessian-vector products, Lanczos residual, trace standard error,
            ``seconds`` in all and ``seconds_<part>`` for each part measured:
            ``gradient`` (the per-batch gradient pass that gives the loss,
            gradient norm and variance), ``lanczos`` (the top eigenvalue's
            products), ``trace`` (the trace's extra products),
            ``sam``, ``critical``, ``relative_critical``, ``fisher``), by name.
        warm_start: a :class:`WarmStart` for the next checkpoint of the run.
    """

    def __init__(self, values: dict[str, float], diagnostics: dict[str, float], warm_start: WarmStart):
        super().__init__(values)
        self.diagnostics = diagnostics
        self.warm_start = warm_start


def measure(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
    reference_batches: Sequence[Any] | None = None,
    warm_start: WarmStart | None = None,
    settings: ProbeSettings | None = None,
    label_sampler: LabelSampler | None = None,
) -> ProbeResult:
    """Measure the loss-landscape probes of ``model`` at its current parameters.

    Every probe is of ``L(theta) = mean_b loss_fn(model, batches[b])`` over
    the trainable parameters, in eval mode (dropout off, so L is a
    deterministic function), with PyTorch's math attention kernel:

    - ``loss``: L, in the loss's units (nats for cross-entropy).
    - ``gradient_norm``: ``|g|``, the 2-norm of ``g = grad L``.
    - ``gradient_variance``: ``mean_b |g_b - g|^2``, the spread of the
      per-batch gradients around their mean (gradient noise).
    - ``sam_sharpness``: ``L(theta + rho g/|g|) - L(theta)``, rho = 0.05.
    - ``hessian_top_eigenvalue``: the largest eigenvalue of the Hessian of L
      (Lanczos; loss per squared parameter unit).
    - ``hessian_trace``: the trace of the Hessian of L (Hutch++: the exact
      trace on the Lanczos basis plus Hutchinson on its complement).
    - ``critical_sharpness``: ``2 / eta_c``, eta_c the smallest step along
      the optimizer's next update ``u`` (at learning rate 1; ``-g`` without
      an optimizer) at which L rises. In inverse learning-rate units: the
      run's learning rate times this number is 2 at the edge of stability.
    - ``relative_critical_sharpness``: the same with the loss on
      ``reference_batches`` (for example held-out data) along the same ``u``.
    - ``fisher_trace``: the trace of the Fisher (Gauss-Newton) matrix, from
      one gradient pass per batch with labels drawn from the model's own
      prediction (unbiased; see :mod:`earlyexit.probes._fisher`); in the
      Hessian trace's units. Assumes ``loss_fn`` is the batch-mean negative
      log-likelihood of the batch's labels (cross-entropy).

    The call leaves no trace: parameters, buffers, ``.grad``, the train/eval
    flag of every module, the global RNG and the optimizer state are as
    before. Random draws (Lanczos start, Hutchinson vectors) come from a
    generator seeded with ``seed``.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``.
        batches: the probe batches (at least one; two for the variance).
        names: probes to measure, default :data:`earlyexit.names.DEFAULT_PROBES`
            (and the relative one when ``reference_batches`` is given; the
            Fisher trace only when named).
        optimizer: the optimizer whose next update defines ``u``.
        seed: seed for the probes' own random draws.
        reference_batches: the second batch set of the relative probe.
        warm_start: the previous checkpoint's :attr:`ProbeResult.warm_start`.
        settings: accuracy and cost knobs (:class:`ProbeSettings`).
        label_sampler: how ``fisher_trace`` draws labels from the model
            (default :func:`earlyexit.probes._fisher.sample_labels`: dict
            batches with ``labels``, outputs with ``.logits``).

    Returns:
        A :class:`ProbeResult`: the values, diagnostics and warm start.

    One function on purpose (longer than the house's 80 lines): the probes share one gradient pass, one
    Hessian-vector closure and one seeded generator, in a fixed order that the warm start and the seeded
    draws depend on; reading that order in one place is what keeps two measurements comparable.
    """
    names = _validate_names(names, reference_batches)
    batches = list(batches)
    if not batches:
        raise ValueError("batches must hold at least one batch.")
    if "gradient_variance" in names and len(batches) < 2:
        raise ValueError("gradient_variance needs at least two batches, but got 1.")
    if reference_batches is not None and not list(reference_batches):
        raise ValueError("reference_batches must hold at least one batch when given.")
    settings = settings or ProbeSettings()
    warm_start = warm_start or WarmStart()

    started = time.perf_counter()
    values: dict[str, float] = {}
    diag: dict[str, float] = {"forward_passes": 0.0, "hessian_vector_products": 0.0}
    eigenvector, eta_c, rel_eta_c = warm_start.eigenvector, warm_start.eta_c, warm_start.relative_eta_c
    generator = torch.Generator().manual_seed(seed)

    with probing(model, loss_fn, batches) as objective:
        theta = objective.theta
        need_grad = bool(_NEEDS_GRADIENT & set(names))
        need_hessian = bool(HESSIAN_PROBES & set(names))
        grads = None
        clock = _Clock(diag, {p.device for p in model.parameters() if p.device.type == "cuda"})
        if need_hessian:
            with clock("gradient"):
                loss, grads, hvp = objective.gradients_and_hvp()
            eigenvector = _curvature(objective, hvp, names, settings, generator, eigenvector, values, diag, clock)
            del hvp
        elif need_grad:
            with clock("gradient"):
                loss, grads = objective.gradients()
        else:
            with clock("gradient"):
                loss = objective.loss(theta)
            diag["forward_passes"] += 1
        values["loss"] = loss
        if grads is not None:
            g = torch.stack(grads).mean(0)
            g_norm = float(torch.linalg.vector_norm(g))
            if "gradient_norm" in names:
                values["gradient_norm"] = g_norm
            if "gradient_variance" in names:
                values["gradient_variance"] = float(sum(torch.sum((gb - g) ** 2) for gb in grads) / len(grads))
            if "sam_sharpness" in names:
                with clock("sam"):
                    values["sam_sharpness"] = 0.0 if g_norm == 0 else (
                        objective.loss(theta + settings.sam_rho * g / g_norm) - loss)
                diag["forward_passes"] += 1
            if {"critical_sharpness", "relative_critical_sharpness"} & set(names):
                if optimizer is None:
                    u = -g
                else:
                    u = objective.flatten(update_direction(optimizer, objective.params, objective.unflatten(g).values()))
                diag["update_norm"] = float(torch.linalg.vector_norm(u))
                if "critical_sharpness" in names:
                    with clock("critical"):
                        found = critical_step(
                            lambda eta: objective.loss(theta + eta * u) - loss,
                            eta0=eta_c or _cold_eta(u, g, values), slope=float(torch.dot(g, u)),
                            rtol=settings.critical_rtol, max_passes=settings.critical_max_passes)
                    values["critical_sharpness"] = found.sharpness
                    diag["critical_sharpness_forward_passes"] = found.forward_passes
                    diag["forward_passes"] += found.forward_passes
                    eta_c = found.eta if 0 < found.eta < math.inf else eta_c
                if "relative_critical_sharpness" in names:
                    ref = list(reference_batches)
                    with clock("relative_critical"):
                        ref_loss = objective.loss(theta, ref)
                        found = critical_step(
                            lambda eta: objective.loss(theta + eta * u, ref) - ref_loss,
                            eta0=rel_eta_c or eta_c or _cold_eta(u, g, values),
                            rtol=settings.critical_rtol, max_passes=settings.critical_max_passes)
                    values["relative_critical_sharpness"] = found.sharpness
                    diag["relative_critical_sharpness_forward_passes"] = found.forward_passes + 1
                    diag["forward_passes"] += found.forward_passes + 1
                    rel_eta_c = found.eta if 0 < found.eta < math.inf else rel_eta_c
        if "fisher_trace" in names:
            with clock("fisher"):
                values["fisher_trace"], diag["fisher_trace_stderr"] = fisher_trace(
                    objective.gradient_on, model, batches, label_sampler or sample_labels, generator)
    diag["seconds"] = time.perf_counter() - started
    ordered = {n: values[n] for n in PROBE_NAMES if n in names}
    return ProbeResult(ordered, diag, WarmStart(eigenvector, eta_c, rel_eta_c))


def _wait_for(devices) -> None:
    """Wait for the kernels queued on ``devices`` (the GPUs the model lives on), so that a part's time is its
    work, not its launch."""
    for device in devices:
        torch.cuda.synchronize(device)


class _Clock:
    """Adds the wall time of each ``with clock(part):`` block to ``diag["seconds_<part>"]``; on a GPU, the time
    its kernels took: the queues of ``devices`` (the model's GPUs; none on a CPU) are drained before and after."""

    def __init__(self, diag: dict[str, float], devices=()):
        self._diag = diag
        self._devices = tuple(devices)

    @contextlib.contextmanager
    def __call__(self, part: str):
        _wait_for(self._devices)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _wait_for(self._devices)
            key = f"seconds_{part}"
            self._diag[key] = self._diag.get(key, 0.0) + time.perf_counter() - t0


def _validate_names(names, reference_batches) -> tuple[str, ...]:
    if names is None:
        chosen = [*DEFAULT_PROBES, *(["relative_critical_sharpness"] if reference_batches is not None else [])]
        return tuple(n for n in PROBE_NAMES if n in chosen)
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in PROBE_NAMES]
    if unknown:
        raise ValueError(f"unknown probe name(s) {unknown}; known probes are {list(PROBE_NAMES)}.")
    if "relative_critical_sharpness" in names and reference_batches is None:
        raise ValueError("relative_critical_sharpness needs reference_batches (the second batch set).")
    return tuple(dict.fromkeys(names))


def _curvature(objective, hvp, names, settings, generator, eigenvector, values, diag, clock):
    """Lanczos for the top eigenvalue, then Hutch++ on its basis for the trace."""
    n = objective.dim
    theta = objective.theta
    warm = eigenvector is not None and eigenvector.numel() == n
    start = eigenvector.to(theta) if warm else rademacher(n, generator, dtype=theta.dtype, device=theta.device)
    max_iter = settings.lanczos_warm_iter if warm else settings.lanczos_max_iter
    with clock("lanczos"):
        result = lanczos(hvp, start, max_iter=max_iter, rtol=settings.lanczos_rtol)
    diag["hessian_vector_products"] += result.iterations
    diag["lanczos_iterations"] = result.iterations
    diag["lanczos_residual"] = result.residual
    diag["lanczos_warm"] = float(warm)
    if "hessian_top_eigenvalue" in names:
        values["hessian_top_eigenvalue"] = result.top_eigenvalue
    if "hessian_trace" in names:
        with clock("trace"):
            estimate = deflated_hutchinson(
                hvp, result.basis, float(torch.trace(result.tridiagonal)), dim=n,
                vectors=settings.trace_vectors, generator=generator, dtype=theta.dtype, device=theta.device)
        values["hessian_trace"] = estimate.value
        diag["hessian_trace_stderr"] = estimate.stderr
        diag["hessian_vector_products"] += estimate.vectors
    return result.top_eigenvector.detach().clone()


def _cold_eta(u: torch.Tensor, g: torch.Tensor, values: dict[str, float]) -> float:
    """First critical step to try without a warm start.

    With the top eigenvalue known, the quadratic model's lower bound
    ``2 (-g.u) / (lambda_max |u|^2)``; otherwise the step that moves the
    parameters by 1e-3 in norm.
    """
    u_sq = float(torch.dot(u, u))
    if u_sq == 0:
        return 1e-3
    lam = values.get("hessian_top_eigenvalue")
    slope = -float(torch.dot(g, u))
    if lam is not None and lam > 0 and slope > 0:
        return 2 * slope / (lam * u_sq)
    return 1e-3 / math.sqrt(u_sq)
