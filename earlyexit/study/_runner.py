"""Run a study spec as an Optuna study: each trial trains, probes, reports, and may be pruned."""

from __future__ import annotations

import functools
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..data import load_task
from ..metrics import METRIC_RANGES, check_metric
from ..names import (COHORT, DEV_ACCURACY_AT, DEV_METRICS, DEVICE, OUT_OF_RANGE_AT, PEAK_LEARNING_RATE,
                     PROBE_ERROR_AT, PROBES_AT, PRUNED_REASON, SCORE_AT, STUDY_BUDGET, STUDY_DEV_LABELS,
                     STUDY_LABEL_NAMES, STUDY_METRIC, STUDY_SPEC, STUDY_SPEC_PATH, WARMUP_RATIO, WORKER, PHASE_ATTR, Scorer, at)
from ._storage import fail_orphaned_trials, make_storage
from ..protocol import encode_classes, pruned_reason, record, warmup_steps
from ..training import Checkpoint, train
from ..training import schedule_context
from ._factories import make_pruner, make_sampler, make_scorer, measurement_plan, with_scorer_rule
from ._spec import StudySpec


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict:
    """The trial's hyperparameters, drawn from the grid or the distributions."""
    if spec.sampler == "grid":
        return {k: trial.suggest_categorical(k, list(v)) for k, v in spec.grid.items()}
    return {k: trial._suggest(k, d.to_optuna()) for k, d in spec.search.items()}


def _finite(x: float):
    """JSON-safe float for user attributes (inf and NaN as strings)."""
    return x if math.isfinite(x) else str(x)


class DuplicateTrial(Exception):
    """Another worker already trains these hyperparameters (Optuna's GridSampler can hand the same
    grid point to two workers at once); the later trial is failed without training."""


CAUGHT = (DuplicateTrial, optuna.exceptions.UpdateFinishedTrialError)
"""What ends a trial without ending the worker: a duplicate grid point; and a trial another worker already failed
as stale (its heartbeat could not be written while the database was down longer than the grace period; the
heartbeat's callback has queued it again with the same hyperparameters)."""


class Objective:
    """Optuna objective for one spec: train, probe, report the score, obey the pruner."""

    def __init__(self, spec: StudySpec, *, show_progress: bool = True, scorer: Scorer | None = None, task=None):
        self.spec = spec
        from ..training import resolve_device

        resolve_device(spec.train.device)  # a device that is not there fails before the storage is touched
        self.task = task if task is not None else load_task(spec.train.source)
        check_metric(spec.train.metric, self.task.num_labels)
        self.scorer = scorer if scorer is not None else make_scorer(spec)
        self.show_progress = show_progress
        self.geometric = spec.pruner.kind == "geometric"
        self.plan = measurement_plan(spec, self.scorer, spec.train.with_budget(len(self.task.train)).max_steps)
        self.cohort: str | None = None  # set by the runner in synchronous mode: the cohort this process runs
        # transformers resolves its names lazily, and not thread-safely: trials in threads (n_jobs > 1, a
        # synchronous cohort) would race on the first import, so it happens here, once.
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_scheduler  # noqa: F401

    def _outside(self, signature, step: int, number: int) -> list[str]:
        """The scorer's features at ``step`` outside its training range (a scorer that can tell), warned once
        per trial and step in the log."""
        check = getattr(self.scorer, "out_of_range", None)
        outside = check(signature, step) if check is not None else []
        if outside:
            print(f"warning: trial {number} at step {step}: {', '.join(outside)} outside the range the scorer was "
                  "fitted on; the trial is kept at this step rather than judged by an extrapolation",
                  file=sys.stderr)
        return outside

    def _on_checkpoint(self, trial: optuna.Trial, config, phase: str | None, screen_step: int | None,
                       signature: dict[int, dict[str, float]], cp: Checkpoint) -> bool:
        """What a trial records and reports at a checkpoint; True stops it there (pruned, or screened)."""
        # What the step measured, and what is known there without measuring (CONTEXT_NAMES).
        context = schedule_context(cp.step, config.max_steps, config.learning_rate, config.warmup_ratio,
                                   config.schedule, self.task.num_labels)
        signature[cp.step] = {**cp.probes, "dev_accuracy": cp.dev_accuracy, "dev_loss": cp.dev_loss,
                              "dev_metric": cp.dev_metric, **context}
        trial.set_user_attr(at(PROBES_AT, cp.step), {k: _finite(v) for k, v in cp.probes.items()})
        trial.set_user_attr(at(DEV_ACCURACY_AT, cp.step), _finite(cp.dev_accuracy))
        resolution = self.spec.pruner.kind == "resolution"
        # The protocol's keys (earlyexit.protocol): the metric, and for the resolution pruner its readings.
        record(trial, cp.step, cp.dev_metric, lr_progress=context["lr_progress"],
               predictions=cp.dev_predictions or None if resolution else None,
               dev_loss=cp.dev_loss if resolution else None, max_steps=config.max_steps,
               warmup_steps=warmup_steps(config.max_steps, config.warmup_ratio) if resolution else None)
        if config.metric != "accuracy":
            trial.set_user_attr(f"dev_{config.metric}@{cp.step}", _finite(cp.dev_metric))
        if cp.probe_error:
            trial.set_user_attr(at(PROBE_ERROR_AT, cp.step), cp.probe_error)
            if self.geometric:
                # No probes, no judgement: the trial is not reported at this step and so not pruned here.
                return False
        if self.geometric and self.plan is not None and cp.step not in self.spec.pruner.decision_steps:
            return False  # measured for a later decision; a score here would read what was not measured
        outside = []
        if self.geometric:
            score = self.scorer.score(signature, cp.step)
            outside = self._outside(signature, cp.step, trial.number)
            if outside:
                trial.set_user_attr(at(OUT_OF_RANGE_AT, cp.step), outside)
        else:
            score = cp.dev_metric
        trial.set_user_attr(at(SCORE_AT, cp.step), _finite(score))
        if phase == "final":
            return False  # a screened survivor trains to the end
        # What the trial reports is on the objective's scale (dashboards draw it beside the finals): the
        # scorer's predicted final metric, clipped to the metric's range, or, for the rank rule, whose score
        # only orders trials, the dev metric (the pruner ranks by the score attribute above).
        reported = score if getattr(self.scorer, "predicts_metric", True) or not self.geometric else cp.dev_metric
        low, high = METRIC_RANGES[config.metric]
        trial.report(min(max(reported, low), high) if math.isfinite(reported) else reported, cp.step)
        if phase == "screen":
            return cp.step >= screen_step
        if outside and cp.step in self.spec.pruner.decision_steps:
            return False  # outside what the scorer has seen: kept rather than judged by an extrapolation
        return trial.should_prune()

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.spec)
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        if self.cohort is not None:
            trial.set_user_attr(COHORT, self.cohort)
        screen = self.spec.pruner.mode == "screen"
        phase = trial.user_attrs.get(PHASE_ATTR, "screen" if screen else None)
        if phase is not None:
            trial.set_user_attr(PHASE_ATTR, phase)
        screen_step = self.spec.pruner.decision_steps[0] if screen else None
        if self.spec.sampler == "grid" or phase == "final":
            # The lowest-numbered trial with these parameters (in this phase) trains; later ones stop.
            earlier = [t.number for t in trial.study.get_trials(
                deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED))
                if t.number < trial.number and t.params == params and t.user_attrs.get(PHASE_ATTR) == phase]
            if earlier:
                trial.set_user_attr("earlyexit:duplicate_of", earlier[0])
                raise DuplicateTrial(f"trial {trial.number} duplicates trial {earlier[0]} ({params})")
        config = self.spec.config_for(params).with_budget(len(self.task.train))
        trial.set_user_attr(PEAK_LEARNING_RATE, config.learning_rate)
        trial.set_user_attr(WARMUP_RATIO, config.warmup_ratio)
        signature: dict[int, dict[str, float]] = {}
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.max_steps, desc=f"trial {trial.number}", unit="step", leave=False, position=1)

        on_checkpoint = functools.partial(self._on_checkpoint, trial, config, phase, screen_step, signature)

        try:
            plan = self.plan
            if plan is not None and self.spec.pruner.lookahead:  # the look-ahead also judges at the warmup's end
                end = warmup_steps(config.max_steps, config.warmup_ratio)
                if 0 < end < config.max_steps:
                    plan = {**plan, end: tuple(DEV_METRICS)}
            result = train(config, on_checkpoint=on_checkpoint, task=self.task, plan=plan,
                           progress=(lambda s, n: bar.update(1)) if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr(DEVICE, result.device)
        trial.set_user_attr("compute_steps", result.compute_steps)
        if result.status == "diverged":
            trial.set_user_attr(PRUNED_REASON, "diverged")
            raise optuna.TrialPruned(result.reason)
        if result.status == "stopped" and phase == "screen":
            reason = f"screened at step {result.steps}"
            trial.set_user_attr(PRUNED_REASON, reason)
            raise optuna.TrialPruned(reason)
        if result.status == "stopped":
            reason = pruned_reason(trial, f"pruned by {type(trial.study.pruner).__name__} at step {result.steps}")
            trial.set_user_attr(PRUNED_REASON, reason)
            raise optuna.TrialPruned(reason)
        trial.set_user_attr("final_accuracy", result.final_accuracy)
        trial.set_user_attr("final_loss", result.final_loss)
        if config.metric != "accuracy":
            trial.set_user_attr(f"final_{config.metric}", result.final_metric)
        return result.final_metric


def open_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
               task=None) -> optuna.Study:
    """Create the spec's study, or load it to continue (same name and storage).

    With ``task`` (the loaded data) the study records its label mapping
    (``earlyexit:label_names``: the original label of each class id) and metric.
    """
    url = storage or spec.storage
    max_steps = spec.train.with_budget(len(task.train)).max_steps if task is not None else None
    study = optuna.create_study(study_name=study_name or spec.name,
                                storage=make_storage(url, heartbeat_seconds=spec.heartbeat_seconds),
                                sampler=make_sampler(spec), pruner=make_pruner(spec, max_steps), direction="maximize",
                                load_if_exists=True)
    if STUDY_SPEC not in study.user_attrs:
        study.set_user_attr(STUDY_SPEC, Path(spec.path).read_text() if Path(spec.path).exists() else "")
        study.set_user_attr(STUDY_SPEC_PATH, spec.path)
        study.set_user_attr(STUDY_METRIC, spec.train.metric)
        if max_steps is not None:
            study.set_user_attr(STUDY_BUDGET, max_steps)
        if task is not None:
            study.set_user_attr(STUDY_DEV_LABELS, encode_classes(r[2] for r in task.dev))
            study.set_user_attr(STUDY_LABEL_NAMES, [x.item() if hasattr(x, "item") else x
                                                          for x in task.label_names])
    return study


def default_threads(n_jobs: int = 1) -> int:
    """Torch threads per trial: the cores this process may use that are not busy now (the 1-minute load
    average), shared among ``n_jobs`` trials at a time; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, (cores - min(busy, cores - 1)) // max(1, n_jobs))


def _lost_while_away(exc: BaseException) -> bool:
    """Whether ``exc`` is Optuna refusing to write on a trial another worker already failed (a stale heartbeat)."""
    return isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) or "Cannot tell a FAIL trial" in str(exc)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              n_trials: int | None = None, n_jobs: int = 1, show_progress: bool = True,
              callbacks: Sequence[Callable] = ()) -> optuna.Study:
    """Run (or continue) the study until it holds ``n_trials`` finished trials.

    The model, data and scorer are checked before the storage is touched, so
    a bad path leaves no study behind. ``callbacks``: Optuna callbacks
    (``callback(study, frozen_trial)``) called after each trial, as
    ``Study.optimize`` calls them.
    """
    from ..models import resolve

    resolve(spec.train.model)
    scorer = make_scorer(spec)
    task = load_task(spec.train.source)
    budget = spec.train.with_budget(len(task.train)).max_steps
    spec = with_scorer_rule(spec, scorer, budget)
    objective = Objective(spec, show_progress=show_progress, scorer=scorer, task=task)
    study = open_study(spec, storage=storage, study_name=study_name, task=objective.task)
    # Trials of a crashed process: failed and queued again with the same hyperparameters, at once where
    # the process was on this host, after the heartbeat's grace period (SQL storages) where it was not.
    fail_orphaned_trials(study)
    optuna.storages.fail_stale_trials(study)
    target = n_trials or spec.n_trials
    if spec.pruner.mode == "screen":
        return _run_screen(study, spec, objective, target, n_jobs, show_progress, list(callbacks))
    remaining = target - finished(study)
    if remaining <= 0:
        return study
    if spec.pruner.mode == "synchronous":
        # One cohort: every remaining trial at once, judged together at each rung (SynchronousResolutionPruner).
        study.pruner = spec.pruner.build_cohort(budget, remaining)
        objective.cohort = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"
        n_jobs = remaining
    callbacks = [optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                 *callbacks]
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=target - remaining, desc=f"study {study.study_name}", unit="trial",
                   position=0)
        callbacks.append(lambda s, t: bar.update(1) if t.state in (TrialState.COMPLETE, TrialState.PRUNED) else None)
    try:
        while True:
            try:
                study.optimize(objective, n_trials=target - finished(study), n_jobs=n_jobs, callbacks=callbacks,
                               catch=CAUGHT)
                break
            except Exception as exc:  # noqa: BLE001 - only a trial lost to a stale heartbeat is survived
                if not _lost_while_away(exc) or finished(study) >= target:
                    if _lost_while_away(exc):
                        break
                    raise
                print("a trial of this worker was failed by another while the database was away (its heartbeat went "
                      "stale) and is queued again; going on", file=sys.stderr, flush=True)
        # Before exiting: a worker of this host killed meanwhile leaves a RUNNING trial; retry it now.
        while fail_orphaned_trials(study) and finished(study) < target:
            study.optimize(objective, n_trials=target - finished(study), n_jobs=n_jobs, callbacks=callbacks,
                           catch=CAUGHT)
    finally:
        if bar is not None:
            bar.close()
    return study


def _run_screen(study, spec, objective, target, n_jobs, show_progress, callbacks=()) -> optuna.Study:
    """Screening: ``target`` trials to the first decision step, then the top K configs to the end."""
    done_states = (TrialState.COMPLETE, TrialState.PRUNED)

    def phase_trials(phase, states=done_states):
        return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get(PHASE_ATTR) == phase]

    step = spec.pruner.decision_steps[0]
    remaining = target - len(phase_trials("screen"))
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, n_jobs=n_jobs, catch=CAUGHT, callbacks=callbacks,
                       show_progress_bar=show_progress)
    screened = phase_trials("screen")
    scored = []
    for t in screened:
        value = t.user_attrs.get(at(SCORE_AT, step))
        if isinstance(value, (int, float)) and math.isfinite(value):
            scored.append((value, t))
    scored.sort(key=lambda vt: -vt[0])
    k = spec.pruner.keep_top or math.ceil(spec.pruner.keep_fraction * len(screened))
    finals = phase_trials("final", states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                                           TrialState.WAITING))
    have = [t.params for t in finals]
    for _, t in scored[:k]:
        if t.params not in have:
            study.enqueue_trial(t.params, user_attrs={PHASE_ATTR: "final", "earlyexit:screened_trial": t.number})
    # GridSampler may stop a study once its grid is used up: keep going until no final waits.
    for _ in range(3 * k + 3):
        waiting = [t for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                   if t.user_attrs.get(PHASE_ATTR) == "final"]
        if not waiting:
            break
        study.optimize(objective, n_trials=len(waiting), n_jobs=min(n_jobs, len(waiting)), catch=CAUGHT,
                       callbacks=callbacks, show_progress_bar=show_progress)
    return study
