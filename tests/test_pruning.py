"""The pruning rule on hand-made scores, and GeometricPruner through Optuna's ask/report/tell."""

import math

import optuna
import pytest

from earlyexit.pruning import GeometricPruner, decide
from earlyexit.scoring import ProbeRankScorer


def test_keep_top_both_sides_of_the_bound():
    assert not decide(0.5, [0.9, 0.1], step=50, keep_top=2).prune  # one better: inside top 2
    assert decide(0.5, [0.9, 0.8], step=50, keep_top=2).prune  # two better: out
    assert not decide(0.8, [0.9, 0.8], step=50, keep_top=2).prune  # ties keep
    # dev ties: only others with a strictly higher dev metric outrank (here one of the two)
    assert not decide(0.5, [0.9, 0.8], step=50, keep_top=2, dev=0.7, others_dev=[0.7, 0.75]).prune
    assert decide(0.5, [0.9, 0.8], step=50, keep_top=1, dev=0.7, others_dev=[0.7, 0.75]).prune
    assert not decide(0.5, [0.9, 0.8], step=50, keep_top=1, dev=0.7, others_dev=[0.7, 0.7]).prune
    assert decide(0.5, [0.9, 0.8], step=50, keep_top=1, dev=math.nan, others_dev=[0.7, 0.7]).prune  # unknown: score
    with pytest.raises(ValueError, match="others_dev"):
        decide(0.5, [0.9, 0.8], step=50, keep_top=1, dev=0.7, others_dev=[0.7])


def test_keep_fraction_and_startup():
    others = [0.1, 0.2, 0.3, 0.4]  # 5 trials: top 40% is 2 trials
    assert not decide(0.35, others, step=10, keep_fraction=0.4).prune  # rank 2
    assert decide(0.25, others, step=10, keep_fraction=0.4).prune  # rank 3
    assert not decide(-1.0, [0.9, 0.8], step=10, keep_top=1, n_startup_trials=3).prune
    assert decide(-1.0, [0.9, 0.8, 0.7], step=10, keep_top=1, n_startup_trials=3).prune


def test_non_finite_scores():
    assert decide(math.nan, [], step=0, keep_top=1).prune
    assert decide(math.inf, [], step=0, keep_top=1).prune
    # Non-finite others are ignored: a lone finite score ranks first.
    assert not decide(0.1, [math.nan, math.nan], step=0, keep_top=1, n_startup_trials=0).prune


def test_decide_agrees_with_the_rule_in_words_on_random_scores():
    """The rule as its docstring states it, counted plainly, against ``decide`` on random scores and dev
    values with NaNs and infinities among them (``decide`` is the replay's inner loop, written for speed)."""
    import random

    rng = random.Random(0)
    pick = lambda: rng.choice([math.nan, math.inf, -math.inf] + [round(rng.random(), 1) for _ in range(7)])  # noqa: E731
    for _ in range(3000):
        n = rng.randrange(0, 7)
        score, others = round(rng.random(), 1), [pick() for _ in range(n)]
        dev, others_dev = pick(), [pick() for _ in range(n)]
        keep_top, margin, startup = rng.randrange(1, 4), rng.choice([0.0, 0.1]), rng.randrange(0, 4)
        ties = rng.random() < 0.5
        finite = [(o, d) for o, d in zip(others, others_dev) if math.isfinite(o)]
        both = lambda d: ties and math.isfinite(d) and math.isfinite(dev)  # noqa: E731
        better = sum(o > score + margin and (not both(d) or d > dev) for o, d in finite)
        expected = False if len(finite) < startup else better >= keep_top
        kwargs = dict(dev=dev, others_dev=others_dev) if ties else {}
        got = decide(score, others, step=1, keep_top=keep_top, margin=margin, n_startup_trials=startup, **kwargs)
        assert got.prune == expected, (score, others, dev, others_dev, keep_top, margin, startup, ties)


@pytest.mark.parametrize("kwargs, match", [
    (dict(keep_top=0), "keep_top must be at least 1"),
    (dict(keep_fraction=0.0), "keep_fraction must be in"),
    (dict(keep_fraction=1.01), "keep_fraction must be in"),
    (dict(keep_top=None, keep_fraction=None), "exactly one"),
    (dict(keep_top=1, n_startup_trials=-1), "n_startup_trials must be at least 0"),
    (dict(keep_top=1, margin=-0.1), "margin must be at least 0"),
    (dict(keep_top=1, min_lr_progress=1.5), "min_lr_progress must be in"),
])
def test_bounds_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        decide(0.0, [], step=0, **kwargs)
    decide(0.0, [], step=0, keep_fraction=1.0)  # the upper bound itself is fine


def test_margin_keeps_near_ties_and_lr_progress_defers_judgement():
    # Within half a point of the best two: kept; more than that below the second: pruned.
    assert not decide(0.846, [0.85, 0.849], step=100, keep_top=1, margin=0.005).prune
    assert decide(0.840, [0.85, 0.849], step=100, keep_top=1, margin=0.005).prune
    assert "(margin 0.005)" in decide(0.840, [0.85], step=100, keep_top=1, margin=0.005).reason
    # A trial that has spent 0.4% of its learning rate is not judged, however low it scores ...
    early = decide(0.5, [0.9, 0.8], step=100, keep_top=1, lr_progress=0.004, min_lr_progress=0.02)
    assert not early.prune and "too early to judge" in early.reason
    # ... one past the threshold, or with unknown progress, is.
    assert decide(0.5, [0.9, 0.8], step=100, keep_top=1, lr_progress=0.03, min_lr_progress=0.02).prune
    assert decide(0.5, [0.9, 0.8], step=100, keep_top=1, lr_progress=None, min_lr_progress=0.02).prune
    # A diverged trial is pruned even when early.
    assert decide(math.nan, [], step=100, keep_top=1, lr_progress=0.0, min_lr_progress=0.02).prune


def test_geometric_pruner_reads_the_trials_lr_progress():
    study = optuna.create_study(direction="maximize", pruner=GeometricPruner(
        decision_steps=[100], keep_top=1, n_startup_trials=0, min_lr_progress=0.02))
    first = study.ask()
    first.report(0.9, 100)
    assert not first.should_prune()
    study.tell(first, 0.9)
    slow = study.ask()
    slow.set_user_attr("lr_progress@100", 0.004)  # a long warmup: too early
    slow.report(0.5, 100)
    assert not slow.should_prune()
    study.tell(slow, 0.91)
    judged = study.ask()
    judged.set_user_attr("lr_progress@100", 0.05)
    judged.report(0.5, 100)
    assert judged.should_prune()


def test_geometric_pruner_in_a_study():
    study = optuna.create_study(direction="maximize",
                                pruner=GeometricPruner(decision_steps=[50], keep_top=1, n_startup_trials=1))
    scores = [0.3, 0.9, 0.5, 0.95]
    pruned = []
    for s in scores:
        trial = study.ask()
        trial.report(s - 1, 10)  # not a decision step: never prunes
        assert not trial.should_prune()
        trial.report(s, 50)
        pruned.append(trial.should_prune())
        if pruned[-1]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, s)
    assert pruned == [False, False, True, False]
    reason = study.trials[2].system_attrs["earlyexit:pruned_reason"]
    assert "ranked 2 of 3 at step 50" in reason


def test_geometric_pruner_arguments():
    with pytest.raises(ValueError, match="decision_steps"):
        GeometricPruner(decision_steps=[])
    with pytest.raises(ValueError, match="not both"):
        GeometricPruner(keep_top=1, keep_fraction=0.5)


def test_rank_scorer_direction_and_missing_values():
    sig = {50: {"loss": 0.4, "gradient_norm": 2.0}}
    assert ProbeRankScorer("loss").score(sig, 50) == -0.4
    assert ProbeRankScorer("gradient_norm", higher_is_better=True).score(sig, 50) == 2.0
    assert math.isnan(ProbeRankScorer("loss").score(sig, 100))
    assert math.isnan(ProbeRankScorer("loss").score({50: {"loss": math.inf}}, 50))


def test_a_pruner_from_a_transfer_scorers_rule():
    from earlyexit.scoring._transfer import Rule, TransferScorer

    scorer = TransferScorer(("dev",), Rule((0.05, 0.2), keep_top=2, min_lr_progress=0.02, margin_quantile=0.5,
                                           unit="budget", dev_ties=True))
    scorer.estimators_ = {0.05: None, 0.2: None}
    scorer.margins_ = {0.05: 0.03, 0.2: 0.01}
    pruner = GeometricPruner.from_scorer(scorer, max_steps=465)
    # 5% of 465 steps is 23 (probe step 10), 20% is 93 (probe step 50).
    assert pruner.decision_steps == (10, 50)
    assert pruner.margin_at(10) == 0.03 and pruner.margin_at(50) == 0.01
    assert pruner._dev_ties  # the rule's tie test goes with it
    with pytest.raises(ValueError, match="falls on a probe step"):
        GeometricPruner.from_scorer(scorer, max_steps=100, probe_steps=(0, 50))
    with pytest.raises(TypeError, match="no decision rule"):
        GeometricPruner.from_scorer(object(), max_steps=100)
