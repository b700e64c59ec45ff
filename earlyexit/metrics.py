"""The study's metric: what a study maximizes and a sweep logs beside dev accuracy.

Torch-free (scikit-learn only), so that the analysis side can name metrics without the training stack.
"""

from __future__ import annotations

from collections.abc import Sequence

METRICS = ("accuracy", "f1", "macro_f1", "mcc")
"""``accuracy``: fraction correct, in [0, 1]. ``f1``: F1 of class id 1 (binary tasks only), in [0, 1].
``macro_f1``: unweighted mean of the per-class F1, in [0, 1]. ``mcc``: Matthews correlation
coefficient, in [-1, 1] (0 for a constant classifier; CoLA's own metric)."""

METRIC_RANGES = {"accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "macro_f1": (0.0, 1.0), "mcc": (-1.0, 1.0)}


def check_metric(name: str, num_labels: int | None = None) -> None:
    """Raise ``ValueError`` for an unknown metric, or ``f1`` on a task with more than two classes."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {list(METRICS)}.")
    if name == "f1" and num_labels is not None and num_labels != 2:
        raise ValueError(f"metric 'f1' is the F1 of class 1 of a binary task, but this task has {num_labels} "
                         "classes; use 'macro_f1'.")


def majority_share(labels: Sequence[int]) -> float:
    """The accuracy of the constant classifier that predicts the most frequent of ``labels`` (0..1; NaN if none)."""
    counts: dict[int, int] = {}
    for y in labels:
        counts[int(y)] = counts.get(int(y), 0) + 1
    return max(counts.values()) / len(labels) if counts else float("nan")


def metric_value(name: str, labels: Sequence[int], predictions: Sequence[int]) -> float:
    """The metric ``name`` of ``predictions`` against ``labels`` (class ids); see :data:`METRICS`."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    check_metric(name)
    if name == "accuracy":
        return float(accuracy_score(labels, predictions))
    if name == "f1":
        return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0.0))
    if name == "macro_f1":
        return float(f1_score(labels, predictions, average="macro", zero_division=0.0))
    return float(matthews_corrcoef(labels, predictions))
