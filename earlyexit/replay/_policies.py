"""The policies a replay compares, as one table: what each reads, what it costs, how it ranks.

A :class:`Policy` is a small named object. :func:`policy_table` builds the table for one replay in a
fixed order (the order of the replay's output): the scorer families (``earlyexit``, ``earlyexit_all``),
the live pruner replayed in Optuna (``earlyexit_sequential``), the hyperparameter surrogate, the plain
rules (``loss_only``, ``prefix_accuracy``), the bounds (``no_pruning``, ``oracle``) and Optuna's pruners.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import optuna

from ..names import Scorer
from ..pruning import GeometricPruner
from ..sweeps import Sweep
from ._optuna_replay import dev_metric_value, scorer_value, study_replay
from ._simulate import Compute, Outcome, Run, dev_metric_at, no_pruning, oracle, probe_rank, scorer_at, screen
from ._surrogate import SURROGATE_STEP, as_param_runs
from ._transfer_rule import rule_policy

RunPolicy = Callable[[Sequence[Run], int], Outcome]
"""A policy on one held-out seed's runs in one arrival order (the order seed)."""

PARETO_KEEP = (1, 2, 3, 4)
"""The keep-top values of the aggressiveness sweep."""


@dataclass(frozen=True)
class Policy:
    """One replayed policy.

    Attributes:
        name: its name in the replay's tables.
        run: the policy at the replayed setting.
        rank: the score it ranks a run by at the replayed setting (for the Spearman), or None.
        reads: ``(held-out seed, decision step) -> Compute``: what it measures and pays for; None for nothing.
        cost_key: the name its per-checkpoint cost is reported under (Optuna's pruners share one), or None.
        at: ``(decision step, keep top) -> run``: the policy at another setting, for the Pareto sweep; None
            where it has one setting.
        pareto_steps: the decision steps of its Pareto sweep (None: every replayed prefix).
        order_free: it sees every config at once, so arrival order cannot matter (one order suffices).
        scorer: it ranks by a fitted scorer (its probes and feature sets are reported).
    """

    name: str
    run: RunPolicy
    rank: Callable[[Run], float] | None = None
    reads: Callable[[int, int], Compute] | None = None
    cost_key: str | None = None
    at: Callable[[int, int], RunPolicy] | None = None
    pareto_steps: tuple[int, ...] | None = None
    order_free: bool = False
    scorer: bool = False


def scorer_compute(sweep: Sweep, scorer, step: int) -> Compute:
    """What a scorer's features at ``step`` read, at the checkpoints they read it (probes and dev metrics)."""
    if not hasattr(scorer, "schemas"):  # a scorer that says what it reads through its plan (transfer, rank)
        plan = scorer.reads([step]) or {}
        names = tuple(dict.fromkeys(n for ns in plan.values() for n in ns))
        return Compute(names, sweep.probe_costs, probe_until=step, steps=tuple(s for s, ns in plan.items() if ns))
    schema = scorer.schemas.get(step)
    probes = tuple(schema.names) if schema is not None else tuple(scorer.names)
    steps = tuple(schema.steps) if schema is not None else None
    return Compute(probes, sweep.probe_costs, probe_until=step, steps=steps)


def names_compute(sweep: Sweep, names: tuple[str, ...], step: int | None, *, only_at_step: bool = False) -> Compute:
    """``names`` measured at every checkpoint up to ``step`` (None: every checkpoint), or only at ``step``."""
    return Compute(names, sweep.probe_costs, probe_until=step, steps=(step,) if only_at_step else None)


def _screening(name: str, score_for: Callable[[int], Callable[[Run, int], float]],
               reads: Callable[[int, int], Compute], prefix: int, keep_top: int, *, cost_key: str | None,
               scorer: bool = False, rank_needs_step: bool = False) -> Policy:
    """Train every config to the decision step, keep the top K by ``score_for(held-out seed)``."""
    def at(step: int, k: int) -> RunPolicy:
        def run(rs, order_seed):
            seed = rs[0].seed
            return screen(step, k, score_for(seed), compute=reads(seed, step))(rs, order_seed)
        return run

    def rank(run: Run) -> float:
        if rank_needs_step and prefix not in run.signature:
            return math.nan
        return score_for(run.seed)(run, prefix)

    return Policy(name, at(prefix, keep_top), rank, reads, cost_key, at, scorer=scorer)


def scorer_policies(sweep: Sweep, scorers: Mapping[str, Mapping[int, Scorer]], prefix: int,
                    keep_top: int) -> list[Policy]:
    """Each scorer family screening at ``prefix``, then the live pruner with ``earlyexit``'s scorers."""
    table = []
    for family, by_seed in scorers.items():
        if all(getattr(sc, "rule", None) is not None for sc in by_seed.values()):
            table.append(_rule_policy(sweep, family, by_seed))
            continue
        score_fns = {seed: _cached(scorer_at(sc)) for seed, sc in by_seed.items()}
        table.append(_screening(family, score_fns.__getitem__,
                                lambda seed, step, by_seed=by_seed: scorer_compute(sweep, by_seed[seed], step),
                                prefix, keep_top, cost_key=family, scorer=True, rank_needs_step=True))
    if "earlyexit" in scorers and table[0].at is not None:  # a scorer with its own rule is replayed at it
        by_seed = scorers["earlyexit"]

        values = {seed: scorer_value(sc) for seed, sc in by_seed.items()}
        # A run's history to a step is the same in every order: scored once.
        value_of = _cached(lambda run, step, history: values[run.seed](run, step, history))

        def sequential(rs, order_seed):
            sc = by_seed[rs[0].seed]
            return study_replay(lambda: GeometricPruner(decision_steps=[prefix], keep_top=keep_top, n_startup_trials=0),
                                value_of, compute=scorer_compute(sweep, sc, prefix))(rs, order_seed)

        table.append(Policy("earlyexit_sequential", sequential, table[0].rank))
    return table


def _cached(score_of: Callable[..., float]) -> Callable[..., float]:
    """``score_of(run, step, ...)`` computed once per (run, step) of one sweep (run ids are unique within a
    sweep; what follows the step is determined by them) and shared across arrival orders and settings: a
    fitted scorer's predict is the replay's slowest call per run."""
    cache: dict = {}

    def score(run: Run, step: int, *rest) -> float:
        key = (run.run_id, step)
        if key not in cache:
            cache[key] = score_of(run, step, *rest)
        return cache[key]

    return score


def _rule_policy(sweep: Sweep, family: str, by_seed: Mapping[int, Scorer]) -> Policy:
    """A scorer that carries its own decision rule (a transfer scorer) replayed at that rule as a live study
    applies it, trials arriving one at a time: its rungs in the sweep's budget, keep-top, margins and
    learning-rate guard (``--prefix`` and ``--keep-top`` do not apply); charged what it reads at its rungs.
    One rule policy per held-out seed, so its scores are computed once and shared across arrival orders."""
    parts: dict = {}

    def for_seed(seed: int):
        if seed not in parts:
            parts[seed] = rule_policy(by_seed[seed], sweep)
        return parts[seed]

    def run(rs, order_seed):
        return for_seed(rs[0].seed)[2](rs, order_seed)

    def rank(r: Run) -> float:
        first = for_seed(r.seed)[0][0]
        return scorer_at(by_seed[r.seed])(r, first) if first in r.signature else math.nan

    def reads(seed: int, step: int) -> Compute:
        return for_seed(seed)[1]

    return Policy(family, run, rank, reads, cost_key=family, scorer=True)


def surrogate_policy(surrogates: Mapping[int, Scorer], param_names: list[str], keep_top: int) -> Policy:
    """Rank configs by the hyperparameter surrogate before any trains; only the top K train."""
    def at(step: int, k: int) -> RunPolicy:
        def run(rs, order_seed):
            return screen(step, k, scorer_at(surrogates[rs[0].seed]))(as_param_runs(rs, param_names), order_seed)
        return run

    def rank(run: Run) -> float:
        return scorer_at(surrogates[run.seed])(as_param_runs([run], param_names)[0], SURROGATE_STEP)

    return Policy("hyperparameters", at(SURROGATE_STEP, keep_top), rank, at=at, pareto_steps=(SURROGATE_STEP,))


def rule_policies(sweep: Sweep, prefix: int, keep_top: int) -> list[Policy]:
    """The plain rules to beat (the probe-set loss, the dev metric at the prefix) and the bounds."""
    loss = probe_rank("loss")
    return [
        _screening("loss_only", lambda seed: loss,
                   lambda seed, step: names_compute(sweep, ("loss",), step, only_at_step=True),
                   prefix, keep_top, cost_key="loss_only"),
        _screening("prefix_accuracy", lambda seed: dev_metric_at,
                   lambda seed, step: names_compute(sweep, ("dev_metric",), step, only_at_step=True),
                   prefix, keep_top, cost_key="prefix_accuracy"),
        Policy("no_pruning", no_pruning, order_free=True),
        Policy("oracle", oracle, lambda run: run.final, order_free=True),
    ]


def optuna_pruners(max_steps: int) -> dict[str, Callable[[], optuna.pruners.BasePruner]]:
    """Optuna's pruners at their defaults and at a tuned setting (``*_tuned``)."""
    return {
        "median": lambda: optuna.pruners.MedianPruner(),
        "median_tuned": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=50),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0),
        "percentile_tuned": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=50),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "successive_halving_tuned": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=10,
                                                                                   reduction_factor=4),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(max_resource=max_steps),
        "hyperband_tuned": lambda: optuna.pruners.HyperbandPruner(min_resource=10, max_resource=max_steps,
                                                                  reduction_factor=4),
        "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(),
    }


def optuna_policies(sweep: Sweep, max_steps: int) -> list[Policy]:
    """Optuna's pruners on the logged dev-metric curves: a dev evaluation at every checkpoint."""
    def reads(seed: int, step: int) -> Compute:
        return names_compute(sweep, ("dev_metric",), None)

    return [Policy(name, study_replay(make, dev_metric_value, compute=reads(0, 0)), reads=reads,
                   cost_key="optuna pruners") for name, make in optuna_pruners(max_steps).items()]


def policy_table(sweep: Sweep, scorers: Mapping[str, Mapping[int, Scorer]], surrogates: Mapping[int, Scorer],
                 param_names: list[str], *, prefix: int, keep_top: int) -> list[Policy]:
    """Every policy of one replay, in the order of its output."""
    table = scorer_policies(sweep, scorers, prefix, keep_top)
    if surrogates:
        table.append(surrogate_policy(surrogates, param_names, keep_top))
    table += rule_policies(sweep, prefix, keep_top)
    return table + optuna_policies(sweep, int(sweep.runs["steps"].max()))
