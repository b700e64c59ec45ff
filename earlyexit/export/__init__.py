"""Export: the chosen hyperparameters as JSON, YAML, TrainingArguments, CLI flags, or a script."""

from ._formats import FORMATS, Chosen, chosen_from_study, hf_training_arguments, render

__all__ = ["FORMATS", "Chosen", "chosen_from_study", "hf_training_arguments", "render"]
