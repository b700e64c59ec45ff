"""``SynchronousResolutionPruner``: synchronous successive halving with the resolution rule, inside an Optuna study.

A cohort of trials, all known up front, runs at once (one thread each: ``study.optimize(..., n_jobs=cohort)``).
At each rung a trial waits until every other trial of its cohort has either reported at that rung or ended, and
is then judged against all of them together: what the replay's synchronous shape (``default_sync``) measures,
instead of the live shape's "against whoever reported earlier". The rule itself is
:class:`~earlyexit.pruning.ResolutionRule`; only who a trial is compared with, and when, differs.

A trial belongs to the cohort named by its user attribute ``earlyexit:cohort`` (the study runner sets it; trials
without it are judged live, as :class:`ResolutionPruner` would). The cohort's trials are held in memory together
while they wait at a rung, so a cohort is as large as memory allows. A study killed mid-cohort loses the cohort's
unfinished trials: they are retried, from the start, as a new cohort.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import optuna
from optuna.trial import TrialState

from ..names import COHORT
from ._resolution import ResolutionRule
from ._resolution_pruner import ResolutionPruner


class SynchronousResolutionPruner(ResolutionPruner):
    """:class:`ResolutionPruner` judging a cohort of ``cohort_size`` trials together at each rung.

    Args (besides :class:`ResolutionPruner`'s):
        cohort_size: the trials of one cohort (those sharing ``earlyexit:cohort``), all running at once.
        poll_seconds: how often a waiting trial looks at the storage (seconds).
        timeout_seconds: the longest a trial waits at one rung (seconds); past it, it is judged against the
            cohort trials that have reported there (a cohort trial stuck elsewhere cannot hold the others forever).
    """

    def __init__(self, rule: ResolutionRule | None = None, *, cohort_size: int,
                 decision_steps: Iterable[int] | None = None, dev_size: int | None = None, metric: str | None = None,
                 poll_seconds: float = 0.2, timeout_seconds: float = 24 * 3600.0):
        super().__init__(rule, decision_steps=decision_steps, dev_size=dev_size, metric=metric)
        if cohort_size < 1:
            raise ValueError(f"cohort_size must be at least 1, but got {cohort_size}.")
        if not poll_seconds > 0 or not timeout_seconds > 0:
            raise ValueError("poll_seconds and timeout_seconds must be positive.")
        self.cohort_size, self.poll_seconds, self.timeout_seconds = cohort_size, poll_seconds, timeout_seconds

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        cohort = trial.user_attrs.get(COHORT)
        if cohort is None or step is None or (self._steps is not None and step not in self._steps):
            return super().prune(study, trial)
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            members = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(COHORT) == cohort
                       and t.number != trial.number]
            waiting = [t for t in members if t.state == TrialState.RUNNING and step not in t.intermediate_values]
            if (len(members) + 1 >= self.cohort_size and not waiting) or time.monotonic() > deadline:
                break
            time.sleep(self.poll_seconds)
        rivals = [t for t in members if step in t.intermediate_values
                  and t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)]
        # A rival pruned at this very rung still counts: all were judged on the same readings.
        return self._decide(study, trial, step, members, [(t, step) for t in rivals], ", judged with its cohort")
