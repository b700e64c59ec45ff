"""Load a sequence classifier and its tokenizer by hub name, local folder, or bundled name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

BUNDLED_PREFIX = "earlyexit:"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def resolve(name: str) -> str:
    """Map ``earlyexit:<asset>`` to the bundled folder; other names pass through."""
    if name.startswith(BUNDLED_PREFIX):
        path = Path(str(resources.files("earlyexit") / "assets" / name[len(BUNDLED_PREFIX):]))
        if not (path / "config.json").exists():
            raise ValueError(f"no bundled model {name!r}; the bundled model is 'earlyexit:tiny-bert'.")
        return str(path)
    path = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or path.exists()) and not (path / "config.json").exists():
        raise ValueError(f"model path {name!r} does not exist or has no config.json; give a folder saved "
                         "with save_pretrained, a hub name such as 'prajjwal1/bert-mini', or 'earlyexit:tiny-bert'.")
    return str(path) if path.exists() else name


def load_tokenizer(name: str):
    """``AutoTokenizer.from_pretrained`` on the resolved name."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name))


def load_model(name: str, num_labels: int, *, seed: int = 0, num_layers: int | None = None,
               hidden_dropout: float | None = None, classifier_dropout: float | None = None):
    """A sequence classifier from ``name``, with its head initialised from ``seed``.

    A folder with a config but no weights (the bundled tiny BERT) is built
    with random initialisation. ``num_layers`` keeps only the first layers of
    a pretrained encoder (the others are never loaded).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve(name)
    overrides = {"num_labels": num_labels}
    if num_layers is not None:
        overrides["num_hidden_layers"] = num_layers
    if hidden_dropout is not None:
        overrides["hidden_dropout_prob"] = hidden_dropout
    if classifier_dropout is not None:
        overrides["classifier_dropout"] = classifier_dropout
    config = AutoConfig.from_pretrained(path, **overrides)
    torch.manual_seed(seed)
    has_weights = not Path(path).is_dir() or any((Path(path) / f).exists() for f in _WEIGHT_FILES)
    if has_weights:
        from transformers.utils import logging

        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # the fresh head is expected, not news
        try:
            return AutoModelForSequenceClassification.from_pretrained(path, config=config)
        finally:
            logging.set_verbosity(verbosity)
    return AutoModelForSequenceClassification.from_config(config)
