"""The reporting protocol: what a trial tells the study at a step, and how a pruner reads it back.

One module for every writer and every reader. The study runner (``earlyexit run``), the Trainer callback
(``earlyexit.hf.ProbeCallback``), the replay of a logged sweep and a user's own Optuna objective all write
through :func:`record` (or :func:`report`, which also calls ``trial.report``); the pruners read through
:func:`reading`, :func:`budget` and :func:`dev_size`. Depends on Optuna's public trial API, numpy and
:mod:`earlyexit.names` only.

What is written (Optuna user attributes; the names are in :mod:`earlyexit.names`):

==============================  =========  ===================================================================
key                             on         what
==============================  =========  ===================================================================
``dev_metric@{step}``           trial      the dev metric at the step (what ``trial.report`` also gets)
``dev_predictions@{step}``      trial      the predicted class of every dev example, one character each
``dev_loss@{step}``             trial      the dev loss (nats)
``warming_up@{step}``           trial      whether the learning rate is still before its peak at the step
``lr_progress@{step}``          trial      the share (0..1) of the learning-rate schedule spent by the step
``earlyexit:max_steps``         trial      the trial's own budget in optimizer steps
``earlyexit:warmup_steps``      trial      its warmup in steps
``earlyexit:learning_rate``     trial      its peak learning rate
``earlyexit:dev_size``          trial      examples in the dev set (from the predictions, labels or given)
``earlyexit:dev_labels``        study      the dev labels, one character each (written once, by the first
                                           trial that reports them)
==============================  =========  ===================================================================

Nothing missing fails a trial: a pruner that lacks what it needs says so once (a warning) and judges with
less (no pairing without predictions, no pace without the warmup) or not at all (no dev size). A report that
cannot be read (a value that is not a number, predictions of the wrong length, a step that goes backwards)
is skipped or trimmed with one warning naming the trial and the step, and the study goes on.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .names import (DEV_LOSS_AT, DEV_METRIC_AT, DEV_PREDICTIONS_AT, DEV_SIZE, LR_PROGRESS_AT, MAX_STEPS,
                    PEAK_LEARNING_RATE, STUDY_BUDGET, STUDY_DEV_LABELS, WARMING_UP_AT, WARMUP_RATIO, WARMUP_STEPS, at)

CLASS_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
"""One character per class id in a class record (more classes: ``.``-separated integers)."""

REASON_ATTR = "earlyexit:pruned_reason"
"""The system attribute a pruner writes its reason under (the runner copies it to ``pruned_reason``)."""


class ReportWarning(UserWarning):
    """A report that was skipped or trimmed, or a pruner that judges with less than it could."""


_warned: set[str] = set()
_last_step: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trial -> the last step it recorded


def warn_once(key: str, message: str) -> None:
    """Issue ``message`` as a :class:`ReportWarning` the first time ``key`` is seen in this process."""
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, ReportWarning, stacklevel=3)


def encode_classes(class_ids: Iterable[int]) -> str:
    """Class ids as one character each (``0``-``9``, ``a``-``z``): a dev split's labels or one model's predictions.

    Up to 36 classes; more are written as ``.``-separated integers (with a trailing ``.`` for a single id).
    """
    ids = [int(c) for c in class_ids]
    if ids and (min(ids) < 0 or max(ids) >= len(CLASS_CHARS)):
        return ".".join(str(c) for c in ids) + ("." if len(ids) == 1 else "")
    return "".join(CLASS_CHARS[c] for c in ids)


def decode_classes(text: str) -> list[int]:
    """The class ids :func:`encode_classes` wrote."""
    if "." in text:
        return [int(c) for c in text.split(".") if c != ""]
    try:
        return [CLASS_CHARS.index(c) for c in text]
    except ValueError:
        raise ValueError(f"not a class record: {text[:40]!r}") from None


def _number(x: Any) -> float | None:
    """``x`` as a float where it is a real number (numpy and torch scalars included), else None."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return None
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return None


def _class_ids(x: Any) -> list[int] | None:
    """Predictions or labels as a list of class ids: a sequence or array of ints, or a 2-D array of scores
    (its argmax per row); None where it is neither."""
    if x is None:
        return None
    if isinstance(x, str):
        try:
            return decode_classes(x)
        except ValueError:
            return None
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError):  # ragged lists
        return None
    if arr.ndim == 2:
        arr = arr.argmax(axis=1)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        if arr.ndim == 1 and np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) \
                and np.all(arr == np.round(arr)):
            arr = arr.astype(int)
        else:
            return None
    return [int(v) for v in arr]


def record(trial, step: int, value: float | None = None, *, predictions=None, labels=None,
           dev_loss: float | None = None, warmup_steps: int | None = None, max_steps: int | None = None,
           lr_progress: float | None = None, dev_size: int | None = None,
           learning_rate: float | None = None) -> bool:
    """Write what a pruner reads about ``trial`` at ``step`` (see the module docstring), without reporting.

    Returns False where the step cannot be recorded (a step that is not a non-negative integer, or that
    goes back before one already reported), with one warning; True otherwise. Parts that cannot be read
    (predictions of the wrong length, a loss that is not a number) are left out with one warning each.
    """
    where = f"trial {trial.number} at step {step!r}"
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        warn_once(f"step:{trial.number}:{step!r}",
                  f"{where}: the step must be a non-negative integer; the report is skipped.")
        return False
    step = int(step)
    try:
        last = _last_step.get(trial)
    except TypeError:  # an object that cannot be weakly referenced: no order check
        last = None
    if last is not None and step < last:
        warn_once(f"back:{id(trial)}:{step}",
                  f"{where}: steps went backwards (step {last} was already reported); the report is skipped.")
        return False
    try:
        _last_step[trial] = step
    except TypeError:
        pass
    attrs: dict[str, Any] = {}
    v = _number(value)
    if v is not None:
        attrs[at(DEV_METRIC_AT, step)] = v if math.isfinite(v) else str(v)
    preds = _class_ids(predictions)
    if predictions is not None and preds is None:
        warn_once(f"preds:{trial.number}", f"{where}: predictions must be class ids (or per-class scores); "
                                           "left out, so this trial is compared without pairing.")
    truth = _class_ids(labels)
    if labels is not None and truth is None:
        warn_once(f"labels:{trial.number}", f"{where}: labels must be class ids; left out.")
    if preds is not None and truth is not None and len(preds) != len(truth):
        warn_once(f"len:{trial.number}:{step}", f"{where}: {len(preds)} predictions for {len(truth)} labels; the "
                                                "predictions are left out, so this trial is compared without pairing.")
        preds = None
    if preds is not None:
        attrs[at(DEV_PREDICTIONS_AT, step)] = encode_classes(preds)
    size = len(truth) if truth is not None else len(preds) if preds is not None else _number(dev_size)
    if size is not None and math.isfinite(size) and size >= 1:
        attrs[DEV_SIZE] = int(size)
    loss = _number(dev_loss)
    if dev_loss is not None and loss is None:
        warn_once(f"loss:{trial.number}", f"{where}: dev_loss must be a number; left out.")
    elif loss is not None:
        attrs[at(DEV_LOSS_AT, step)] = loss if math.isfinite(loss) else str(loss)
    if max_steps is not None:
        budget_steps = _number(max_steps)
        if budget_steps is None or not math.isfinite(budget_steps) or budget_steps < 1:
            warn_once(f"max:{trial.number}", f"{where}: max_steps must be a positive integer; left out.")
        else:
            attrs[MAX_STEPS] = int(budget_steps)
    if warmup_steps is not None:
        w = _number(warmup_steps)
        if w is None or not math.isfinite(w) or w < 0:
            warn_once(f"warm:{trial.number}", f"{where}: warmup_steps must be a non-negative integer; left out.")
        else:
            attrs[WARMUP_STEPS] = int(w)
            attrs[at(WARMING_UP_AT, step)] = step < int(w)
    p = _number(lr_progress)
    if p is not None and math.isfinite(p):
        attrs[at(LR_PROGRESS_AT, step)] = p
    lr = _number(learning_rate)
    if lr is not None and lr > 0:
        attrs[PEAK_LEARNING_RATE] = lr
    for key, val in attrs.items():
        trial.set_user_attr(key, val)
    if truth is not None:
        _study_labels(trial, truth)
    return True


def report(trial, step: int, value, **kwargs) -> bool:
    """:func:`record`, then ``trial.report(value, step)``: the one call a plain Optuna objective makes.

    ``value`` is the dev metric (higher is better). Keyword arguments as :func:`record`: ``predictions`` (each
    dev example's predicted class, or per-class scores) and ``labels`` pair trials on the same examples and
    give the dev size; ``warmup_steps`` and ``max_steps`` let the pruner judge a trial at its own pace and at
    the rungs of its own budget. Returns False where the report was skipped (a value that is not a number, a
    step that goes backwards), with one warning naming the trial and the step; then call ``should_prune``
    as usual (it says False for a skipped step).
    """
    v = _number(value)
    if v is None:
        warn_once(f"value:{trial.number}:{step!r}", f"trial {trial.number} at step {step!r}: the value "
                                                    f"{value!r} is not a number; the report is skipped.")
        return False
    if not record(trial, step, v, **kwargs):
        return False
    trial.report(v, int(step))
    return True


def _study_labels(trial, labels: Sequence[int]) -> None:
    study = getattr(trial, "study", None)
    if study is None:
        return
    text = encode_classes(labels)
    current = study.user_attrs.get(STUDY_DEV_LABELS)
    if current is None:
        study.set_user_attr(STUDY_DEV_LABELS, text)
    elif current != text:
        warn_once(f"labels-differ:{study.study_name}",
                  f"trial {trial.number}: its dev labels differ from the study's; its predictions are not paired "
                  "with the other trials'.")


# -- the pruner's reason: Optuna has no public way for a pruner to write on the trial it judges (it gets a
# FrozenTrial) nor for an objective to read a system attribute, so these two use its storage directly,
# here and nowhere else.


def set_pruned_reason(study, trial, reason: str) -> None:
    """Store why ``trial`` (the ``FrozenTrial`` a pruner judges) is pruned, for the objective to read."""
    study._storage.set_trial_system_attr(trial._trial_id, REASON_ATTR, reason)


def pruned_reason(trial, default: str) -> str:
    """The reason a pruner stored for ``trial`` (a live ``optuna.Trial``), else ``default``."""
    frozen = trial.study._storage.get_trial(trial._trial_id)
    return str(frozen.system_attrs.get(REASON_ATTR, default))


# -- the readers' side ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One trial's dev measurement at one rung (what the resolution rule compares).

    Attributes:
        value: the dev metric (accuracy in [0, 1], MCC in [-1, 1], ...).
        predictions: predicted class id of each dev example (the per-example record), or None.
        warming_up: the trial's learning rate has not yet reached its peak at this step.
        progress: the fraction (0..1) of the trial's summed learning-rate schedule spent by this step (NaN if
            unknown): what "comparable progress" compares with ``ResolutionRule(progress_match=True)``.
    """

    value: float
    predictions: np.ndarray | None = None
    warming_up: bool = False
    progress: float = math.nan


def reading(trial, step: int, labels: np.ndarray | None) -> Reading:
    """What ``trial`` (a ``FrozenTrial``) recorded at ``step``: the dev metric (else the reported value), its
    predictions where they pair with ``labels``, whether it was warming up, and its schedule progress."""
    a = trial.user_attrs
    value = _number(a.get(at(DEV_METRIC_AT, step), trial.intermediate_values.get(step)))
    preds = a.get(at(DEV_PREDICTIONS_AT, step)) if labels is not None else None
    preds = np.asarray(decode_classes(preds), dtype=np.int16) if preds else None
    if preds is not None and len(preds) != len(labels):
        preds = None
    progress = _number(a.get(at(LR_PROGRESS_AT, step)))
    return Reading(value if value is not None else math.nan, preds, bool(a.get(at(WARMING_UP_AT, step), False)),
                   progress if progress is not None else math.nan)


def budget(trial, default: int | None = None) -> int | None:
    """The trial's own budget in steps (``earlyexit:max_steps``), else ``default``."""
    b = _number(trial.user_attrs.get(MAX_STEPS))
    return int(b) if b is not None and math.isfinite(b) and b >= 1 else default


def study_budget(study) -> int | None:
    """The study's budget in steps, where ``earlyexit run`` (or a user) set it."""
    b = _number(study.user_attrs.get(STUDY_BUDGET))
    return int(b) if b is not None and math.isfinite(b) and b >= 1 else None


def dev_size(trial, labels: np.ndarray | None) -> int | None:
    """Examples in the dev set: the study's labels, else what the trial recorded."""
    if labels is not None:
        return len(labels)
    n = _number(trial.user_attrs.get(DEV_SIZE))
    return int(n) if n is not None and math.isfinite(n) and n >= 3 else None


def warmup_steps(max_steps: int, warmup_ratio: float) -> int:
    """The warmup length in steps of a ``max_steps``-step run, as the training loop rounds it."""
    return int(round(float(warmup_ratio) * max_steps))


def warming_up(step: int, max_steps: int, warmup_ratio: float) -> bool:
    """Whether a run with linear warmup over ``warmup_ratio`` of ``max_steps`` is still before its peak at ``step``."""
    return step < warmup_steps(max_steps, warmup_ratio)


# -- a reading in the task's own units (what the look-ahead predictor reads) ---------------------------------

FEATURES = ("headroom_share", "budget_share", "lr_progress", "warmup_done", "log10_learning_rate",
            "relative_dev_loss")
"""What one reading is, for the predictor (see the module docstring)."""
MIN_HEADROOM = 0.02
"""The headroom ``1 - c`` is floored here, so that a task whose constant classifier is nearly perfect has a scale."""


def headroom(constant: float) -> float:
    """The task's headroom over its constant classifier, in metric units (metrics are at most 1)."""
    return max(1.0 - constant, MIN_HEADROOM)


def lookahead_row(*, dev_metric: float, constant: float, lr_progress: float, step: int, budget: int,
                  learning_rate: float, warmup_ratio: float, dev_loss: float, classes: int) -> list[float]:
    """One reading as :data:`FEATURES`; NaN where a part is unknown."""
    share = step / budget if budget else math.nan
    warm = min(1.0, share / warmup_ratio) if warmup_ratio > 0 else 1.0
    lr = math.log10(learning_rate) if learning_rate and learning_rate > 0 else math.nan
    return [(dev_metric - constant) / headroom(constant), share, lr_progress, warm, lr,
            dev_loss / math.log(max(classes, 2))]


def features(trial, step: int, *, constant: float, classes: int, default_budget: int | None) -> list[float] | None:
    """The look-ahead's :data:`FEATURES` of ``trial`` (a ``FrozenTrial``) at ``step``, from what it recorded; None
    where something is missing (its budget, peak learning rate, warmup, schedule progress or dev loss)."""
    a = trial.user_attrs
    own = budget(trial, default_budget)
    lr, progress = _number(a.get(PEAK_LEARNING_RATE)), _number(a.get(at(LR_PROGRESS_AT, step)))
    loss = _number(a.get(at(DEV_LOSS_AT, step)))
    value = reading(trial, step, None).value
    warm_steps, ratio = _number(a.get(WARMUP_STEPS)), _number(a.get(WARMUP_RATIO))
    if own is None or lr is None or progress is None or loss is None or not math.isfinite(value):
        return None
    warmup_ratio = ratio if ratio is not None else warm_steps / own if warm_steps is not None else None
    if warmup_ratio is None:
        return None
    row = lookahead_row(dev_metric=value, constant=constant, lr_progress=progress, step=step, budget=own,
                        learning_rate=lr, warmup_ratio=warmup_ratio, dev_loss=loss, classes=classes)
    return row if all(math.isfinite(x) for x in row) else None


def interval_row(*, dev_metric: float, constant: float, lr_progress: float, step: int, budget: int,
                 learning_rate: float, warmup_ratio: float, dev_loss: float, classes: int) -> list[float]:
    """One row of ``earlyexit.scoring.FinalInterval``'s features (the opt-in bound) for a trial at ``step`` of a
    ``budget``-step run.

    ``constant`` is the constant classifier's score on the dev set (the majority class's share for accuracy,
    0 for MCC); ``dev_loss`` in nats.
    """
    share = step / budget
    warm = min(1.0, share / warmup_ratio) if warmup_ratio > 0 else 1.0
    log_c = math.log(max(classes, 2))
    lr = math.log10(learning_rate) if learning_rate > 0 else math.nan
    return [dev_metric, dev_metric - constant, lr_progress, share, lr, warm, dev_loss / log_c, log_c,
            math.log10(budget)]


def rung_step(steps: Iterable[int], fraction: float, budget_steps: int) -> int | None:
    """The first of ``steps`` at or past ``fraction`` of ``budget_steps`` (and before the budget's end)."""
    target = fraction * budget_steps
    later = [s for s in sorted(steps) if s >= target and 0 < s < budget_steps]
    return later[0] if later else None
