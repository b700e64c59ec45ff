"""Load a sequence classifier and its tokenizer by hub name, local folder, or bundled name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from .names import BUNDLED_PREFIX
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


def used_token_ids(tokenizer, texts, *, max_length: int, batch: int = 2048) -> list[int]:
    """Sorted token ids that ``texts`` use (special tokens included)."""
    used = set(tokenizer.all_special_ids)
    for k in range(0, len(texts), batch):
        for ids in tokenizer(texts[k:k + batch], truncation=True, max_length=max_length)["input_ids"]:
            used.update(ids)
    return sorted(used)


def shrink_vocabulary(model, used_ids: list[int]) -> torch.Tensor:
    """Keep only the rows ``used_ids`` of the word-embedding matrix; return the id map.

    An exact reduction: rows no input ever selects get no gradient and never
    affect the output, so training and every probe are unchanged (AdamW's
    decoupled decay of unused rows is invisible to the loss). Feed inputs
    through the returned map: ``new_id = id_map[old_id]`` (-1 for dropped ids,
    which then fail loudly in the embedding lookup).
    """
    emb = model.get_input_embeddings()
    index = torch.tensor(used_ids, dtype=torch.long)
    new = torch.nn.Embedding(len(used_ids), emb.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(emb.weight[index])
    model.set_input_embeddings(new)
    model.config.vocab_size = len(used_ids)
    id_map = torch.full((emb.num_embeddings,), -1, dtype=torch.long)
    id_map[index] = torch.arange(len(used_ids))
    return id_map
