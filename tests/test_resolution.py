"""The resolution rule: its standard errors against direct computation, its decisions, the pruner that
ships it against the replay that measures it, and the live replay with W workers."""

import math
import threading

import numpy as np
import optuna
import pytest

from earlyexit.names import DEV_METRIC_AT, DEV_PREDICTIONS_AT, STUDY_DEV_LABELS, WARMING_UP_AT, at
from earlyexit.pruning import Reading, ResolutionPruner, ResolutionRule, lead_resolved
from earlyexit.pruning._resolution import approximate_se, paired_se
from earlyexit.replay._engine import HeldSet, OptunaJudge, RuleJudge, live, prefix_rule
from earlyexit.replay._synchronous import synchronous
from earlyexit.replay._simulate import Run
from earlyexit.sweeps._format import encode_classes
from earlyexit.training._schedule import lr_progress

STEPS = (0, 10, 25, 50, 100, 200, 400)


def test_paired_standard_error_is_the_standard_error_of_the_per_example_difference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.8, labels, (labels + 1) % 3)
    b = np.where(rng.random(400) < 0.7, a, (a + 1) % 3)
    d = (a == labels).astype(float) - (b == labels)
    assert paired_se(a, b, labels) == pytest.approx(d.std(ddof=1) / 20)
    # Two models that agree on most examples differ far less than two independent ones would.
    assert paired_se(a, b, labels) < math.hypot(approximate_se((a == labels).mean(), 400),
                                                approximate_se((b == labels).mean(), 400))
    # MCC by paired bootstrap: positive, and of the size of the independent approximation or below.
    se = paired_se(a % 2, b % 2, labels % 2, "mcc")
    assert 0 < se < 0.1


def test_a_gap_of_zero_is_never_resolved_and_a_large_one_always_is():
    tie = Reading(0.5)
    assert lead_resolved(tie, Reading(0.5), n=1000, z=0.0) == (False, "approximate")
    assert lead_resolved(Reading(0.9), Reading(0.5), n=1000, z=3.0) == (True, "approximate")
    assert not lead_resolved(Reading(0.51), Reading(0.50), n=500, z=1.0)[0]  # 5 sentences: within noise
    labels = np.zeros(100, dtype=int)
    a, b = np.zeros(100, dtype=int), np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    assert lead_resolved(Reading(1.0, a), Reading(0.9, b), n=100, z=2.0, labels=labels) == (True, "paired")


def test_the_rule_needs_keep_resolved_leaders_spares_warming_up_trials_and_cuts_by_eta():
    rule = ResolutionRule((0.1, 0.5), keep=2, z=1.0)
    others = [Reading(0.9), Reading(0.9), Reading(0.51)]
    assert rule.prune(Reading(0.5), others, n=1000)[0]
    assert not rule.prune(Reading(0.5), others[:1] + others[2:], n=1000)[0]  # one resolved leader only
    assert not rule.prune(Reading(0.5, warming_up=True), others, n=1000)[0]  # its own pace
    assert ResolutionRule(keep=2, pace=False).prune(Reading(0.5, warming_up=True), others, n=1000)[0]
    # Every trial at the constant classifier: nobody is pruned, whatever z.
    flat = [Reading(0.5)] * 20
    assert not any(ResolutionRule(keep=1, z=0.0).prune(Reading(0.5), flat, n=1000)[0] for _ in range(3))
    # eta: only the trials outside the top 1/eta are candidates.
    many = [Reading(0.9)] * 3 + [Reading(0.52)] * 4
    assert not ResolutionRule(keep=1, z=1.0, eta=2).prune(Reading(0.89), many, n=1000)[0]
    assert ResolutionRule(keep=1, z=1.0, eta=2).prune(Reading(0.5), many, n=1000)[0]
    with pytest.raises(ValueError, match="increasing fractions"):
        ResolutionRule((0.5, 0.1))
    with pytest.raises(ValueError, match="keep must be at least 1"):
        ResolutionRule(keep=0)


def test_rungs_fall_on_the_first_logged_step_at_or_past_each_fraction():
    rule = ResolutionRule((0.05, 0.1, 0.25, 0.5))
    assert rule.rung_steps(800, STEPS) == (50, 100, 200, 400)
    assert rule.rung_steps(465, STEPS) == (25, 50, 200, 400)
    assert rule.rung_steps(100) == (5, 10, 25, 50)


def _held(n_runs=12, n_dev=200, seed=0, with_records=True) -> HeldSet:
    """A synthetic seed: learning curves that rise at different speeds, some late starters (long warmups)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_dev)
    runs, preds, warm = [], {}, {}
    for i in range(n_runs):
        skill, warmup = rng.uniform(0.55, 0.95), float(rng.choice([0.0, 0.1, 0.3]))
        signature, compute = {}, {}
        for s in STEPS:
            p = 0.5 + (skill - 0.5) * min(1.0, s / 400) * (0.3 if s < warmup * 800 else 1.0)
            right = rng.random(n_dev) < p
            pred = np.where(right, labels, 1 - labels)
            signature[s] = {"dev_metric": float(right.mean()), "lr_progress": lr_progress(s, 800, warmup)}
            compute[s] = float(s)
            preds[(f"r{i:02d}", s)] = pred.astype(np.int16)
        runs.append(Run(f"r{i:02d}", f"c{i:02d}", 0, skill + rng.normal(0, 0.01), 800, signature, compute, 800.0,
                        False, {"warmup_ratio": warmup}))
        warm[f"r{i:02d}"] = warmup
    test = {r.run_id: r.final + rng.normal(0, 0.01) for r in runs}
    return HeldSet("synthetic", "t", "accuracy", 0, tuple(runs), 800, n_dev,
                   labels.astype(np.int16) if with_records else None, preds if with_records else {}, test, None,
                   warm, STEPS)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("records,progress_match", [(True, False), (False, False), (True, True)])
def test_the_shipped_pruner_decides_as_the_replayed_rule_in_a_real_optuna_study(workers, records, progress_match):
    held = _held(with_records=records)
    rule = ResolutionRule((0.05, 0.25, 0.5), keep=1, z=1.0, progress_match=progress_match)
    for order in range(4):
        replayed = live(held, RuleJudge(held, rule), order, workers)
        pruner = lambda: ResolutionPruner.for_budget(rule, 800, eval_steps=STEPS, dev_size=held.n_dev)  # noqa: E731
        shipped = live(held, OptunaJudge(held, pruner, order, attrs=True), order, workers)
        assert shipped.kept == replayed.kept and shipped.compute_used == pytest.approx(replayed.compute_used)
    if progress_match:  # comparable progress judges warming-up trials that the plain pace lets pass
        plain = ResolutionRule((0.05, 0.25, 0.5), keep=1, z=1.0)
        assert np.mean([live(held, RuleJudge(held, rule), o, 1).compute_used for o in range(4)]) < \
            np.mean([live(held, RuleJudge(held, plain), o, 1).compute_used for o in range(4)])


def test_workers_judge_against_fewer_finished_trials_and_synchronous_against_all():
    held = _held(n_runs=16)
    median = lambda: optuna.pruners.MedianPruner(n_startup_trials=2)  # noqa: E731  (compares with finished trials)
    one = np.mean([live(held, OptunaJudge(held, median, o), o, 1).compute_used for o in range(5)])
    many = np.mean([live(held, OptunaJudge(held, median, o), o, 16).compute_used for o in range(5)])
    assert many > one  # all sixteen started at once: no trial has finished when the others are judged
    rule = ResolutionRule((0.1, 0.25, 0.5), keep=1, z=1.0)
    # The rule compares trials at the same rung only: with every trial at one speed, what has reached a rung
    # before a trial does is the same whether they run one or sixteen at a time.
    for o in range(3):
        assert live(held, RuleJudge(held, rule), o, 1) == live(held, RuleJudge(held, rule), o, 16)
    sync = synchronous(held, rule)
    assert 0 < sync.compute_used < 1 and sync.regret >= 0 and math.isfinite(sync.test_regret)
    assert prefix_rule(held, 0.1, 1, 0).compute_used < sync.compute_used


def test_the_pruner_in_a_threaded_study_prunes_only_on_resolved_leads():
    held = _held(n_runs=20, seed=3)
    rule = ResolutionRule((0.05, 0.25, 0.5), keep=2, z=1.0)
    pruner = ResolutionPruner.for_budget(rule, 800, eval_steps=STEPS)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.set_user_attr(STUDY_DEV_LABELS, encode_classes(held.labels))
    lock, queue = threading.Lock(), list(held.runs)

    def objective(trial):
        with lock:
            run = queue.pop(0)
        for s in STEPS[1:]:
            v = run.signature[s]["dev_metric"]
            trial.set_user_attr(at(DEV_METRIC_AT, s), v)
            trial.set_user_attr(at(WARMING_UP_AT, s), s < held.warmup[run.run_id] * 800)
            trial.set_user_attr(at(DEV_PREDICTIONS_AT, s), encode_classes(held.predictions[(run.run_id, s)]))
            trial.report(v, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return run.final

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=len(held.runs), n_jobs=4)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    labels = held.labels
    for t in pruned:
        step = t.last_step
        assert step in pruner.decision_steps and not t.user_attrs[at(WARMING_UP_AT, step)]
        mine = Reading(t.intermediate_values[step], np.array([int(c) for c in t.user_attrs[at(DEV_PREDICTIONS_AT, step)]]))
        leaders = 0
        for o in study.trials:
            if o.number != t.number and step in o.intermediate_values:
                other = Reading(o.intermediate_values[step],
                                np.array([int(c) for c in o.user_attrs[at(DEV_PREDICTIONS_AT, step)]]))
                leaders += lead_resolved(other, mine, n=len(labels), z=1.0, labels=labels)[0]
        assert leaders >= 2
