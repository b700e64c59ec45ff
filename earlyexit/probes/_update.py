"""The update an optimizer would apply next, computed without applying it."""

from __future__ import annotations

import copy

import torch

Tensors = list[torch.Tensor]
"""One tensor per parameter, in the parameters' order."""


def update_direction(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], grads: Tensors) -> Tensors:
    """Return ``u`` such that the optimizer's next step at learning rate 1 is ``theta + u``.

    Adam and AdamW (without amsgrad) and SGD are computed in closed form from
    the optimizer state; any other optimizer goes through
    :func:`simulated_update_direction`, which is exact but copies the state.
    """
    if len(params) != len(grads):
        raise ValueError(f"params and grads differ in length: {len(params)} != {len(grads)}.")
    closed = _closed_form(optimizer, params, grads)
    return closed if closed is not None else simulated_update_direction(optimizer, params, grads)


def _closed_form(optimizer, params, grads) -> list[torch.Tensor] | None:
    group_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            group_of[p] = group
    is_adam = isinstance(optimizer, torch.optim.Adam)
    is_sgd = type(optimizer) is torch.optim.SGD
    if not (is_adam or is_sgd):
        return None
    out = []
    with torch.no_grad():
        for p, g in zip(params, grads):
            group = group_of.get(p)
            if group is None:
                out.append(torch.zeros_like(p))
                continue
            if group.get("maximize") or group.get("amsgrad") or group.get("differentiable"):
                return None
            g = g.detach().to(p.dtype)
            theta = p.detach()
            state = optimizer.state.get(p, {})
            wd = float(group["weight_decay"])
            if is_adam:
                beta1, beta2 = (float(b) for b in group["betas"])
                decoupled = group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
                if wd and not decoupled:
                    g = g + wd * theta
                step = float(state["step"]) + 1 if "step" in state else 1.0
                m = state["exp_avg"] * beta1 + (1 - beta1) * g if "exp_avg" in state else (1 - beta1) * g
                v = (state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g if "exp_avg_sq" in state
                     else (1 - beta2) * g * g)
                m_hat = m / (1 - beta1**step)
                denom = (v / (1 - beta2**step)).sqrt() + float(group["eps"])
                u = -m_hat / denom
                if wd and decoupled:
                    u = u - wd * theta
            else:
                if wd:
                    g = g + wd * theta
                mu = float(group["momentum"])
                if mu:
                    buf = state.get("momentum_buffer")
                    buf = g.clone() if buf is None else buf * mu + (1 - float(group["dampening"])) * g
                    g = g + mu * buf if group["nesterov"] else buf
                u = -g
            out.append(u)
    return out


def simulated_update_direction(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter],
                               grads: Tensors) -> Tensors:
    """The next update at learning rate 1 of any ``torch.optim`` optimizer, by simulation.

    Sets each parameter's ``.grad`` to ``grads``, every group's learning rate
    to 1, runs ``optimizer.step()`` and reads the change, then restores the
    parameters, their ``.grad``, the learning rates and the optimizer state
    (from a deep copy). Parameters the optimizer does not hold get ``u = 0``.
    """
    if len(params) != len(grads):
        raise ValueError(f"params and grads differ in length: {len(params)} != {len(grads)}.")
    saved_state = copy.deepcopy(optimizer.state_dict())
    saved_lrs = [group["lr"] for group in optimizer.param_groups]
    saved_data = [p.detach().clone() for p in params]
    saved_grads = [p.grad for p in params]
    try:
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.grad = g.detach().clone().to(p.dtype)
            for group in optimizer.param_groups:
                group["lr"] = torch.ones_like(group["lr"]) if torch.is_tensor(group["lr"]) else 1.0
            optimizer.step()
            return [p.detach() - old for p, old in zip(params, saved_data)]  # p unchanged if not held
    finally:
        with torch.no_grad():
            for p, old, g in zip(params, saved_data, saved_grads):
                p.copy_(old)
                p.grad = g
        optimizer.load_state_dict(saved_state)
        for group, lr in zip(optimizer.param_groups, saved_lrs):
            group["lr"] = lr
