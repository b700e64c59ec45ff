"""The live scheduler every live replay runs (``earlyexit.replay._schedule.schedule``): the order in which a
study sees its trials' readings, what a pruned trial is charged, and what it is never asked again."""

from __future__ import annotations

import pytest

from earlyexit.replay._schedule import Judge, schedule


class _Run:
    def __init__(self, steps: int, read=(10, 20), diverged: bool = False):
        self.steps, self.diverged = steps, diverged
        self.signature = {s: {} for s in read}


class _Steps:
    """Compute is the steps trained: a trial reaches step ``s`` at its start plus ``s``."""

    def until(self, run, step):
        return float(min(step, run.steps))

    def whole(self, run):
        return float(run.steps)


class _Recorder(Judge):
    def __init__(self, prune=()):
        self.prune, self.log = set(prune), []

    def steps(self, held):
        return (10, 20)

    def start(self, index, run):
        self.log.append(("start", index))

    def at(self, index, run, step):
        self.log.append(("at", index, step))
        return (index, step) in self.prune

    def end(self, index, run, completed):
        self.log.append(("end", index, completed))


def test_at_equal_times_the_trial_that_started_first_is_seen_first_then_its_earlier_step_then_its_end():
    judge = _Recorder()
    used, completed = schedule([_Run(30), _Run(30), _Run(30)], judge, (10, 20), _Steps(), workers=2)
    assert judge.log == [("start", 0), ("start", 1),
                         ("at", 0, 10), ("at", 1, 10), ("at", 0, 20), ("at", 1, 20),
                         ("end", 0, True), ("start", 2), ("end", 1, True),
                         ("at", 2, 10), ("at", 2, 20), ("end", 2, True)]
    assert used == 90.0 and len(completed) == 3


def test_a_pruned_trial_is_charged_to_its_step_and_never_asked_again():
    judge = _Recorder(prune={(0, 10)})
    runs = [_Run(30), _Run(30), _Run(30)]
    used, completed = schedule(runs, judge, (10, 20), _Steps(), workers=2)
    assert judge.log == [("start", 0), ("start", 1),
                         ("at", 0, 10), ("end", 0, False), ("start", 2),  # trial 2 starts at time 10
                         ("at", 1, 10),
                         ("at", 1, 20), ("at", 2, 10),  # time 20: trial 1 started first
                         ("end", 1, True), ("at", 2, 20), ("end", 2, True)]
    assert used == 10.0 + 30 + 30 and completed == [runs[1], runs[2]]


def test_a_step_a_trial_does_not_report_is_skipped_and_a_diverged_trial_is_charged_to_where_it_stopped():
    judge = _Recorder()
    runs = [_Run(30, read=(20,)), _Run(15, read=(10,), diverged=True)]
    used, completed = schedule(runs, judge, (10, 20), _Steps(), workers=1)
    assert judge.log == [("start", 0), ("at", 0, 20), ("end", 0, True),
                         ("start", 1), ("at", 1, 10), ("end", 1, False)]
    assert used == 30.0 + 15 and completed == [runs[0]]


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        schedule([_Run(30)], _Recorder(), (10, 20), _Steps(), workers=0)
