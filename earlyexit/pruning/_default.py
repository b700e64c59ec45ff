"""The shipped default rule, frozen on 2026-12-04 before the two large sweeps (mpqa-wide96, trec-wide64) were
replayed.

Chosen by ``earlyexit replay --leave-one-task-out <the twelve older sweeps> --nested --jobs 2`` (the selection
rule of :mod:`earlyexit.replay._nested` over 108 candidates: rungs, keep, z, eta) applied to all twelve: the
same setting is chosen in every one of the six training folds and on all twelve together. Replayed held out
with every fold's choice (nested), synchronously: 53.3% of the compute saved at a mean regret of 0.21 points
and a worst of 0.81 (cola-6l-wide24); live, one trial at a time: 44.1%, 0.11, 0.36
(``benchmarks/nested/base12-w1.json``). Its confidence floor of one standard error was set after a first run
in which z = 0.5 lost 2.71 MCC points on cola-6l-wide24, so those twelve figures are not a clean test; the two
large sweeps are.

Clean test (``benchmarks/nested/base14-w1.json``, each policy at its setting chosen on the twelve): on
mpqa-wide96, live 70.7% saved at 0.00 points of dev and test regret; on trec-wide64, 60.4% at 0.80 dev and
0.45 test regret (Optuna's median pruner chosen the same way: 52.1% / 0.21 and 52.4% / 0.18). Refit on all
fourteen sweeps, the live choice is unchanged (the synchronous one moves to rungs 10/25/50%, keep 3).
"""

from ._resolution import ResolutionRule

DEFAULT_RULE = ResolutionRule(rungs=(0.05, 0.1, 0.25, 0.5), keep=1, z=1.0, eta=None, pace=True)
"""Rungs at 5%, 10%, 25% and 50% of the budget; a trial past its warmup is pruned there when one other trial
leads it by more than one standard error of the difference on the dev set."""
