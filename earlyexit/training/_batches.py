"""Tokenised, dynamically padded batches, optionally grouped by length."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def collate(tokenizer, rows: Sequence[tuple[str, str | None, int]], max_length: int,
            id_map: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Tokenise ``rows`` and pad to the longest in the batch (dynamic padding).

    ``id_map`` (from :func:`earlyexit.models.shrink_vocabulary`) renumbers
    token ids into a reduced embedding matrix.
    """
    a = [r[0] for r in rows]
    b = [r[1] for r in rows] if rows and rows[0][1] is not None else None
    enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    if id_map is not None:
        enc["input_ids"] = id_map[enc["input_ids"]]
    enc["labels"] = torch.tensor([r[2] for r in rows], dtype=torch.long)
    return dict(enc)


class Batcher:
    """Endless shuffled training batches, reproducible from a seed.

    With ``group_by_length``, each epoch's shuffled order is cut into
    mega-batches of ``50 * batch_size`` examples sorted by length (as
    transformers' ``group_by_length`` does), so a batch pads to similar
    lengths; the batches themselves are then shuffled.
    """

    def __init__(self, tokenizer, rows, *, batch_size: int, seed: int, max_length: int = 128,
                 group_by_length: bool = False, id_map: torch.Tensor | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, but got {batch_size=}.")
        if not rows:
            raise ValueError("no training rows.")
        self.tokenizer, self.rows, self.batch_size = tokenizer, list(rows), batch_size
        self.max_length, self.group_by_length, self.id_map = max_length, group_by_length, id_map
        self.generator = torch.Generator().manual_seed(seed)
        self._lengths = None
        self._queue: list[list[int]] = []

    def steps_per_epoch(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def _epoch(self) -> list[list[int]]:
        order = torch.randperm(len(self.rows), generator=self.generator).tolist()
        if self.group_by_length:
            if self._lengths is None:
                self._lengths = [len(r[0]) + len(r[1] or "") for r in self.rows]
            mega = 50 * self.batch_size
            order = [i for k in range(0, len(order), mega)
                     for i in sorted(order[k:k + mega], key=lambda j: -self._lengths[j])]
        batches = [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]
        if self.group_by_length:
            perm = torch.randperm(len(batches), generator=self.generator).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def state_dict(self) -> dict:
        """Where the batches stand: the generator's state and the current epoch's batches still to come."""
        return {"generator": self.generator.get_state(), "queue": [list(b) for b in self._queue]}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`: the same batches follow, in the same order."""
        self.generator.set_state(state["generator"])
        self._queue = [list(b) for b in state["queue"]]

    def next(self) -> dict[str, torch.Tensor]:
        if not self._queue:
            self._queue = self._epoch()
        idx = self._queue.pop(0)
        return collate(self.tokenizer, [self.rows[i] for i in idx], self.max_length, self.id_map)
