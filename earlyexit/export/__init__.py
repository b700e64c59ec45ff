"""Export: the chosen hyperparameters as JSON, YAML, TrainingArguments, CLI flags, or a script."""

from ._formats import FORMATS, Chosen, chosen_from_study, chosen_from_sweep, hf_training_arguments, render
from ._source import chosen_configs

__all__ = ["FORMATS", "Chosen", "chosen_configs", "chosen_from_study", "chosen_from_sweep", "hf_training_arguments",
           "render"]
