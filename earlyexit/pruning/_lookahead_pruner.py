"""``LookaheadPruner``: the shipped rule, plus a prediction of each trial's final with calibrated intervals.

It decides as the replay's ``lookahead`` policy (:mod:`earlyexit.replay._lookahead`) through the same function,
:func:`earlyexit.pruning._lookahead.judge`, on what the study's trials recorded (:mod:`earlyexit.protocol`).
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import TrialState

from .. import protocol
from ..metrics import majority_share
from ..names import STUDY_LABEL_NAMES, STUDY_METRIC, WARMUP_RATIO, WARMUP_STEPS
from ._lookahead import CALIBRATIONS, fallback_margins, lookahead_judge
from ._resolution import ResolutionRule
from ._resolution_pruner import ResolutionPruner


class LookaheadPruner(ResolutionPruner):
    """:class:`ResolutionPruner`, and at its rungs and at the end of each trial's own warmup, also prune a trial
    whose optimistic final is below the ``keep``-th best pessimistic final of the study's other trials (completed,
    or running at their latest reading) by more than ``z`` standard errors of the dev set.

    A final is the reading plus a gain predicted by ``predictor`` (a fitted
    :class:`~earlyexit.scoring.FinalPredictor`, ``earlyexit.scoring.load_predictor()`` for the package's), in
    headroom units over the constant classifier, with margins at ``coverage`` each side: split-conformal on this
    study's completed trials at the same step once there are enough, else the predictor's own (other tasks).
    A trial missing what the prediction reads (its peak learning rate, warmup, schedule progress, dev loss) is
    judged by the rule alone, and one warning says so.

    Args:
        predictor: the fitted predictor.
        coverage, keep, z: the look-ahead's settings (the nested comparison's choice).
        calibration: ``"study"`` (the default, what ``[pruner] lookahead = true`` runs: no look-ahead bound at a
            step until the study has enough completed trials there) or ``"study+tasks"`` (the predictor's margins
            until then).
        refit: None (the default: the study's completed trials only calibrate the intervals), or a shrink factor
            in (0, 1]: the readings of the study's completed trials also join the predictor's neighbours, their
            distances times ``refit`` (a study refit; :meth:`~earlyexit.scoring.FinalPredictor.predict_in_study`),
            and each completed trial's errors are those of a prediction without its own readings.
        rule, max_resource, decision_steps, judge_at, dev_size, metric: as :class:`ResolutionPruner`.
    """

    def __init__(self, predictor, *, coverage: float = 0.8, keep: int = 1, z: float = 1.0,
                 calibration: str = "study", refit: float | None = None, rule: ResolutionRule | None = None,
                 **settings):
        super().__init__(rule, **settings)
        if refit is not None and not 0 < refit <= 1:
            raise ValueError(f"refit must be None or a shrink factor in (0, 1], but got {refit}.")
        self.refit = refit
        if not 0 < coverage < 1 or keep < 1 or not z >= 0:
            raise ValueError(f"coverage must be in (0, 1), keep at least 1 and z at least 0, but got {coverage}, "
                             f"{keep}, {z}.")
        if getattr(predictor, "probes", ()):
            raise ValueError(f"this predictor reads probe features {tuple(predictor.probes)}, which an Optuna trial "
                             "does not report; fit one without probes (`earlyexit fit SWEEPS --predictor`).")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, but got {calibration!r}.")
        self.predictor, self.coverage, self.keep, self.z, self.calibration = predictor, coverage, keep, z, calibration
        self._completed_gains: dict[str, dict] = {}  # study name -> (trial number, step) -> predicted gain
        self._pools: dict[str, tuple] = {}  # study name -> (its completed trials and context, what the refit reads)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if super().prune(study, trial):
            return True
        step = trial.last_step
        if step is None:
            return False
        default = self.max_resource or protocol.study_budget(study)
        own = protocol.budget(trial, default)
        if own is None or not self._decides_at(trial, step, own):
            return False
        context = self._context(study)
        if context is None:
            return False
        constant, classes, metric, labels = context
        mine = protocol.features(trial, step, constant=constant, classes=classes, default_budget=default)
        if mine is None:
            protocol.warn_once(f"no-lookahead:{study.study_name}", "LookaheadPruner cannot predict a trial's final "
                               "without its peak learning rate, warmup, schedule progress and dev loss: report "
                               "learning_rate=, warmup_steps=, lr_progress= and dev_loss=; judged by the rule alone.")
            return False
        n = protocol.dev_size(trial, labels) or self._dev_size
        if n is None:
            return False
        H = protocol.headroom(constant)
        others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
                  if t.number != trial.number]
        if self.refit is not None:
            finals, errors, running, gain = self._refitted(study.study_name, others, mine, context, default, H)
        else:
            finals, errors, running, gain = self._prior_only(study, others, mine, step, context, default, H)
        value = protocol.reading(trial, step, None).value
        if not math.isfinite(gain):
            return False
        prune = lookahead_judge(value, gain, step, finals=finals, errors=errors, running=running,
                                fallback=fallback_margins(self.predictor, self.calibration, self.coverage, own),
                                coverage=self.coverage, keep=self.keep, z=self.z, headroom=H, n=n, metric=metric)
        if prune:
            protocol.set_pruned_reason(
                study, trial, f"step {step} of {own}: its optimistic final is below the {self.keep}-th best "
                              f"pessimistic final of the study ({self.coverage:.0%} intervals, look-ahead)")
        return prune

    def _prior_only(self, study, others, mine, step, context, default, H):
        """``(finals, errors by step, running readings, this reading's gain)`` with the predictor as fitted."""
        constant, classes = context[0], context[1]
        keys, rows = [("mine", step)], [mine]
        known = self._completed_gains.setdefault(study.study_name, {})  # a completed trial's readings never change
        gains = {}
        for t in others:
            steps = sorted(t.intermediate_values) if t.state == TrialState.COMPLETE else \
                [max(t.intermediate_values)] if t.intermediate_values else []
            for s in steps:
                if t.state == TrialState.COMPLETE and (t.number, s) in known:
                    gains[(t.number, s)] = known[(t.number, s)]
                    continue
                row = protocol.features(t, s, constant=constant, classes=classes, default_budget=default)
                if row is not None:
                    keys.append((t.number, s))
                    rows.append(row)
        gains.update(zip(keys, self.predictor.predict(np.array(rows, dtype=float))))
        complete = {t.number for t in others if t.state == TrialState.COMPLETE}
        known.update({k: g for k, g in gains.items() if k[0] in complete})
        finals, errors, running = [], {}, []
        for t in others:
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                finals.append(float(t.value))
                for s in t.intermediate_values:
                    g = gains.get((t.number, s))
                    if g is not None and math.isfinite(g):
                        v = protocol.reading(t, s, None).value
                        errors.setdefault(s, []).append((float(t.value) - v) / H - float(g))
            elif t.state == TrialState.RUNNING and t.intermediate_values:
                s = max(t.intermediate_values)
                g = gains.get((t.number, s))
                if g is not None and math.isfinite(g):
                    running.append((s, protocol.reading(t, s, None).value, float(g)))
        return finals, errors, running, float(gains[("mine", step)])

    def _refitted(self, name, others, mine, context, default, H):
        """As :meth:`_prior_only`, with the completed trials' readings among the predictor's neighbours."""
        constant, classes = context[0], context[1]
        finals, errors, X, g = self._study_pool(name, others, len(mine), context, default, H)
        running_keys, rows = [], [mine]
        for t in others:
            if t.state == TrialState.RUNNING and t.intermediate_values:
                s = max(t.intermediate_values)
                row = protocol.features(t, s, constant=constant, classes=classes, default_budget=default)
                if row is not None:
                    running_keys.append((s, protocol.reading(t, s, None).value))
                    rows.append(row)
        gains = self.predictor.predict_in_study(np.array(rows, dtype=float), X, g, self.refit)
        running = [(s, v, float(gn)) for (s, v), gn in zip(running_keys, gains[1:]) if math.isfinite(gn)]
        return finals, errors, running, float(gains[0])

    def _study_pool(self, name, others, width, context, default, H):
        """``(finals, errors by step, readings X, their true gains g)`` of the study's completed trials, each error
        predicted without its own trial's readings. A completed trial never changes, so this is kept until another
        completes (the cost grows with the square of the completed readings)."""
        complete = sorted((t for t in others if t.state == TrialState.COMPLETE), key=lambda t: t.number)
        key = (tuple(t.number for t in complete), width, context[:3], default)  # H follows from the context
        kept = self._pools.get(name)
        if kept is not None and kept[0] == key:
            return kept[1]
        constant, classes = context[0], context[1]
        pool_keys, pool_rows, pool_gain, finals = [], [], [], []
        for t in complete:
            if t.value is None or not math.isfinite(t.value):
                continue
            finals.append(float(t.value))
            own = protocol.budget(t, default)
            for s in sorted(t.intermediate_values):
                row = protocol.features(t, s, constant=constant, classes=classes, default_budget=default)
                if row is not None and 0 < s < (own or math.inf) and np.isfinite(row).all():
                    pool_keys.append((t.number, s))
                    pool_rows.append(row)
                    pool_gain.append((float(t.value) - protocol.reading(t, s, None).value) / H)
        X = np.array(pool_rows, dtype=float).reshape(-1, width)
        g = np.array(pool_gain, dtype=float)
        errors: dict[int, list[float]] = {}
        if len(X):  # each completed reading predicted without its own trial's readings
            Z, d, nb = self.predictor.prior_neighbours(X)
            trial_of = [k[0] for k in pool_keys]
            own_out = self.predictor.leave_trial_out_errors(d, nb, self.predictor.study_distances(Z, Z, self.refit),
                                                            g, g, trial_of, trial_of)
            for (number, s), e in zip(pool_keys, own_out):
                if math.isfinite(e):
                    errors.setdefault(s, []).append(float(e))
        self._pools[name] = (key, (finals, errors, X, g))
        return finals, errors, X, g

    def _decides_at(self, trial, step: int, own: int) -> bool:
        """At the rule's rungs on the trial's budget, and at the first reported step past its own warmup."""
        if self._rung_of(trial, step, own) is not None:
            return True
        a = trial.user_attrs
        end = a.get(WARMUP_STEPS)
        if a.get(WARMUP_RATIO) is not None:  # as the replay rounds it
            end = protocol.warmup_steps(own, float(a[WARMUP_RATIO]))
        if not end or end <= 0:
            return False
        earlier = [s for s in trial.intermediate_values if s < step]
        return step >= end and not any(s >= end for s in earlier)

    def _context(self, study):
        """``(constant, classes, metric, labels)`` of the study, or None where its labels are unknown."""
        metric = self._metric or str(study.user_attrs.get(STUDY_METRIC, "accuracy"))
        labels = self._labels(study)
        names = study.user_attrs.get(STUDY_LABEL_NAMES)
        if labels is None:
            protocol.warn_once(f"no-labels:{study.study_name}", "LookaheadPruner needs the dev labels (report "
                               "labels=) to place a reading over the constant classifier; judged by the rule alone.")
            return None
        classes = len(names) if names else int(labels.max()) + 1
        constant = 0.0 if metric == "mcc" else majority_share(labels) if metric == "accuracy" else None
        if constant is None:
            return None
        return constant, max(classes, 2), metric, labels
