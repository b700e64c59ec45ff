"""Per-example records as look-ahead predictor features: what a trial's dev predictions say beyond its dev metric.

From format 3 a sweep logs the predicted class of every dev example at every evaluation. Three numbers without
units summarize one evaluation, so that a binary and a 6-class task share a scale:

- ``prediction_entropy``: the entropy of the predicted classes' shares over ln(classes): 0 when every example gets
  one class (a trial on the constant classifier's plateau), 1 when the classes are predicted equally often;
- ``label_shift``: the total variation distance between the predicted classes' shares and the true classes'
  shares: how far the trial is from predicting the classes as often as they occur;
- ``churn``: the share of dev examples whose predicted class changed since the trial's previous evaluation (0 at
  its first): how much the trial is still moving.

They are chosen inside the training folds like the probe features (:func:`~earlyexit.scoring.
choose_probe_features` with ``names=RECORD_FEATURE_NAMES``); ``benchmarks/predictor_features.py --features records``
measures them.
"""

from __future__ import annotations

import math

import numpy as np

RECORD_FEATURE_NAMES: tuple[str, ...] = ("prediction_entropy", "label_shift", "churn")


def record_feature_row(predicted, labels, classes: int, previous=None) -> list[float]:
    """The :data:`RECORD_FEATURE_NAMES` of one evaluation: ``predicted`` and ``labels`` are the dev examples'
    predicted and true class ids (in one order), ``previous`` the trial's predicted ids at its previous evaluation
    (None at its first)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.ndim != 1 or len(labels) == 0:
        raise ValueError(f"predicted {predicted.shape} and labels {labels.shape} must be one class id per dev example")
    if classes < 2:
        raise ValueError(f"classes must be at least 2, not {classes}")
    if min(predicted.min(), labels.min()) < 0 or max(predicted.max(), labels.max()) >= classes:
        raise ValueError(f"class ids must lie in 0..{classes - 1}")
    share = np.bincount(predicted, minlength=classes) / len(predicted)
    truth = np.bincount(labels, minlength=classes) / len(labels)
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(classes))
    shift = float(0.5 * np.abs(share - truth).sum())
    if previous is None:
        churn = 0.0
    else:
        previous = np.asarray(previous)
        if previous.shape != predicted.shape:
            raise ValueError(f"previous {previous.shape} and predicted {predicted.shape} differ in length")
        churn = float((previous != predicted).mean())
    return [entropy, shift, churn]
