"""The ``[pruner]`` table of a spec: :class:`PrunerSpec` and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from ..names import PROBE_NAMES
from ._toml import SpecError, _get


@dataclass(frozen=True)
class PrunerSpec:
    """How trials are pruned.

    Attributes:
        kind: ``resolution`` (earlyexit's default: :class:`earlyexit.pruning.ResolutionPruner`, which
            prunes only on dev-metric leads the dev set can resolve, each trial judged past its warmup),
            ``geometric`` (a fitted scorer over probes), ``none``, or one of Optuna's: ``median``,
            ``percentile``, ``successive_halving``, ``hyperband``.
        rungs, z, eta, progress_match: the resolution rule's rungs (fractions of the budget), confidence
            (standard errors), reduction factor (None: every resolved loser is pruned) and whether a warming-up
            trial is judged at comparable progress; unset, the shipped default rule's
            (:data:`earlyexit.pruning.DEFAULT_RULE`). Its ``keep`` is ``keep_top``.
        scorer: path of a fitted scorer file, ``"default"`` (the package's default scorer; also what
            None means where the package has one) or ``"rank"`` (the rank rule).
        rank_probe: probe the rank rule orders by.
        higher_is_better: direction of ``rank_probe`` (False for the loss).
        decision_steps: probe steps at which the pruner decides.
        keep_top: keep a trial only if fewer than this many trials score
            higher at the decision step.
        keep_fraction: or keep the top fraction (when keep_top is None).
        n_startup_trials: no pruning until this many other trials reported
            at the step.
        margin: a trial is outranked only by scores more than this higher
            (the score's units; metric units for a fitted scorer); a transfer
            scorer's rule gives one per decision step (``{step: margin}``).
        min_lr_progress: a trial that has spent less than this fraction
            (0..1) of its learning-rate schedule is not judged yet.
        dev_ties: a trial is outranked only by trials whose dev metric at
            the decision step is strictly higher (none is pruned on the
            scorer's word alone while the dev evaluation ties them).
        explicit: which of ``decision_steps``, ``keep_top``, ``keep_fraction``,
            ``margin``, ``min_lr_progress`` and ``dev_ties`` the spec file sets; a scorer that comes
            with its own rule (a transfer scorer) fills in the others.
        mode: ``sequential`` (the live pruner decides as each trial reaches
            a decision step) or ``screen`` (every trial trains to the first
            decision step and stops; then the top ``keep_top`` configs train
            to the end: the compute of the replay's ``earlyexit`` policy) or
            ``synchronous`` (kind ``resolution`` only: the study's trials run at once as one cohort and are
            judged together at each rung, synchronous successive halving; what the replay's ``default_sync``
            measures; memory holds every trial of the cohort).
        bound: also prune a trial whose optimistic final, by the package's bound
            (``earlyexit fit --bound``) calibrated on this study's completed trials, falls below the best
            completed final (the replay's ``interval`` policy; ``docs/pruner.md``).
        allow_pickle: load a ``scorer`` file saved as a pickle (``.joblib``), which runs any code in it;
            refused without it.
        lookahead: also prune a trial whose optimistic final, predicted by the package's look-ahead predictor
            (``earlyexit fit --predictor``), is below the best pessimistic final of the study's other trials
            (``LookaheadPruner`` at its frozen setting; ``docs/lookahead.md``: measured, not the default).
    """

    kind: str = "resolution"
    scorer: str | None = None
    rank_probe: str = "loss"
    higher_is_better: bool = False
    decision_steps: tuple[int, ...] = (50,)
    keep_top: int | None = 2
    keep_fraction: float | None = None
    n_startup_trials: int = 3
    margin: float | Mapping[int, float] = 0.0
    min_lr_progress: float = 0.0
    dev_ties: bool = False
    mode: str = "sequential"
    explicit: tuple[str, ...] = ()
    rungs: tuple[float, ...] | None = None
    z: float | None = None
    eta: float | None = None
    progress_match: bool | None = None
    bound: bool = False
    allow_pickle: bool = False
    lookahead: bool = False

    def resolution_rule(self):
        """The :class:`~earlyexit.pruning.ResolutionRule` of a ``resolution`` pruner: the spec's settings over the
        shipped default's."""
        from ..pruning import DEFAULT_RULE, ResolutionRule

        return ResolutionRule(self.rungs if self.rungs is not None else DEFAULT_RULE.rungs,
                              self.keep_top if "keep_top" in self.explicit else DEFAULT_RULE.keep,
                              self.z if self.z is not None else DEFAULT_RULE.z,
                              self.eta if self.eta is not None else DEFAULT_RULE.eta, DEFAULT_RULE.pace,
                              self.progress_match if self.progress_match is not None else DEFAULT_RULE.progress_match)


RULE_KEYS = ("decision_steps", "keep_top", "keep_fraction", "margin", "min_lr_progress", "dev_ties")
"""The pruner settings a scorer's own rule may supply where the spec leaves them out."""

PRUNER_KEYS = {f.name for f in fields(PrunerSpec)} - {"explicit"}  # explicit is derived, not written
KINDS = ("resolution", "geometric", "none", "median", "percentile", "successive_halving", "hyperband")


def parse_pruner(pruner: dict, train_config, where: str) -> PrunerSpec:
    """The validated :class:`PrunerSpec` of a spec's ``[pruner]`` table (``train_config``: the spec's
    :class:`~earlyexit.training.TrainConfig`, whose probe steps and names the pruner may read)."""
    pruner_cfg = dict(pruner)
    if "decision_steps" in pruner_cfg:
        pruner_cfg["decision_steps"] = tuple(_get(pruner, "decision_steps", list, where, "pruner."))
    if "rungs" in pruner_cfg:
        pruner_cfg["rungs"] = tuple(float(r) for r in _get(pruner, "rungs", list, where, "pruner."))
    for key, kind in (("kind", str), ("mode", str), ("scorer", str), ("rank_probe", str), ("higher_is_better", bool),
                      ("keep_top", int), ("keep_fraction", float), ("n_startup_trials", int), ("margin", float),
                      ("min_lr_progress", float), ("dev_ties", bool), ("z", float), ("eta", float),
                      ("progress_match", bool), ("bound", bool), ("allow_pickle", bool),
                      ("lookahead", bool)):
        if key in pruner_cfg:
            pruner_cfg[key] = _get(pruner, key, kind, where, "pruner.")
    if "keep_fraction" in pruner_cfg and "keep_top" not in pruner_cfg:
        pruner_cfg["keep_top"] = None  # keep_fraction replaces the default keep_top
    if pruner_cfg.get("keep_fraction") is not None and pruner_cfg.get("keep_top") is not None:
        raise SpecError(f"{where}: set pruner.keep_top or pruner.keep_fraction, not both.")
    pruner_cfg["explicit"] = tuple(k for k in RULE_KEYS if k in pruner)
    pruner_spec = PrunerSpec(**pruner_cfg)
    if pruner_spec.kind not in KINDS:
        raise SpecError(f"{where}: pruner.kind must be one of resolution, geometric, none, median, percentile, "
                        f"successive_halving, hyperband; got {pruner_spec.kind!r}.")
    if pruner_spec.mode not in ("sequential", "screen", "synchronous"):
        raise SpecError(f"{where}: pruner.mode must be 'sequential', 'screen' or 'synchronous', but got "
                        f"{pruner_spec.mode!r}.")
    if pruner_spec.mode == "synchronous" and pruner_spec.kind != "resolution":
        raise SpecError(f"{where}: pruner.mode = 'synchronous' needs pruner.kind = 'resolution'.")
    if pruner_spec.mode == "synchronous" and pruner_spec.progress_match:
        raise SpecError(f"{where}: pruner.progress_match goes with the live rule: a synchronous cohort judges every "
                        "trial at the same rung.")
    if pruner_spec.lookahead and (pruner_spec.kind != "resolution" or pruner_spec.mode != "sequential"
                                  or pruner_spec.bound):
        raise SpecError(f"{where}: pruner.lookahead = true goes with the live resolution pruner (kind = 'resolution', "
                        "mode = 'sequential') and without pruner.bound.")
    if pruner_spec.bound and (pruner_spec.kind != "resolution" or pruner_spec.mode != "sequential"):
        raise SpecError(f"{where}: pruner.bound = true goes with the live resolution pruner (kind = 'resolution', "
                        "mode = 'sequential').")
    if pruner_spec.mode == "screen" and pruner_spec.kind != "geometric":
        raise SpecError(f"{where}: pruner.mode = 'screen' needs pruner.kind = 'geometric'.")
    if pruner_spec.rank_probe not in PROBE_NAMES:
        raise SpecError(f"{where}: pruner.rank_probe {pruner_spec.rank_probe!r} is not a probe; "
                        f"known probes are {list(PROBE_NAMES)}.")
    if pruner_spec.kind == "geometric" and pruner_spec.scorer == "rank" and \
            pruner_spec.rank_probe not in train_config.probe_names:
        raise SpecError(f"{where}: pruner.rank_probe {pruner_spec.rank_probe!r} is not measured; add it to probes.names.")
    missing = [s for s in pruner_spec.decision_steps if s not in train_config.probe_steps]
    # Left out, the decision steps may come from the scorer's own rule: checked once it is loaded
    # (``earlyexit.study.with_scorer_rule``); the rank rule has none.
    if missing and ("decision_steps" in pruner_spec.explicit or pruner_spec.scorer == "rank"):
        raise SpecError(f"{where}: pruner.decision_steps {missing} are not probe steps {list(train_config.probe_steps)}.")
    if not pruner_spec.margin >= 0 or not 0 <= pruner_spec.min_lr_progress <= 1:
        raise SpecError(f"{where}: pruner.margin must be at least 0 and pruner.min_lr_progress in [0, 1]; got "
                        f"{pruner_spec.margin} and {pruner_spec.min_lr_progress}.")
    if pruner_spec.keep_top is None and pruner_spec.keep_fraction is None:
        raise SpecError(f"{where}: set pruner.keep_top or pruner.keep_fraction.")
    if pruner_spec.keep_top is not None and pruner_spec.keep_top < 1:
        raise SpecError(f"{where}: pruner.keep_top must be at least 1, but got {pruner_spec.keep_top}.")
    if pruner_spec.keep_fraction is not None and not 0 < pruner_spec.keep_fraction <= 1:
        raise SpecError(f"{where}: pruner.keep_fraction must be in (0, 1], but got {pruner_spec.keep_fraction}.")
    if pruner_spec.n_startup_trials < 0:
        raise SpecError(f"{where}: pruner.n_startup_trials must be at least 0, but got {pruner_spec.n_startup_trials}.")
    if pruner_spec.kind == "resolution":
        try:
            pruner_spec.resolution_rule()
        except ValueError as exc:
            raise SpecError(f"{where}: pruner: {exc}") from None
    elif any(k in pruner for k in ("rungs", "z", "eta", "progress_match")):
        raise SpecError(f"{where}: pruner.rungs, z, eta and progress_match belong to pruner.kind = 'resolution'.")
    if pruner_spec.scorer not in (None, "default", "rank"):
        scorer = Path(pruner_spec.scorer)
        if not scorer.is_absolute():
            scorer = Path(where).parent / scorer
        pruner_spec = PrunerSpec(**{**pruner_spec.__dict__, "scorer": str(scorer)})
    return pruner_spec
