"""The look-ahead rule: prune a trial whose optimistic final falls below the K-th best pessimistic final.

Pure arithmetic on numbers the caller gathers (the replay's ``LookaheadJudge``; numpy-free). Finals are
predicted in headroom units (``earlyexit.scoring.FinalPredictor``) and put back in metric units here: a
reading ``value`` with predicted gain ``gain`` (headroom units) on a task of headroom ``H`` ends, at
``coverage`` each side, between ``value + (gain + lower) * H`` and ``value + (gain + upper) * H``. The margins
come from the study's own completed trials where it has enough of them at the step (split conformal), else from
the other tasks the predictor was fitted on. The comparison also carries the dev set's noise: a trial is pruned
only where the K-th best pessimistic final leads its optimistic one by more than ``z`` standard errors of the
difference of two dev metrics, so no gap the dev set cannot resolve is a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from ._resolution import approximate_se


def margins(errors: Sequence[float], coverage: float, fallback: tuple[float, float]) -> tuple[float, float]:
    """``(lower, upper)`` at ``coverage`` from this study's ``errors`` (true minus predicted gain at the step),
    at split conformal's finite-sample rank, where there are enough of them; else ``fallback`` (the other
    tasks' margins, or ``(-inf, inf)``: no bound until the study has enough)."""
    ordered = sorted(e for e in errors if math.isfinite(e))
    rank = math.ceil((len(ordered) + 1) * coverage)
    if rank > len(ordered):
        return fallback
    return ordered[len(ordered) - rank], ordered[rank - 1]


def lookahead_prunes(value: float, gain: float, upper: float, references: Sequence[float], *, headroom: float,
                     keep: int, z: float, n: int, metric: str = "accuracy") -> bool:
    """Whether a reading's optimistic final is below the ``keep``-th best of ``references`` (completed trials'
    finals, running trials' pessimistic finals) by more than ``z`` standard errors (dev size ``n``)."""
    best = sorted((r for r in references if math.isfinite(r)), reverse=True)
    if len(best) < keep or not (math.isfinite(value) and math.isfinite(gain) and math.isfinite(upper)):
        return False
    optimistic = value + (gain + upper) * headroom
    target = best[keep - 1]
    se = math.hypot(approximate_se(min(max(optimistic, -1.0), 1.0), n, metric), approximate_se(target, n, metric))
    return target - optimistic > z * se


def lookahead_judge(value: float, gain: float, step: int, *, finals: Sequence[float], errors: Mapping[int, Sequence[float]],
                    running: Sequence[tuple[int, float, float]], fallback: Callable[[int], tuple[float, float]],
                    coverage: float, keep: int, z: float, headroom: float, n: int, metric: str = "accuracy") -> bool:
    """The look-ahead's decision on a reading (``value``, predicted ``gain``) at ``step``, from what the study
    knows: the completed trials' ``finals``; their ``errors`` by step (true minus predicted gain, headroom
    units); the other ``running`` trials' latest readings ``(step, value, gain)``, whose pessimistic finals count
    as references too; ``fallback(step)``: the margins where the study has too few errors at a step. The
    replay's judge and the Optuna pruner both call this.

    Nothing is pruned by the bound until ``keep`` trials have completed: running trials' predictions alone
    could otherwise prune every trial of a study in turn (each by others that are pruned later), leaving none
    trained to the end. With one worker the references are completed finals only, so this changes nothing there;
    with several it only holds back the other tasks' margins (``study+tasks``) before the study's first finals."""
    upper = bound_upper(step, finals=finals, errors=errors, fallback=fallback, coverage=coverage, keep=keep)
    if not math.isfinite(upper):
        return False
    references = list(finals)
    for s, v, g in running:
        references.append(v + (g + margins(errors.get(s, ()), coverage, fallback(s))[0]) * headroom)
    return lookahead_prunes(value, gain, upper, references, headroom=headroom, keep=keep, z=z, n=n, metric=metric)


def bound_upper(step: int, *, finals: Sequence[float], errors: Mapping[int, Sequence[float]],
                fallback: Callable[[int], tuple[float, float]], coverage: float, keep: int) -> float:
    """The upper margin the bound reads at ``step`` (headroom units), or NaN where it cannot prune there, whatever
    the reading: fewer than ``keep`` completed trials (see :func:`lookahead_judge`), or no finite margin (too few
    errors at the step and no fallback). A caller can skip predicting a gain where it is NaN."""
    if len(finals) < keep:
        return math.nan
    upper = margins(errors.get(step, ()), coverage, fallback(step))[1]
    return upper if math.isfinite(upper) else math.nan


CALIBRATIONS = ("study+tasks", "study")
"""Where the margins come from before the study has enough completed trials at a step: the predictor's own
(other tasks, by the part of training), or nowhere (no look-ahead bound yet)."""


def fallback_margins(predictor, calibration: str, coverage: float, budget: int) -> Callable[[int], tuple[float, float]]:
    """``step -> (lower, upper)`` before the study has enough errors at ``step`` (see :data:`CALIBRATIONS`)."""
    if calibration == "study" or predictor is None:
        return lambda step: (-math.inf, math.inf)
    cache: dict[int, tuple[float, float]] = {}

    def at(step: int) -> tuple[float, float]:
        if step not in cache:
            cache[step] = predictor.margins(coverage, step / budget)
        return cache[step]

    return at
