"""Replay a logged sweep through a real Optuna study: each config arrives as a trial, reports its logged readings
and is pruned where the study's pruner says (Optuna's pruners, or ours through their public interface)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import optuna

from ._simulate import NO_PROBES, Compute, Outcome, Policy, Run, outcome


def replay_study(pruner: optuna.pruners.BasePruner, order_seed: int) -> optuna.Study:
    """The in-memory study a replayed arrival order runs in. Its name is fixed by the order: HyperbandPruner puts
    trials in brackets by a hash of the study's name, and Optuna's default name is a fresh UUID, which would make
    each replay of an order differ."""
    return optuna.create_study(study_name=f"replay-order-{order_seed}", direction="maximize", pruner=pruner,
                               sampler=optuna.samplers.RandomSampler(seed=0))


@contextlib.contextmanager
def memoized_wilcoxon() -> Iterator[None]:
    """Inside, Optuna's :class:`~optuna.pruners.WilcoxonPruner` reads its test's p-value from a memo: the same
    differences (and options) give the result scipy gave them before, so every decision is the one without the
    memo. A replay asks the same test many times (each setting and arrival order compares the same pairs of
    logged curves), and scipy's exact test is a permutation test: about 6 of 7 calls are repeats, and the memo
    makes the Wilcoxon replay about 6x faster. Where Optuna's module does not hold scipy as ``ss`` (another
    version), nothing is changed."""
    import scipy.stats

    try:
        from optuna.pruners import _wilcoxon as module
    except ImportError:  # pragma: no cover - another Optuna layout
        module = None
    if module is None or not hasattr(module, "ss"):
        yield
        return
    memo: dict = {}

    class _Stats:
        def __getattr__(self, name):
            return getattr(scipy.stats, name)

        @staticmethod
        def wilcoxon(x, *args, **kwargs):
            key = (np.asarray(x, dtype=float).tobytes(), args, tuple(sorted(kwargs.items())))
            if key not in memo:
                memo[key] = scipy.stats.wilcoxon(x, *args, **kwargs)
            return memo[key]

    saved = module.ss
    module.ss = _Stats()
    try:
        yield
    finally:
        module.ss = saved


def study_replay(make_pruner: Callable[[], optuna.pruners.BasePruner], value_of: Callable[[Run, int, dict], float],
                 *, compute: Compute = NO_PROBES) -> Policy:
    """Replay a study with ``make_pruner()``: each trial reports ``value_of(run, step, history)`` at its steps.

    ``history`` is the per-run signature up to the step (what the trial knows).
    Probes are paid for as ``compute`` says.
    """

    def policy(runs: Sequence[Run], order_seed: int) -> Outcome:
        order = np.random.default_rng(order_seed).permutation(len(runs))
        study = replay_study(make_pruner(), order_seed)
        used, completed = 0.0, []
        for i in order:
            run = runs[i]
            trial = study.ask()
            stopped = None
            history = {}
            for step in sorted(run.signature):
                history[step] = run.signature[step]
                value = value_of(run, step, history)
                trial.report(value if math.isfinite(value) else float("nan"), step)
                if trial.should_prune():
                    stopped = step
                    break
            if stopped is None and run.diverged:
                stopped = run.steps
            if stopped is not None:
                used += compute.until(run, stopped)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                used += compute.whole(run)
                study.tell(trial, run.final)
                completed.append(run)
        return outcome(runs, used, completed, {})

    return policy


def dev_metric_value(run: Run, step: int, history: dict) -> float:
    return history[step].get("dev_metric", math.nan)


def scorer_value(scorer) -> Callable[[Run, int, dict], float]:
    def value(run: Run, step: int, history: dict) -> float:
        return scorer.score(history, step)

    return value
