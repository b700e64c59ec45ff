"""What a spec's ``[pruner]`` and ``[study]`` build: the pruner, the scorer it reads, the sampler, and the plan of
what each trial measures."""

from __future__ import annotations

import dataclasses

import optuna

from ..names import DEV_METRICS, Plan, Scorer
from ..scoring import ProbeRankScorer
from ._sampler import TrialSeededRandomSampler
from ._spec import SpecError, StudySpec


def make_pruner(spec: StudySpec, max_steps: int | None = None) -> optuna.pruners.BasePruner:
    """The Optuna pruner the spec's pruner settings build (``max_steps``: the budget resolved from epochs)."""
    return spec.pruner.build(max_steps or spec.train.max_steps)


def make_scorer(spec: StudySpec) -> Scorer | None:
    """The scorer a geometric pruner reads (None for every other kind, which reads the dev metric): a fitted
    scorer file named by ``scorer`` (its score is the predicted final metric), ``"default"`` (the package's
    default scorer, also what no scorer means where the package has one), or ``"rank"`` (the rank rule on
    ``rank_probe``). Raises ScorerFileError (a ValueError) on a bad file."""
    from ..scoring import DEFAULT_SCORER, load_scorer

    p = spec.pruner
    if p.kind != "geometric":
        return None
    name = p.scorer if p.scorer is not None else ("default" if DEFAULT_SCORER.exists() else "rank")
    if name == "rank":
        return ProbeRankScorer(p.rank_probe, higher_is_better=p.higher_is_better)
    scorer = load_scorer(name, allow_pickle=p.allow_pickle)
    scorer.check_probes(spec.train.probe_names, f"spec {spec.path}")
    return scorer


def with_scorer_rule(spec: StudySpec, scorer: Scorer | None, max_steps: int | None = None) -> StudySpec:
    """``spec`` with the pruner settings it leaves out taken from the scorer's own rule (a transfer
    scorer's rungs, on the spec's probe steps in a budget of ``max_steps`` training steps; its keep-top,
    its margin at each decision step and its learning-rate guard)."""
    p = spec.pruner
    if p.kind != "geometric":
        return spec
    rule = getattr(scorer, "rule", None)
    changes = {}
    if rule is not None:
        if rule.unit == "budget" and max_steps is None:
            raise ValueError("a scorer whose rungs are fractions of the budget needs the study's budget "
                             "(max_steps) to place them.")
        rungs = rule.steps_for(max_steps, spec.train.probe_steps)
        if "decision_steps" not in p.explicit and rungs:
            changes["decision_steps"] = rungs
        if "keep_top" not in p.explicit and "keep_fraction" not in p.explicit:
            changes["keep_top"] = rule.keep_top
        if "min_lr_progress" not in p.explicit:
            changes["min_lr_progress"] = rule.min_lr_progress
        if "dev_ties" not in p.explicit:
            changes["dev_ties"] = rule.dev_ties
        margin_at = getattr(scorer, "margin_at", None)
        if "margin" not in p.explicit and margin_at is not None and getattr(scorer, "margins_", None):
            steps = changes.get("decision_steps", p.decision_steps)
            changes["margin"] = {int(d): float(margin_at(d, max_steps)) for d in steps}
    resolved = dataclasses.replace(spec, pruner=dataclasses.replace(p, **changes)) if changes else spec
    missing = [s for s in resolved.pruner.decision_steps if s not in spec.train.probe_steps]
    if missing:
        raise SpecError(f"{spec.path}: pruner.decision_steps {missing} are not probe steps "
                        f"{list(spec.train.probe_steps)} (set pruner.decision_steps).")
    return resolved


def measurement_plan(spec: StudySpec, scorer: Scorer, max_steps: int | None = None) -> Plan | None:
    """Step -> names a trial measures (see ``probes.measure``); None measures everything everywhere."""
    if spec.measure == "all" or spec.pruner.kind == "none":
        return None
    if spec.pruner.kind == "resolution":  # a dev evaluation at each rung, nothing else
        return {s: DEV_METRICS for s in spec.pruner.rule().rung_steps(max_steps or spec.train.max_steps)}
    if spec.pruner.kind != "geometric":  # Optuna's pruners read the dev metric at every probe step
        return {s: DEV_METRICS for s in spec.train.probe_steps}
    return scorer.reads(spec.pruner.decision_steps)


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(v) for k, v in spec.grid.items()}, seed=spec.seed)
    if spec.sampler == "random":
        return TrialSeededRandomSampler(seed=spec.seed)  # workers of one study never draw the same config
    return optuna.samplers.TPESampler(seed=spec.seed)
