"""Where a run trains and in what precision: device names resolved, described, and the autocast context."""

from __future__ import annotations

import contextlib
import platform

import torch



def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``; a device that is not there is a ``ValueError`` saying what is."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError("device 'mps' asked for, but this machine has no MPS device; use 'auto' or 'cpu'.")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device here "
                             f"(torch {torch.__version__}); use 'auto' or 'cpu'.")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA devices.")
        return device
    raise ValueError(f"unknown device {name!r}; use one of auto, cpu, cuda, cuda:N, mps.")


def device_name(device: torch.device) -> str:
    """What a manifest or a trial records: the GPU's model for CUDA (``cuda:0 NVIDIA H200``), else the kind."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        return f"cpu {platform.machine()}".strip()
    return device.type


def autocast(device: torch.device, precision: str):
    """The training step's autocast context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    """A gradient scaler for fp16 (None otherwise: bf16 has float32's range)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def to_device(batch: dict, device: torch.device) -> dict:
    """A batch's tensors on ``device`` (a no-op on the CPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}
