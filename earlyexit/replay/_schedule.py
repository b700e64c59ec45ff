"""The live study every live replay runs: trials arrive in an order and run ``workers`` at a time; each is
judged at its decision steps, in the order the study would see them, and charged what it trained.

One scheduler, many judges: the rung rule, the look-ahead and Optuna's pruners (:mod:`._engine`) and the
transfer scorer's rung rule (:func:`~earlyexit.replay._simulate.live_rungs`) are each a :class:`Judge`. Time
is compute: a trial reaches step ``s`` at its start plus its compute to ``s``
(:class:`~earlyexit.replay._simulate.Compute`).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


class Judge:
    """What a live policy does: the steps it reads, and its decision there. One judge per replayed study.

    ``reads``: what it measures at each of those steps, and pays for (:class:`Compute`): a dev evaluation, and
    the probes a judge that reads them names."""

    reads: tuple[str, ...] = ("dev_metric",)

    def steps(self, held) -> tuple[int, ...]:
        raise NotImplementedError

    def reaches(self, run, step: int) -> bool:
        """Whether ``run`` reports at decision step ``step``: it has a reading there and had not diverged by then."""
        return step in run.signature and not (run.diverged and run.steps <= step)

    def start(self, index: int, run) -> None:
        """Trial ``index`` (running ``run``) starts."""

    def at(self, index: int, run, step: int) -> bool:
        """Trial ``index`` reached ``step``: True prunes it there."""
        raise NotImplementedError

    def end(self, index: int, run, completed: bool) -> None:
        """Trial ``index`` ended: trained to the end (``completed``), or pruned or diverged."""


def schedule(order: Sequence, judge: Judge, steps: Sequence[int], compute, workers: int = 1, *,
             trace: list | None = None) -> tuple[float, list]:
    """Replay ``order`` (runs, in their arrival order) as a live study judged by ``judge`` at ``steps``:
    ``(compute used, the runs trained to the end)``, compute in training steps as ``compute`` counts it.
    ``trace``, where given, receives ``(compute used so far, run)`` each time a trial is trained to the end."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, but got {workers}.")
    # Events (time, trial index, position in its steps; len(steps) = its end): at equal times, the trial that
    # started first, then its earlier step, then its end. A trial's next decision step is queued only once it
    # has passed the one before: a pruned trial's later steps are never priced.
    events: list[tuple[float, int, int]] = []
    end = len(steps)
    used, completed = 0.0, []
    next_trial = 0

    def queue_step(now: float, i: int, run, k: int) -> None:
        """Queue trial ``i``'s first decision step at or after position ``k`` that it reaches."""
        for j in range(k, end):
            if judge.reaches(run, steps[j]):
                heapq.heappush(events, (now + compute.until(run, steps[j]), i, j))
                return

    began: dict[int, float] = {}  # each running trial's start time

    def start(now: float) -> None:
        nonlocal next_trial
        if next_trial >= len(order):
            return
        i, next_trial = next_trial, next_trial + 1
        run = order[i]
        judge.start(i, run)
        began[i] = now
        queue_step(now, i, run, 0)
        heapq.heappush(events, (now + (compute.until(run, run.steps) if run.diverged else compute.whole(run)), i, end))

    finished: set[int] = set()
    for _ in range(workers):
        start(0.0)
    while events:
        now, i, k = heapq.heappop(events)
        if i in finished:
            continue
        run = order[i]
        if k < end:
            if judge.at(i, run, steps[k]):
                finished.add(i)
                used += compute.until(run, steps[k])
                judge.end(i, run, False)
                start(now)
            else:
                queue_step(began[i], i, run, k + 1)
            continue
        finished.add(i)
        if run.diverged:
            used += compute.until(run, run.steps)
            judge.end(i, run, False)
        else:
            used += compute.whole(run)
            completed.append(run)
            if trace is not None:
                trace.append((used, run))
            judge.end(i, run, True)
        start(now)
    return used, completed
