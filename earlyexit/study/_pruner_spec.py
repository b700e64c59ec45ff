"""The ``[pruner]`` table of a spec: one settings class per pruner kind, which reads its own keys, checks them and
builds its pruner.

A spec's path to a pruning decision runs down once: the table, the kind's settings (:class:`ResolutionSettings`,
:class:`GeometricSettings`, or one of Optuna's), the Optuna pruner they build, the rule it applies. Adding a kind
touches this module only (a class and its line in :data:`KINDS`). Torch-free: the pruners are imported when built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from ..names import PROBE_NAMES
from ._toml import SpecError, _get


class PrunerSettings:
    """What every kind's settings have: its ``kind`` (its name in a spec), the ``KEYS`` its table may set (with
    their TOML types), the ``MODES`` it runs in, and :meth:`build`, which makes its Optuna pruner."""

    kind: ClassVar[str]
    KEYS: ClassVar[dict[str, type]] = {}
    MODES: ClassVar[tuple[str, ...]] = ("sequential",)
    mode: str = "sequential"
    lookahead: bool = False  # only the resolution pruner looks ahead

    @classmethod
    def parse(cls, table: Mapping[str, Any], train_config, where: str) -> PrunerSettings:
        """The kind's settings from its ``[pruner]`` table, checked (``train_config``: the spec's
        :class:`~earlyexit.training.TrainConfig`, whose probe steps and names the pruner may read)."""
        values = {}
        for key, kind in cls.KEYS.items():
            if key in table:
                value = _get(table, key, kind, where, "pruner.")
                values[key] = tuple(value) if kind is list else value
        mode = _get(table, "mode", str, where, "pruner.", default="sequential")
        if mode not in cls.MODES:
            owners = [k for k, c in KINDS.items() if mode in c.MODES]
            if not owners:
                raise SpecError(f"{where}: pruner.mode must be 'sequential', 'screen' or 'synchronous', but got "
                                f"{mode!r}.")
            raise SpecError(f"{where}: pruner.mode = {mode!r} needs pruner.kind = {owners[0]!r}.")
        if len(cls.MODES) > 1:
            values["mode"] = mode
        settings = cls(**values)
        settings.check(table, train_config, where)
        return settings

    def check(self, table: Mapping[str, Any], train_config, where: str) -> None:
        """Raise :class:`SpecError` on settings that do not go together."""

    def build(self, budget: int | None):
        """The Optuna pruner (``budget``: the study's training steps, resolved from epochs)."""
        raise NotImplementedError


def _needs_budget(budget: int | None, kind: str) -> int:
    if budget is None:
        raise ValueError(f"the {kind} pruner places its rungs on the study's budget: give max_steps.")
    return budget


LOOKAHEAD = {"coverage": 0.8, "keep": 1, "calibration": "study"}
"""The look-ahead's setting in a study: 80% intervals each side, keep 1, and no look-ahead bound before the study
has its own errors at a step (the choice of the held-out MPQA, MR and SUBJ folds on the sixteen sweeps, and the
more careful of the two calibrations; docs/lookahead.md)."""


@dataclass(frozen=True)
class ResolutionSettings(PrunerSettings):
    """``kind = "resolution"``, earlyexit's default: :class:`earlyexit.pruning.ResolutionPruner`, which prunes only
    on dev-metric leads the dev set can resolve, each trial judged past its warmup.

    Attributes:
        rungs, keep_top, z, eta, progress_match: the rule's rungs (fractions of the budget), how many leaders
            a trial must be resolvably behind, confidence (standard errors), reduction factor (None: every
            resolved loser is pruned) and whether a warming-up trial is judged at comparable progress; unset,
            the shipped default rule's (:data:`earlyexit.pruning.DEFAULT_RULE`).
        mode: ``sequential`` (each trial judged as it reaches a rung) or ``synchronous`` (the study's trials run
            at once as one cohort and are judged together at each rung, synchronous successive halving; what the
            replay's ``default_sync`` measures; memory holds every trial of the cohort).
        bound: also prune a trial whose optimistic final, by the package's bound (``earlyexit fit --bound``)
            calibrated on this study's completed trials, falls below the best completed final (the replay's
            ``interval`` policy; ``docs/pruner.md``).
        lookahead: also prune a trial whose optimistic final, predicted by the package's look-ahead predictor
            (``earlyexit fit --predictor``), is below the best pessimistic final of the study's other trials
            (``LookaheadPruner`` at :data:`LOOKAHEAD`; ``docs/lookahead.md``: measured, not the default).
        refit: with ``lookahead``, also put the study's completed trials among the predictor's neighbours, their
            distances times this shrink in (0, 1] (``LookaheadPruner(refit=...)``; measured, not the default).
    """

    kind: ClassVar[str] = "resolution"
    KEYS: ClassVar[dict[str, type]] = {"rungs": list, "keep_top": int, "z": float, "eta": float,
                                       "progress_match": bool, "bound": bool, "lookahead": bool, "refit": float}
    MODES: ClassVar[tuple[str, ...]] = ("sequential", "synchronous")
    rungs: tuple[float, ...] | None = None
    keep_top: int | None = None
    z: float | None = None
    eta: float | None = None
    progress_match: bool | None = None
    bound: bool = False
    lookahead: bool = False
    refit: float | None = None
    mode: str = "sequential"

    def rule(self):
        """The :class:`~earlyexit.pruning.ResolutionRule`: these settings over the shipped default's."""
        from ..pruning import DEFAULT_RULE, ResolutionRule

        d = DEFAULT_RULE
        return ResolutionRule(d.rungs if self.rungs is None else tuple(float(r) for r in self.rungs),
                              d.keep if self.keep_top is None else self.keep_top, d.z if self.z is None else self.z,
                              d.eta if self.eta is None else self.eta, d.pace,
                              d.progress_match if self.progress_match is None else self.progress_match)

    def check(self, table, train_config, where):
        if self.keep_top is not None and self.keep_top < 1:
            raise SpecError(f"{where}: pruner.keep_top must be at least 1, but got {self.keep_top}.")
        if self.mode == "synchronous" and self.progress_match:
            raise SpecError(f"{where}: pruner.progress_match goes with the live rule: a synchronous cohort judges "
                            "every trial at the same rung.")
        if self.lookahead and (self.mode != "sequential" or self.bound):
            raise SpecError(f"{where}: pruner.lookahead = true goes with the live resolution pruner (mode = "
                            "'sequential') and without pruner.bound.")
        if self.refit is not None and (not self.lookahead or not 0 < self.refit <= 1):
            raise SpecError(f"{where}: pruner.refit goes with pruner.lookahead = true and is a shrink in (0, 1]; got "
                            f"{self.refit} with lookahead = {str(self.lookahead).lower()}.")
        if self.bound and self.mode != "sequential":
            raise SpecError(f"{where}: pruner.bound = true goes with the live resolution pruner (mode = "
                            "'sequential').")
        try:
            self.rule()
        except ValueError as exc:
            raise SpecError(f"{where}: pruner: {exc}") from None

    def build(self, budget):
        """The live pruner: rungs at fractions of ``budget``, with the look-ahead or the bound where set."""
        from ..pruning import LookaheadPruner, ResolutionPruner

        budget = _needs_budget(budget, self.kind)
        if self.lookahead:  # rungs on each trial's budget, and the look-ahead at them and at each warmup's end
            from ..scoring import load_predictor

            return LookaheadPruner(load_predictor(), rule=self.rule(), max_resource=budget, refit=self.refit,
                                   **LOOKAHEAD)
        if self.bound:
            from ..scoring import load_bound

            return ResolutionPruner.for_budget(self.rule(), budget, bound=load_bound())
        return ResolutionPruner.for_budget(self.rule(), budget)

    def build_cohort(self, budget: int, size: int):
        """The synchronous pruner for one cohort of ``size`` trials."""
        from ..pruning import SynchronousResolutionPruner

        return SynchronousResolutionPruner.for_budget(self.rule(), _needs_budget(budget, self.kind), cohort_size=size)


RULE_KEYS = ("decision_steps", "keep_top", "keep_fraction", "margin", "min_lr_progress", "dev_ties")
"""The geometric pruner's settings a scorer's own rule may supply where the spec leaves them out."""


@dataclass(frozen=True)
class GeometricSettings(PrunerSettings):
    """``kind = "geometric"``: :class:`earlyexit.pruning.GeometricPruner`, on a fitted scorer over probes.

    Attributes:
        scorer: path of a fitted scorer file, ``"default"`` (the package's default scorer; also what None means
            where the package has one) or ``"rank"`` (the rank rule).
        rank_probe: probe the rank rule orders by; higher_is_better: its direction (False for the loss).
        decision_steps: probe steps at which the pruner decides.
        keep_top: keep a trial only if fewer than this many trials score higher at the decision step;
            keep_fraction: or keep the top fraction (when keep_top is None).
        n_startup_trials: no pruning until this many other trials reported at the step.
        margin: a trial is outranked only by scores more than this higher (metric units for a fitted scorer); a
            transfer scorer's rule gives one per decision step (``{step: margin}``).
        min_lr_progress: a trial that has spent less than this fraction (0..1) of its learning-rate schedule is
            not judged yet.
        dev_ties: a trial is outranked only by trials whose dev metric at the decision step is strictly higher.
        mode: ``sequential`` (the live pruner decides as each trial reaches a decision step) or ``screen`` (every
            trial trains to the first decision step and stops; then the top ``keep_top`` configs train to the
            end: the compute of the replay's ``earlyexit`` policy).
        allow_pickle: load a ``scorer`` file saved as a pickle (``.joblib``), which runs any code in it.
        explicit: which of :data:`RULE_KEYS` the spec sets; a scorer that comes with its own rule (a transfer
            scorer) fills in the others.
    """

    kind: ClassVar[str] = "geometric"
    KEYS: ClassVar[dict[str, type]] = {
        "scorer": str, "rank_probe": str, "higher_is_better": bool, "decision_steps": list, "keep_top": int,
        "keep_fraction": float, "n_startup_trials": int, "margin": float, "min_lr_progress": float,
        "dev_ties": bool, "allow_pickle": bool}
    MODES: ClassVar[tuple[str, ...]] = ("sequential", "screen")
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
    allow_pickle: bool = False
    mode: str = "sequential"
    explicit: tuple[str, ...] = ()

    @classmethod
    def parse(cls, table, train_config, where):
        if "keep_fraction" in table and "keep_top" in table:
            raise SpecError(f"{where}: set pruner.keep_top or pruner.keep_fraction, not both.")
        settings = super().parse(table, train_config, where)
        changes: dict[str, Any] = {"explicit": tuple(k for k in RULE_KEYS if k in table)}
        if "keep_fraction" in table:
            changes["keep_top"] = None  # keep_fraction replaces the default keep_top
        if settings.scorer not in (None, "default", "rank") and not Path(settings.scorer).is_absolute():
            changes["scorer"] = str(Path(where).parent / settings.scorer)
        return replace(settings, **changes)

    def check(self, table, train_config, where):
        if self.rank_probe not in PROBE_NAMES:
            raise SpecError(f"{where}: pruner.rank_probe {self.rank_probe!r} is not a probe; known probes are "
                            f"{list(PROBE_NAMES)}.")
        if self.scorer == "rank" and self.rank_probe not in train_config.probe_names:
            raise SpecError(f"{where}: pruner.rank_probe {self.rank_probe!r} is not measured; add it to probes.names.")
        missing = [s for s in self.decision_steps if s not in train_config.probe_steps]
        # Left out, the decision steps may come from the scorer's own rule: checked once it is loaded
        # (``earlyexit.study.with_scorer_rule``); the rank rule has none.
        if missing and ("decision_steps" in table or self.scorer == "rank"):
            raise SpecError(f"{where}: pruner.decision_steps {missing} are not probe steps "
                            f"{list(train_config.probe_steps)}.")
        if not self.margin >= 0 or not 0 <= self.min_lr_progress <= 1:
            raise SpecError(f"{where}: pruner.margin must be at least 0 and pruner.min_lr_progress in [0, 1]; got "
                            f"{self.margin} and {self.min_lr_progress}.")
        if self.keep_top is not None and self.keep_top < 1:
            raise SpecError(f"{where}: pruner.keep_top must be at least 1, but got {self.keep_top}.")
        if self.keep_fraction is not None and not 0 < self.keep_fraction <= 1:
            raise SpecError(f"{where}: pruner.keep_fraction must be in (0, 1], but got {self.keep_fraction}.")
        _check_startup(self.n_startup_trials, where)

    def build(self, budget):
        from ..pruning import GeometricPruner

        return GeometricPruner(decision_steps=self.decision_steps, keep_top=self.keep_top,
                               keep_fraction=self.keep_fraction, n_startup_trials=self.n_startup_trials,
                               margin=self.margin, min_lr_progress=self.min_lr_progress, dev_ties=self.dev_ties)


def _check_startup(n: int, where: str) -> None:
    if n < 0:
        raise SpecError(f"{where}: pruner.n_startup_trials must be at least 0, but got {n}.")


@dataclass(frozen=True)
class NoPruning(PrunerSettings):
    """``kind = "none"``: every trial trains to the end (Optuna's ``NopPruner``)."""

    kind: ClassVar[str] = "none"

    def build(self, budget):
        import optuna

        return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class MedianSettings(PrunerSettings):
    """``kind = "median"``: Optuna's ``MedianPruner``, after ``n_startup_trials`` trials."""

    kind: ClassVar[str] = "median"
    KEYS: ClassVar[dict[str, type]] = {"n_startup_trials": int}
    n_startup_trials: int = 3

    def check(self, table, train_config, where):
        _check_startup(self.n_startup_trials, where)

    def build(self, budget):
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials)


@dataclass(frozen=True)
class PercentileSettings(PrunerSettings):
    """``kind = "percentile"``: Optuna's ``PercentilePruner`` keeping the top ``keep_fraction`` (unset: half)."""

    kind: ClassVar[str] = "percentile"
    KEYS: ClassVar[dict[str, type]] = {"n_startup_trials": int, "keep_fraction": float}
    n_startup_trials: int = 3
    keep_fraction: float | None = None

    def check(self, table, train_config, where):
        _check_startup(self.n_startup_trials, where)
        if self.keep_fraction is not None and not 0 < self.keep_fraction <= 1:
            raise SpecError(f"{where}: pruner.keep_fraction must be in (0, 1], but got {self.keep_fraction}.")

    def build(self, budget):
        import optuna

        return optuna.pruners.PercentilePruner(50.0 if self.keep_fraction is None else 100 * self.keep_fraction,
                                               n_startup_trials=self.n_startup_trials)


@dataclass(frozen=True)
class SuccessiveHalvingSettings(PrunerSettings):
    """``kind = "successive_halving"``: Optuna's ``SuccessiveHalvingPruner`` at its defaults."""

    kind: ClassVar[str] = "successive_halving"

    def build(self, budget):
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner()


@dataclass(frozen=True)
class HyperbandSettings(PrunerSettings):
    """``kind = "hyperband"``: Optuna's ``HyperbandPruner`` over the study's budget."""

    kind: ClassVar[str] = "hyperband"

    def build(self, budget):
        import optuna

        return optuna.pruners.HyperbandPruner(max_resource=_needs_budget(budget, self.kind))


KINDS: dict[str, type[PrunerSettings]] = {c.kind: c for c in (
    ResolutionSettings, GeometricSettings, NoPruning, MedianSettings, PercentileSettings, SuccessiveHalvingSettings,
    HyperbandSettings)}
"""Each pruner kind by its name in a spec."""

PRUNER_KEYS = {"kind", "mode"} | {k for c in KINDS.values() for k in c.KEYS}
"""Every key a ``[pruner]`` table may hold (each kind reads its own)."""


def parse_pruner(table: Mapping[str, Any], train_config, where: str) -> PrunerSettings:
    """The settings of the kind a spec's ``[pruner]`` table names (``resolution`` unset), from its own keys."""
    kind = _get(table, "kind", str, where, "pruner.", default="resolution")
    if kind not in KINDS:
        raise SpecError(f"{where}: pruner.kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    cls = KINDS[kind]
    foreign = sorted(k for k in table if k not in cls.KEYS and k not in ("kind", "mode"))
    if foreign:
        owners = sorted({o for k in foreign for o, c in KINDS.items() if k in c.KEYS})
        reads = ", ".join(sorted(cls.KEYS)) or "no other key"
        raise SpecError(f"{where}: pruner.{', pruner.'.join(foreign)} belong to pruner.kind = "
                        f"{' or '.join(repr(o) for o in owners)}, not {kind!r} (which reads {reads}).")
    return cls.parse(table, train_config, where)

