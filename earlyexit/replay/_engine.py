"""The replay engine: rung rules, the look-ahead and Optuna's pruners over a logged sweep, synchronous or live
with W workers.

One held-out set is one seed of a sweep (:class:`HeldSet`). A policy replayed on it returns an
:class:`Result`: the compute used as a fraction of training every config to the end, the dev regret
(points of the sweep's metric: the best final of the set minus the best final among the configs the
policy trained to the end) and, where the sweep logged test metrics (format 3), the test regret (the
test metric of the config the unpruned search would pick minus that of the config the pruned search
picks; what a user's model actually loses).

Two shapes:

* :func:`~earlyexit.replay._synchronous.synchronous` -- every trial to the first rung, judged together,
  survivors to the next rung (synchronous successive halving: the number of trials is known up front).
  Order-free.
* :func:`live` -- trials arrive in a random order and run ``workers`` at a time; each is judged at each of
  its decision steps against what the trials before it had reported *by then* (the rung values of
  trials that had reached that rung earlier), as ``earlyexit run --n-jobs W`` or W workers on one
  storage would judge it. Time is compute: a trial reaches step s at its start plus its compute to s. The
  scheduler is :mod:`._schedule`'s, which the transfer scorer's rung rule shares.

Compute is counted as :class:`~earlyexit.replay._simulate.Compute` says (a dev evaluation where the
sweep's ``probe_costs.json`` prices one, at the steps the policy reads).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import optuna

from ..names import PEAK_LEARNING_RATE, STUDY_BUDGET, STUDY_DEV_LABELS, STUDY_LABEL_NAMES, STUDY_METRIC, WARMUP_RATIO
from ..pruning import Reading, ResolutionRule, warming_up
from ..sweeps import Sweep, load_dev_records
from ..protocol import encode_classes, record, warmup_steps
from ..sweeps import constant_accuracy
from ._optuna_replay import replay_study
from ._schedule import Judge, schedule
from ._simulate import Compute, Outcome, Run, dev_metric_at, run_budget, runs_of, screen, sweep_context


@dataclass(frozen=True)
class HeldSet:
    """One seed of a sweep, as the replay sees it.

    Attributes:
        sweep: the sweep's name; task: its task; metric: its metric; seed: the training seed.
        runs: the seed's runs.
        budget: training steps of a full run; budgets: ``run_id -> its own budget`` where runs differ (a searched
            batch size), else empty; :meth:`budget_of` reads both.
        n_dev: dev examples; labels: their class ids (format 3) or None.
        predictions: ``(run_id, step) -> predicted class ids`` (format 3; empty before).
        test: ``run_id -> final test metric`` (format 3 sweeps of data with a test split; empty otherwise).
        costs: the sweep's probe costs (prices a dev evaluation), or None.
        warmup: ``run_id -> warmup ratio``.
        logged_steps: the sweep's probe steps.
        peak_lr: ``run_id -> peak learning rate``.
        classes: the task's number of classes.
        constant: the constant classifier's dev metric (the majority class's share for accuracy, 0 for MCC).
    """

    sweep: str
    task: str
    metric: str
    seed: int
    runs: tuple[Run, ...]
    budget: int
    n_dev: int
    labels: np.ndarray | None
    predictions: dict
    test: dict
    costs: object
    warmup: dict
    logged_steps: tuple[int, ...]
    peak_lr: dict = field(default_factory=dict)
    classes: int = 2
    constant: float = math.nan
    budgets: dict = field(default_factory=dict)
    _readings: dict = field(default_factory=dict, compare=False, repr=False)
    """``(run_id, step, paired) -> Reading``, made once: every policy and order of a replay reads the same ones."""

    def budget_of(self, run: Run) -> int:
        """``run``'s own budget in steps."""
        return self.budgets.get(run.run_id, self.budget)

    @property
    def longest(self) -> int:
        """The longest run's budget."""
        return max([self.budget, *self.budgets.values()])

    def reading(self, run: Run, step: int, *, paired: bool = True) -> Reading:
        key = (run.run_id, step, paired)
        if key not in self._readings:
            value = run.signature[step].get("dev_metric", math.nan)
            preds = self.predictions.get((run.run_id, step)) if paired else None
            self._readings[key] = Reading(value, preds, warming_up(step, self.budget_of(run),
                                                                   self.warmup.get(run.run_id, 0.0)),
                                          float(run.signature[step].get("lr_progress", math.nan)))
        return self._readings[key]

    def readings(self, *, fitting: bool = False):
        """``(run, step, signature there)`` for every reading inside the budget, in run and step order
        (``fitting``: only runs trained to a final)."""
        for run in self.runs:
            if fitting and (run.diverged or not math.isfinite(run.final)):
                continue
            for step, sig in sorted(run.signature.items()):
                if 0 < step < self.budget_of(run):
                    yield run, step, sig

    def subsample(self, n: int, draw: int) -> HeldSet:
        """``n`` of the runs drawn without replacement (draw number ``draw``): a smaller study of the same task."""
        if n > len(self.runs):
            raise ValueError(f"{self.sweep} seed {self.seed} has {len(self.runs)} runs, fewer than {n}.")
        idx = np.random.default_rng(1_000_003 * draw + n).choice(len(self.runs), size=n, replace=False)
        return replace(self, runs=tuple(self.runs[i] for i in sorted(idx)))


def held_sets(sweep: Sweep) -> list[HeldSet]:
    """The sweep's seeds as held-out sets, with its per-example records and test metrics where logged."""
    budget, classes, fixed = sweep_context(sweep)
    records = load_dev_records(sweep)
    runs = runs_of(sweep)
    frame = sweep.runs.set_index("run_id")
    test = {}
    if "final_test_metric" in frame.columns:
        test = {rid: float(v) for rid, v in frame["final_test_metric"].items() if math.isfinite(float(v))}
    warm = {r.run_id: float(r.params.get("warmup_ratio", fixed["warmup_ratio"])) for r in runs}
    peak = {r.run_id: float(r.params.get("learning_rate", fixed["learning_rate"])) for r in runs}
    constant = (constant_accuracy(sweep, None if records is None else records.labels) if sweep.metric == "accuracy"
                else 0.0 if sweep.metric == "mcc" else math.nan)
    n_dev = int(sweep.manifest.get("dev_examples") or 0) or _dev_size_guess(sweep)
    steps = tuple(sorted(set(int(s) for s in sweep.probe_steps)))
    own = {r.run_id: run_budget(sweep, r.params, budget, r.run_id) for r in runs}
    budgets = {rid: b for rid, b in own.items() if b != budget}
    out = []
    for seed in sorted({r.seed for r in runs}):
        out.append(HeldSet(sweep.name, str(sweep.manifest.get("task")), sweep.metric, seed,
                           tuple(r for r in runs if r.seed == seed), budget, n_dev,
                           None if records is None else records.labels,
                           {} if records is None else records.predictions, test, sweep.probe_costs, warm, steps,
                           peak, classes, constant, {rid: b for rid, b in budgets.items()
                                                     if any(r.run_id == rid and r.seed == seed for r in runs)}))
    return out


_DEV_SIZES = {"sst2": 872, "cola": 1043}


def _dev_size_guess(sweep: Sweep) -> int:
    """Version-1 sweeps (SST-2, CoLA) did not record their dev size: GLUE's dev splits."""
    return _DEV_SIZES.get(str(sweep.manifest.get("task")), 500)


@dataclass(frozen=True)
class Result:
    """One replayed study: compute used (fraction), dev regret and test regret (points; NaN without test metrics)."""

    compute_used: float
    regret: float
    test_regret: float
    kept: tuple[str, ...]


def result(held: HeldSet, used: float, completed: Sequence[Run]) -> Result:
    """Figures of a study that spent ``used`` training steps and trained ``completed`` to the end."""
    full = float(sum(r.steps for r in held.runs)) or 1.0
    finite = [r for r in held.runs if math.isfinite(r.final)]
    kept = [r for r in completed if math.isfinite(r.final)]
    best = max(finite, key=lambda r: r.final) if finite else None
    pick = max(kept, key=lambda r: r.final) if kept else None
    if best is None:
        regret = test_regret = 0.0
    else:
        regret = 100 * (best.final - (pick.final if pick else _floor(held.metric)))
        if held.test and best.run_id in held.test:
            test_regret = 100 * (held.test[best.run_id] - (held.test.get(pick.run_id, math.nan) if pick
                                                             else _floor(held.metric)))
        else:
            test_regret = math.nan
    return Result(used / full, regret, test_regret, tuple(r.run_id for r in completed))


def _floor(metric: str) -> float:
    return -1.0 if metric == "mcc" else 0.0


def stopped_result(held: HeldSet, compute: Compute, stopped: dict[str, int]) -> Result:
    """The study in which each run of ``stopped`` ended at its step and every other run trained to its end."""
    used, completed = 0.0, []
    for r in held.runs:
        if r.run_id in stopped:
            used += compute.until(r, stopped[r.run_id])
        elif r.diverged:
            used += compute.until(r, r.steps)
        else:
            used += compute.whole(r)
            completed.append(r)
    return result(held, used, completed)


def prefix_rule(held: HeldSet, fraction: float, keep_top: int, order_seed: int) -> Result:
    """Every config to ``fraction`` of the budget, the top ``keep_top`` by dev metric there to the end.

    Ties (every config at the constant classifier) go by arrival order; a survivor that diverges later
    is replaced by the next best.
    """
    steps = ResolutionRule((fraction,)).rung_steps(held.budget, held.logged_steps)
    if not steps:
        return result(held, float(sum(r.steps for r in held.runs)), held.runs)
    step = steps[0]
    return screened_result(held, screen(step, keep_top, dev_metric_at,
                                        compute=Compute(("dev_metric",), held.costs, steps=(step,)))(
        list(held.runs), order_seed))


def screened_result(held: HeldSet, outcome: Outcome) -> Result:
    """A screening policy's :class:`~earlyexit.replay._simulate.Outcome` (compute as a fraction) as a Result."""
    full = float(sum(r.steps for r in held.runs)) or 1.0
    kept = set(outcome.kept)
    return result(held, outcome.compute_used * full, [r for r in held.runs if r.run_id in kept])


# -- live, W workers -------------------------------------------------------------------------------------------
class RuleJudge(Judge):
    """:class:`ResolutionRule` live: a trial is judged against the rung readings reported before it reached the rung."""

    def __init__(self, held: HeldSet, rule: ResolutionRule, paired: bool = True):
        self.held, self.rule, self.paired = held, rule, paired
        self.seen: dict[int, list[Reading]] = {}
        self.history: dict[int, list[Reading]] = {}  # each trial's rung readings so far, in step order

    def steps(self, held):
        return self.rule.rung_steps(held.budget, held.logged_steps)

    def at(self, index, run, step):
        reading = self.held.reading(run, step, paired=self.paired)
        others = self.seen.setdefault(step, [])
        histories = [h for i, h in self.history.items() if i != index] if self.rule.progress_match else None
        prune = self.rule.prune(reading, others, n=self.held.n_dev, metric=self.held.metric,
                                labels=self.held.labels if self.paired else None, histories=histories)[0]
        others.append(reading)
        self.history.setdefault(index, []).append(reading)
        return prune


class OptunaJudge(Judge):
    """One of Optuna's pruners, called through a real in-memory study (its own ``prune()``), at every logged step."""

    def __init__(self, held: HeldSet, make_pruner: Callable[[], optuna.pruners.BasePruner], order_seed: int,
                 *, attrs: bool = False):
        self.pruner = make_pruner()
        self.study = replay_study(self.pruner, order_seed)
        self.trials: dict[int, optuna.trial.Trial] = {}
        self.held, self.attrs = held, attrs
        if attrs:  # what the study runner writes: the metric, budget, classes, dev labels where the sweep logged them
            self.study.set_user_attr(STUDY_METRIC, held.metric)
            self.study.set_user_attr(STUDY_BUDGET, held.budget)
            self.study.set_user_attr(STUDY_LABEL_NAMES, list(range(held.classes)))
            if held.labels is not None:
                self.study.set_user_attr(STUDY_DEV_LABELS, encode_classes(held.labels))

    def steps(self, held):
        own = getattr(self.pruner, "decision_steps", None)  # a pruner that decides only at its rungs
        if own is not None and self.attrs:
            return tuple(s for s in own if s in held.logged_steps)
        return tuple(s for s in held.logged_steps if s < held.longest)

    def start(self, index, run):
        self.trials[index] = trial = self.study.ask()
        if self.attrs:
            trial.set_user_attr(PEAK_LEARNING_RATE, self.held.peak_lr.get(run.run_id, math.nan))
            trial.set_user_attr(WARMUP_RATIO, self.held.warmup.get(run.run_id, 0.0))

    def at(self, index, run, step):
        trial = self.trials[index]
        value = run.signature[step].get("dev_metric", math.nan)
        if self.attrs:  # what the study runner records (earlyexit.protocol), from the sweep's log
            reading = self.held.reading(run, step)
            own = self.held.budget_of(run)
            record(trial, step, value, predictions=reading.predictions, dev_loss=run.signature[step].get("dev_loss"),
                   lr_progress=reading.progress, max_steps=own,
                   warmup_steps=warmup_steps(own, self.held.warmup.get(run.run_id, 0.0)))
        trial.report(value if math.isfinite(value) else float("nan"), step)
        return trial.should_prune()

    def end(self, index, run, completed):
        trial = self.trials.pop(index)
        if completed:
            self.study.tell(trial, run.final)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def live(held: HeldSet, judge: Judge, order_seed: int, workers: int = 1, *,
         order: Sequence[int] | None = None, trace: list | None = None) -> Result:
    """Replay a live study: trials in the order drawn from ``order_seed`` (or in ``order``: indices into
    ``held.runs``, the arrival order of a study that really ran), ``workers`` at a time. ``trace``, where given,
    receives ``(compute used so far, run)`` each time a trial is trained to the end (the fixed-budget view)."""
    if order is not None and sorted(order) != list(range(len(held.runs))):
        raise ValueError(f"order must be a permutation of the {len(held.runs)} runs' indices.")
    arrival = order if order is not None else np.random.default_rng(order_seed).permutation(len(held.runs))
    steps = judge.steps(held)
    used, completed = schedule([held.runs[i] for i in arrival], judge, steps,
                               Compute(judge.reads, held.costs, steps=steps), workers, trace=trace)
    return result(held, used, completed)
