"""The Wilcoxon replay's memo changes no decision: the same figures with it and without it."""

import warnings
from pathlib import Path

import optuna
import scipy.stats

from earlyexit.replay._engine import OptunaJudge, held_sets, live
from earlyexit.replay._optuna_replay import memoized_wilcoxon
from earlyexit.sweeps import load

SWEEP = Path(__file__).resolve().parents[1] / "studies" / "mr-wide24"


def _replays(held):
    out = []
    for p in (0.1, 0.2):
        for o in range(2):
            r = live(held, OptunaJudge(held, lambda p=p: optuna.pruners.WilcoxonPruner(p_threshold=p), o), o, 1)
            out.append((r.compute_used, r.regret, r.kept))
    return out


def test_the_memo_gives_every_decision_the_plain_test_gives_and_is_removed_after():
    from optuna.pruners import _wilcoxon

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    held = held_sets(load(SWEEP))[1].subsample(12, 0)
    plain = _replays(held)
    calls = []
    real, before = scipy.stats.wilcoxon, _wilcoxon.ss
    with memoized_wilcoxon():
        assert _wilcoxon.ss is not scipy.stats
        scipy.stats.wilcoxon = lambda *a, **k: calls.append(1) or real(*a, **k)
        try:
            memo = _replays(held)
        finally:
            scipy.stats.wilcoxon = real
    assert _wilcoxon.ss is before
    assert memo == plain
    assert any(r[0] < 1 for r in plain), "the replay should prune something, or the comparison says little"
    assert 0 < len(calls)
