"""The trace of the Fisher matrix from one gradient pass per batch, with labels the model samples.

For a classifier trained with the batch-mean negative log-likelihood, the (true) Fisher matrix is
``F = mean_i E_{y ~ p(.|x_i)} [grad log p(y|x_i) grad log p(y|x_i)^T]``; for softmax cross-entropy it is
also the Gauss-Newton matrix, the part of the Hessian that stays positive. Its trace costs one
gradient pass per batch instead of the Hessian trace's Hessian-vector products:

replace each example's label by one drawn from the model's own prediction, take the gradient ``g_b``
of the batch-mean loss; then ``n_b |g_b|^2`` is an unbiased estimate of the batch's mean
``tr F_i`` (the per-example gradients are independent with mean zero given x, since
``E_y grad log p(y|x) = 0``, so every cross term vanishes in expectation). The estimate is the mean
over the probe batches, in the loss's units per squared parameter unit (those of the Hessian trace).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

LabelSampler = Callable[[nn.Module, Any, torch.Generator], tuple[Any, int]]
"""``sampler(model, batch, generator) -> (batch with sampled labels, number of examples)``."""


def sample_labels(model: nn.Module, batch: Any, generator: torch.Generator) -> tuple[Any, int]:
    """The default :data:`LabelSampler`: a dict batch with ``labels`` (Hugging Face style), the model's
    output with ``.logits`` (or a tensor of logits); each label drawn from ``softmax(logits)``."""
    if not isinstance(batch, dict) or "labels" not in batch:
        raise ValueError("fisher_trace samples labels from the model: with batches that are not dicts holding "
                         "`labels`, pass label_sampler=(model, batch, generator) -> (batch, n) to measure().")
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        out = model(**inputs)
    logits = getattr(out, "logits", out)
    return {**batch, "labels": draw(logits, generator).to(batch["labels"].device)}, int(logits.shape[0])


class NonFiniteLogits(ValueError):
    """The model's prediction is not finite (a diverged run): there is no distribution to draw from."""


def draw(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One class per row of ``logits``, drawn from its softmax with ``generator`` (on the CPU, so a seed
    draws the same labels on every device). Raises :class:`NonFiniteLogits` for non-finite logits."""
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)
    if not torch.isfinite(probs).all():
        raise NonFiniteLogits("the model's logits are not finite")
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def fisher_trace(gradient: Callable[[Any], torch.Tensor], model: nn.Module, batches: Sequence[Any],
                 sampler: LabelSampler, generator: torch.Generator) -> tuple[float, float]:
    """``(estimate, standard error)`` of ``tr F`` over ``batches``; ``gradient(batch)`` is the flat
    gradient of the batch-mean loss at the current parameters. NaN where the model's prediction is not
    finite (a diverged run; the other probes are still measured)."""
    estimates = []
    for b in batches:
        try:
            sampled, n = sampler(model, b, generator)
        except NonFiniteLogits:
            return math.nan, math.nan
        g = gradient(sampled)
        estimates.append(n * float(torch.dot(g, g)))
    mean = sum(estimates) / len(estimates)
    if len(estimates) < 2:
        return mean, math.nan
    var = sum((e - mean) ** 2 for e in estimates) / (len(estimates) - 1)
    return mean, math.sqrt(var / len(estimates))
