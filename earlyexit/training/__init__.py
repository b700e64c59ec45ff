"""Training: AdamW fine-tuning of a sequence classifier that calls the probes at checkpoints.

:class:`TrainConfig` (what a run is) is torch-free; the loop and the batches import torch when first
used, so that the analysis side can read a run's settings without the training stack.
"""

from .._lazy import lazy_attributes
from ._config import DEFAULT_PROBE_STEPS, HF_SCHEDULER_NAMES, SCHEDULES, TrainConfig, compute_steps, epoch_budget

_LAZY = {"Checkpoint": "_loop", "TrainResult": "_loop", "evaluate": "_loop", "probe_set": "_loop", "train": "_loop",
         "Batcher": "_batches", "collate": "_batches", "device_name": "_device", "resolve_device": "_device",
         "to_device": "_device", "schedule_context": "_schedule", "SampledSchedule": "_schedule"}

__all__ = ["DEFAULT_PROBE_STEPS", "HF_SCHEDULER_NAMES", "SCHEDULES", "Batcher", "Checkpoint", "TrainConfig",
           "TrainResult", "collate", "evaluate", "probe_set", "train", "device_name", "resolve_device", "to_device", "compute_steps", "epoch_budget",
           "schedule_context", "SampledSchedule"]

__getattr__ = lazy_attributes(__name__, _LAZY)
