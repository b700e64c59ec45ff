"""Training: AdamW fine-tuning of a sequence classifier that calls the probes at checkpoints.

:class:`TrainConfig` (what a run is) is torch-free; the loop and the batches import torch when first
used, so that the analysis side can read a run's settings without the training stack.
"""

from ._config import DEFAULT_PROBE_STEPS, HF_SCHEDULER_NAMES, SCHEDULES, TrainConfig

_LAZY = {"Checkpoint": "_loop", "TrainResult": "_loop", "evaluate": "_loop", "probe_set": "_loop", "train": "_loop",
         "Batcher": "_batches", "collate": "_batches"}

__all__ = ["DEFAULT_PROBE_STEPS", "HF_SCHEDULER_NAMES", "SCHEDULES", "Batcher", "Checkpoint", "TrainConfig",
           "TrainResult", "collate", "evaluate", "probe_set", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
