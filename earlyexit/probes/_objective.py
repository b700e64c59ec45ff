"""The probe objective as a pure function of a flat parameter vector.

``L(theta) = (1 / B) * sum_b loss_fn(model_theta, batch_b)``: the mean over
the probe batches of the user's per-batch loss (itself usually a mean over
examples), as a function of the model's trainable parameters only (those
with ``requires_grad``; buffers and frozen parameters are held fixed).
Everything is evaluated through :func:`torch.func.functional_call`, so the
model's own tensors are never written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vjp

LossFn = Callable[[nn.Module, Any], torch.Tensor]


class _LossModule(nn.Module):
    """Wraps ``loss_fn(model, batch)`` as a module so functional_call can drive it."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


class Objective:
    """The mean probe loss over ``batches`` as a function of flat parameters.

    Attributes:
        names: names of the trainable parameters, in the flat order.
        params: the live parameter objects (for the optimizer), same order.
        theta: ``(n,)`` flat copy of their current values.
        dim: n, the number of trainable scalars.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]):
        self._wrapper = _LossModule(model, loss_fn)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no trainable parameters (none with requires_grad=True).")
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self._shapes = [p.shape for p in self.params]
        self._numels = [p.numel() for p in self.params]
        self.theta = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.dim = self.theta.numel()
        self.batches = list(batches)

    # -- flat <-> named -------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        pieces = torch.split(flat, self._numels)
        return {"model." + n: t.view(s) for n, t, s in zip(self.names, pieces, self._shapes)}

    def flatten(self, tensors: Sequence[torch.Tensor] | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(tensors, dict):
            tensors = [tensors["model." + n] for n in self.names]
        return torch.cat([t.reshape(-1) for t in tensors])

    # -- evaluations ----------------------------------------------------
    def _batch_loss(self, flat: torch.Tensor, batch) -> torch.Tensor:
        loss = functional_call(self._wrapper, self.unflatten(flat), (batch,), tie_weights=True, strict=False)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError("loss_fn(model, batch) must return a scalar tensor.")
        return loss.reshape(())

    def loss(self, flat: torch.Tensor, batches: Sequence[Any] | None = None) -> float:
        """Mean loss at ``flat`` over ``batches`` (default: the probe batches); one forward pass."""
        batches = self.batches if batches is None else batches
        with torch.no_grad():
            total = sum(float(self._batch_loss(flat, b)) for b in batches)
        return total / len(batches)

    def gradient_on(self, batch) -> torch.Tensor:
        """The flat gradient at theta of the loss on one ``batch`` (any batch, not only the probe batches)."""
        g, _ = grad_and_value(self._batch_loss)(self.theta, batch)
        return g.detach()

    def gradients(self) -> tuple[float, list[torch.Tensor]]:
        """Loss at theta and each batch's flat gradient (no graph kept)."""
        grads, losses = [], []
        for b in self.batches:
            g, value = grad_and_value(self._batch_loss)(self.theta, b)
            grads.append(g.detach())
            losses.append(float(value))
        return sum(losses) / len(losses), grads

    def gradients_and_hvp(self) -> tuple[float, list[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """Loss, per-batch gradients and the Hessian-vector product of L at theta.

        One forward and one differentiable backward per batch, kept alive so
        that each later product ``H v`` costs only a second backward pass
        (reverse-over-reverse through :func:`torch.func.vjp`).
        """
        pullbacks, grads, losses = [], [], []
        for b in self.batches:
            g, pullback, value = vjp(grad_and_value(lambda t, b=b: self._batch_loss(t, b)), self.theta, has_aux=True)
            grads.append(g.detach())
            pullbacks.append(pullback)
            losses.append(float(value))
        n = len(pullbacks)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            out = None
            for pullback in pullbacks:
                (hv,) = pullback(v)
                out = hv if out is None else out + hv
            return out.detach() / n

        return sum(losses) / n, grads, hvp


@contextlib.contextmanager
def probing_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode, math attention kernel, and an untouched global RNG.

    Puts every submodule in eval mode (dropout off, so L is deterministic)
    and restores each module's own flag afterwards; selects PyTorch's math
    scaled-dot-product-attention kernel, the one with double-backward and
    forward-mode support, without touching the model's config; forks the
    global RNG so nothing the probes draw is visible to the caller.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    flags = [(m, m.training) for m in model.modules()]
    devices = []
    if torch.cuda.is_available():
        devices = list(range(torch.cuda.device_count()))
    try:
        with torch.random.fork_rng(devices=devices), sdpa_kernel([SDPBackend.MATH]):
            model.eval()
            yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def probing(model: nn.Module, loss_fn: LossFn, batches: Sequence[Any]) -> Iterator[Objective]:
    """:func:`probing_mode` for ``model``, yielding the :class:`Objective` of ``loss_fn`` over ``batches``."""
    with probing_mode(model):
        yield Objective(model, loss_fn, batches)
