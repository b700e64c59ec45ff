"""The reporting protocol: a plain Optuna objective gets the measured rule, at its rungs, with clear warnings."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest

import earlyexit
from earlyexit import protocol
from earlyexit.names import DEV_PREDICTIONS_AT, DEV_SIZE, MAX_STEPS, STUDY_DEV_LABELS, WARMING_UP_AT, at
from earlyexit.pruning import DEFAULT_RULE, ResolutionPruner, ResolutionRule
from earlyexit.replay._engine import HeldSet, Judge, RuleJudge, live
from earlyexit.replay._simulate import Run

README = Path(__file__).resolve().parents[1] / "README.md"
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _fresh_warnings():
    protocol._warned.clear()
    yield


def _curve(rng, skill, warmup, steps, labels):
    """Per-example predictions of a trial whose accuracy rises towards ``skill`` after its warmup."""
    out = {}
    for s in steps:
        p = 0.5 if s < warmup else 0.5 + (skill - 0.5) * min(1.0, s / 150)
        right = rng.random(len(labels)) < p
        out[s] = np.where(right, labels, 1 - labels)
    return out


def _synthetic_study(pruner, *, n_trials=30, budget=300, every=10, report_warmup=True, predictions=True,
                     budgets=None, seed=0):
    """A plain objective: each trial reports a noisy dev accuracy every ``every`` steps of its budget."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    seen: dict[int, list[int]] = {}

    def objective(trial):
        own = budgets[trial.number % len(budgets)] if budgets else budget
        skill, warmup = rng.uniform(0.55, 0.95), int(rng.choice([0, 0.1 * own, 0.3 * own]))
        curve = _curve(rng, skill, warmup, range(every, own + 1, every), labels)
        for s, preds in curve.items():
            acc = float((preds == labels).mean())
            earlyexit.report(trial, s, acc, predictions=preds if predictions else None,
                             labels=labels if predictions else None,
                             warmup_steps=warmup if report_warmup else None,
                             max_steps=own if budgets else None, dev_size=None if predictions else len(labels))
            seen.setdefault(trial.number, []).append(s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study.optimize(objective, n_trials=n_trials)
    return study, seen


def _pruned_step(t):
    return max(t.intermediate_values) if t.state == optuna.trial.TrialState.PRUNED else None


def test_max_resource_decides_only_at_the_rungs_and_never_on_a_warming_up_trial():
    study, _ = _synthetic_study(ResolutionPruner(max_resource=300))
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the synthetic study has resolvable losers"
    rung_steps = {20, 30, 80, 150}  # the first step reported every 10 at or past 5/10/25/50% of 300
    for t in pruned:
        step = _pruned_step(t)
        assert step in rung_steps
        assert t.user_attrs[at(WARMING_UP_AT, step)] is False
        reason = t.system_attrs[protocol.REASON_ATTR]
        assert re.match(rf"step {step} at \d+% of its 300-step budget: 1\+ trial\(s\) ahead by > 1 SE \(paired\)",
                        reason), reason
    assert study.user_attrs[STUDY_DEV_LABELS] and pruned[0].user_attrs[DEV_SIZE] == 400


def test_no_budget_says_so_once_and_decides_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study, _ = _synthetic_study(ResolutionPruner(), n_trials=6)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    budget_warnings = [w for w in caught if "max_resource" in str(w.message)]
    assert len(budget_warnings) == 1


def test_without_dev_size_or_predictions_the_study_runs_to_the_end_with_one_warning():
    rng = np.random.default_rng(1)
    study = optuna.create_study(direction="maximize", pruner=ResolutionPruner(max_resource=300))

    def objective(trial):
        for s in range(10, 301, 10):
            earlyexit.report(trial, s, float(rng.uniform(0.5, 0.9)), warmup_steps=0)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.5

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=5)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 5
    size = [w for w in caught if "dev size" in str(w.message)]
    assert len(size) == 1 and "dev_size=" in str(size[0].message)


def test_without_the_warmup_every_trial_is_judged_and_one_warning_says_so():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _synthetic_study(ResolutionPruner(max_resource=300), n_trials=8, report_warmup=False)
    assert len([w for w in caught if "warm up" in str(w.message)]) == 1


@pytest.mark.parametrize("value", [float("nan"), "0.7", None, [0.5]])
def test_bad_values_are_skipped_with_a_message_naming_the_trial_and_step(value):
    study = optuna.create_study(direction="maximize", pruner=ResolutionPruner(max_resource=100, dev_size=100))

    def objective(trial):
        with pytest.warns(protocol.ReportWarning, match=rf"trial {trial.number} at step 10") if not (
                isinstance(value, float)) else warnings.catch_warnings():
            ok = earlyexit.report(trial, 10, value, warmup_steps=0)
        assert ok is isinstance(value, float)  # NaN is a number: reported (a diverged trial), not skipped
        assert not trial.should_prune()
        earlyexit.report(trial, 20, 0.6, warmup_steps=0)
        return 0.6

    study.optimize(objective, n_trials=2)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_wrong_length_predictions_and_backward_steps_are_trimmed_or_skipped():
    study = optuna.create_study(direction="maximize", pruner=ResolutionPruner(max_resource=100))
    labels = np.array([0, 1, 1, 0, 1])

    def objective(trial):
        with pytest.warns(protocol.ReportWarning, match="3 predictions for 5 labels"):
            assert earlyexit.report(trial, 10, 0.6, predictions=[0, 1, 1], labels=labels)
        assert at(DEV_PREDICTIONS_AT, 10) not in study.trials[trial.number].user_attrs
        assert study.trials[trial.number].user_attrs[DEV_SIZE] == 5  # the size still follows from the labels
        with pytest.warns(protocol.ReportWarning, match="steps went backwards"):
            assert not earlyexit.report(trial, 5, 0.7)
        with pytest.warns(protocol.ReportWarning, match="non-negative integer"):
            assert not earlyexit.report(trial, -1, 0.7)
        assert earlyexit.report(trial, 20, 0.7, predictions=np.eye(2)[[0, 1, 1, 0, 1]], labels=labels)
        assert protocol.decode_classes(study.trials[trial.number].user_attrs[at(DEV_PREDICTIONS_AT, 20)]) == \
            [0, 1, 1, 0, 1]  # per-class scores: their argmax
        return 0.7

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_resource"):
        ResolutionPruner(max_resource=0)
    with pytest.raises(ValueError, match="judge_at"):
        ResolutionPruner(max_resource=10, judge_at="time")


def test_trials_of_different_budgets_meet_at_the_same_fraction_of_their_own():
    study, _ = _synthetic_study(ResolutionPruner(judge_at="fraction"), n_trials=30, budgets=(200, 600), every=10,
                                seed=2)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned
    for t in pruned:
        own = t.user_attrs[MAX_STEPS]
        step = _pruned_step(t)
        fraction = int(re.match(r"step \d+ at (\d+)% of", t.system_attrs[protocol.REASON_ATTR]).group(1)) / 100
        assert fraction in DEFAULT_RULE.rungs
        assert protocol.rung_step(t.intermediate_values, fraction, own) == step
        assert f"of its {own}-step budget" in t.system_attrs[protocol.REASON_ATTR]
    # Judged at equal step numbers (the default), the rivals are whoever reported at that step number: still only
    # at the trial's own rungs.
    by_step, _ = _synthetic_study(ResolutionPruner(judge_at="step"), n_trials=30, budgets=(200, 600), seed=2)
    for t in by_step.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            own, step = t.user_attrs[MAX_STEPS], _pruned_step(t)
            assert step in {protocol.rung_step(t.intermediate_values, f, own) for f in DEFAULT_RULE.rungs}


# -- the README's plain objective, run as it stands, decides as the replay does ----------------------------


def _readme_block() -> str:
    text = README.read_text()
    section = text[text.index("## In your own Optuna objective"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


class _Recording(Judge):
    """A judge that remembers where the wrapped one pruned each trial."""

    def __init__(self, inner: RuleJudge):
        self.inner, self.pruned = inner, {}

    def steps(self, held):
        return self.inner.steps(held)

    def at(self, index, run, step):
        prune = self.inner.at(index, run, step)
        if prune:
            self.pruned[run.run_id] = step
        return prune


def test_the_readme_objective_prunes_at_its_rungs_as_the_replay_does():
    namespace: dict = {}
    exec(compile(_readme_block(), str(README), "exec"), namespace)
    study = namespace["study"]
    budget = len(namespace["train"])
    labels = namespace["dev"]["labels"].numpy().astype(np.int16)
    trials = study.trials
    pruned = {f"t{t.number}": _pruned_step(t) for t in trials if t.state == optuna.trial.TrialState.PRUNED}
    assert pruned, "the README's study prunes some trials (else the comparison below says nothing)"
    runs, predictions, warmup = [], {}, {}
    for t in trials:
        rid = f"t{t.number}"
        signature = {s: {"dev_metric": v, "lr_progress": math.nan} for s, v in t.intermediate_values.items()}
        for s in t.intermediate_values:
            predictions[(rid, s)] = np.asarray(protocol.decode_classes(t.user_attrs[at(DEV_PREDICTIONS_AT, s)]),
                                               dtype=np.int16)
        runs.append(Run(rid, rid, 0, t.value if t.value is not None else math.nan, budget, signature,
                        {s: float(s) for s in signature}, float(budget), False))
        warmup[rid] = t.params["warmup"] / budget
    held = HeldSet("readme", "sst2", "accuracy", 0, tuple(runs), budget, len(labels), labels, predictions, {},
                   None, warmup, tuple(range(10, budget, 10)))
    judge = _Recording(RuleJudge(held, DEFAULT_RULE))
    live(held, judge, 0, order=list(range(len(runs))))
    assert judge.pruned == pruned
    for t in trials:  # never a warming-up trial, and only at the rungs
        if f"t{t.number}" in pruned:
            step = pruned[f"t{t.number}"]
            assert step >= t.params["warmup"] and step in DEFAULT_RULE.rung_steps(budget, range(10, budget, 10))


def test_the_pruner_with_max_resource_decides_as_the_replayed_rule():
    from test_resolution import STEPS, _held
    from earlyexit.replay._engine import OptunaJudge

    held = _held()
    rule = ResolutionRule((0.05, 0.25, 0.5), keep=1, z=1.0)
    for order in range(3):
        replayed = live(held, RuleJudge(held, rule), order)
        shipped = live(held, OptunaJudge(held, lambda: ResolutionPruner(rule, max_resource=800), order, attrs=True),
                       order)
        assert shipped.kept == replayed.kept and shipped.compute_used == pytest.approx(replayed.compute_used)
    assert STEPS
