"""Training: AdamW fine-tuning of a sequence classifier that calls the probes at checkpoints."""

from ._config import DEFAULT_PROBE_STEPS, HF_SCHEDULER_NAMES, SCHEDULES, TrainConfig
from ._loop import Checkpoint, TrainResult, evaluate, probe_set, train

__all__ = ["DEFAULT_PROBE_STEPS", "HF_SCHEDULER_NAMES", "SCHEDULES", "Checkpoint", "TrainConfig", "TrainResult", "evaluate",
           "probe_set", "train"]
