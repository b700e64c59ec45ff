"""Per-example dev evidence of a logged sweep: which dev examples each run got right at each evaluation.

From format version 3 a sweep logs, for every dev evaluation, the predicted
class of every dev example (``dev_predictions.csv``) and the true classes in
its manifest (``dev_labels``). A paired comparison of two runs at a step reads
these. Earlier sweeps have no such record: :func:`load_dev_records` returns
None for them, and a caller falls back on the value-and-size approximation
(:mod:`earlyexit.pruning._resolution`), saying which one it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._format import DEV_PREDICTIONS, SweepFormatError, decode_classes


@dataclass(frozen=True)
class DevRecords:
    """The dev split's true classes and each (run, step)'s predicted classes, both in the dev split's order.

    Attributes:
        labels: true class id of each dev example (int16, one per example).
        predictions: ``(run_id, step) -> int16 array`` of predicted class ids.
    """

    labels: np.ndarray
    predictions: dict[tuple[str, int], np.ndarray]

    def correct(self, run_id: str, step: int) -> np.ndarray:
        """Whether each dev example was classified right by ``run_id`` at ``step`` (bool array)."""
        return self.predictions[(run_id, int(step))] == self.labels

    def __contains__(self, key) -> bool:
        return (key[0], int(key[1])) in self.predictions


def load_dev_records(sweep) -> DevRecords | None:
    """The sweep's per-example dev records, or None where it has none (format 1-2); errors name file and line."""
    folder = Path(sweep.path)
    labels_text = sweep.manifest.get("dev_labels")
    path = folder / DEV_PREDICTIONS
    if not labels_text or not path.exists():
        return None
    labels = np.asarray(decode_classes(labels_text), dtype=np.int16)
    frame = pd.read_csv(path, dtype={"run_id": str, "step": int, "predictions": str}, keep_default_na=False)
    predictions = {}
    for i, (run_id, step, text) in enumerate(zip(frame["run_id"], frame["step"], frame["predictions"])):
        try:
            values = np.asarray(decode_classes(text), dtype=np.int16)
        except ValueError as exc:
            raise SweepFormatError(f"{path}: line {i + 2}, field predictions: {exc}.") from None
        if len(values) != len(labels):
            raise SweepFormatError(f"{path}: line {i + 2}, field predictions: {len(values)} classes for "
                                   f"{len(labels)} dev examples.")
        predictions[(run_id, int(step))] = values
    return DevRecords(labels, predictions)
