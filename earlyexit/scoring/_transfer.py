"""A scorer built to carry over to a task it never saw: scale-free features at decision rungs.

The scorer fitted by :func:`earlyexit.scoring.fit_scorer` reads raw probe values; a probe's level
differs from task to task (the loss of a 6-class task starts at ln 6, not ln 2), and such a model learns
the levels of the tasks it saw. :class:`TransferScorer` reads, at each decision rung, only quantities
whose meaning does not depend on the task:

- ``dev`` (one dev evaluation): the dev metric, its lead over a uniform guess (``1 / classes``), and the
  dev loss over the uniform loss ``ln(classes)``;
- ``cheap`` (one gradient pass, a SAM step and a line search): the probe loss over ``ln(classes)``,
  log10 of the gradient norm, log10 of the gradient noise scale (variance over squared norm), SAM
  sharpness over the loss, and log10 of the learning rate times critical sharpness (the step against
  the stability limit);
- ``hessian`` (Lanczos and Hutchinson): log10 of the learning rate times the top eigenvalue, log10 of
  the trace;
- ``fisher`` (one gradient pass with sampled labels): log10 of the learning rate times the Fisher trace.

Each rung has its own ridge regression (median imputation, standardisation, ridge; :class:`RungModel`,
stored as numbers in a JSON file) from those features to the final metric, its slopes fitted on the
differences *within* each training study (a study only ever compares its own trials), so the score is a
predicted final metric, on the metric's scale. The decision rule that goes with it is part of the scorer
(:attr:`TransferScorer.rule`): rungs as fractions of the training budget, keep top K, a safety margin
measured on tasks the ridge did not see (:func:`rung_gaps`), and the learning-rate progress below which a
trial is not judged. It is chosen with the features, by leave-one-task-out over the sweeps it learns from
(``earlyexit.replay.select_transfer``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..names import DEV_METRICS, Signature
from ._ridge import RungModel, margin_from, rung_gaps

GROUPS: dict[str, tuple[str, ...]] = {
    "dev": ("dev_metric", "dev_loss"),
    "cheap": ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "critical_sharpness"),
    "hessian": ("hessian_top_eigenvalue", "hessian_trace"),
    "fisher": ("fisher_trace",),
}
"""Feature groups -> the measured names they read at a rung (context names are free and always read)."""


TRANSFER_FORMAT = 3
"""Version of :meth:`TransferScorer.to_dict`'s layout (3: the rule's ``dev_ties``; 2: rules in fractions of
the budget, margins; 1 and 2 are still read)."""


def feature_names(groups: Sequence[str]) -> list[str]:
    """The names of :func:`transfer_features`' columns, in order."""
    names = {"dev": ["dev_metric", "dev_metric_over_uniform_guess", "dev_loss_over_uniform_loss"],
             "cheap": ["loss_over_uniform_loss", "log10_gradient_norm", "log10_gradient_noise_scale",
                       "sam_sharpness_over_loss", "log10_lr_x_critical_sharpness"],
             "hessian": ["log10_lr_x_top_eigenvalue", "log10_hessian_trace"],
             "fisher": ["log10_lr_x_fisher_trace"]}
    return [n for g in GROUPS if g in groups for n in names[g]]


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 and math.isfinite(x) else math.nan


def transfer_features(values: Mapping[str, float], groups: Sequence[str]) -> list[float]:
    """The scale-free features of one trial at one rung (``values``: its signature at the step)."""
    get = lambda k: float(values.get(k, math.nan)) if values.get(k) is not None else math.nan  # noqa: E731
    uniform = get("uniform_loss")
    lr = get("learning_rate")
    row = []
    if "dev" in groups:
        dev = get("dev_metric")
        row += [dev, dev - math.exp(-uniform), get("dev_loss") / uniform]
    if "cheap" in groups:
        loss, g, v = get("loss"), get("gradient_norm"), get("gradient_variance")
        row += [loss / uniform, _log10(g), _log10(v / g**2) if g > 0 else math.nan,
                get("sam_sharpness") / loss if loss > 0 else math.nan, _log10(lr * get("critical_sharpness"))]
    if "hessian" in groups:
        row += [_log10(lr * get("hessian_top_eigenvalue")), _log10(get("hessian_trace"))]
    if "fisher" in groups:
        row += [_log10(lr * get("fisher_trace"))]
    return row


@dataclass(frozen=True)
class Rule:
    """The decision rule a transfer scorer was chosen with.

    Attributes:
        rungs: decision points, ascending; a trial kept at one is scored again at the next. With ``unit =
            "budget"``, fractions (0..1] of the training budget: a rung falls on the last probe step at or
            below that fraction of the budget, so one rule means the same on a 465-step and a 2,105-step
            study; with ``unit = "steps"``, training steps (format-1 scorer files).
        keep_top: keep a trial unless this many others score higher at the rung (by more than the margin).
        min_lr_progress: do not judge a trial that has spent less than this fraction (0..1) of its
            learning-rate schedule.
        margin_quantile: the safety margin, as a quantile (0..1; 0: none) of how far the scorer's prediction
            for a study's best trials fell below its K-th best prediction on tasks it was not fitted on
            (:func:`rung_gaps`); the fitted margin, in metric units, is ``TransferScorer.margins_``.
        unit: ``"budget"`` or ``"steps"`` (what ``rungs`` count).
        dev_ties: a trial is outranked only by trials whose dev metric at the rung is strictly higher (as
            well as scoring higher): where the dev evaluation does not separate trials (every one still at
            the constant classifier), the scorer's ranking of them is not acted on.
    """

    rungs: tuple[float, ...]
    keep_top: int = 1
    min_lr_progress: float = 0.0
    margin_quantile: float = 0.0
    unit: str = "steps"
    dev_ties: bool = False

    def __post_init__(self):
        if self.unit not in RULE_UNITS:
            raise ValueError(f"unit must be one of {RULE_UNITS}, but got {self.unit!r}.")
        cast = int if self.unit == "steps" else float
        object.__setattr__(self, "rungs", tuple(cast(r) for r in self.rungs))
        low_ok = self.rungs and (self.rungs[0] >= 1 if self.unit == "steps" else self.rungs[0] > 0)
        if not low_ok or list(self.rungs) != sorted(set(self.rungs)) or (self.unit == "budget" and self.rungs[-1] > 1):
            what = "increasing positive steps" if self.unit == "steps" else "increasing fractions of the budget in (0, 1]"
            raise ValueError(f"rungs must be {what}, but got {self.rungs}.")
        if self.keep_top < 1:
            raise ValueError(f"keep_top must be at least 1, but got {self.keep_top}.")
        if not 0 <= self.min_lr_progress <= 1:
            raise ValueError(f"min_lr_progress must be in [0, 1], but got {self.min_lr_progress}.")
        if not 0 <= self.margin_quantile < 1:
            raise ValueError(f"margin_quantile must be in [0, 1), but got {self.margin_quantile}.")

    @property
    def label(self) -> str:
        where = ("rungs " + "/".join(f"{r:.0%}" for r in self.rungs) + " of the budget" if self.unit == "budget"
                 else "rungs " + "/".join(map(str, self.rungs)))
        margin = f", margin q{self.margin_quantile:.0%}" if self.margin_quantile else ""
        ties = ", outranked only on a higher dev metric" if self.dev_ties else ""
        return (f"{where}, top {self.keep_top}{margin}, judged from {self.min_lr_progress:.0%} of the learning "
                f"rate{ties}")

    def as_dict(self) -> dict:
        return {"rungs": list(self.rungs), "keep_top": self.keep_top, "min_lr_progress": self.min_lr_progress,
                "margin_quantile": self.margin_quantile, "unit": self.unit, "dev_ties": self.dev_ties}

    def step_of(self, rung: float, budget: float | None, probe_steps: Iterable[int]) -> int | None:
        """The probe step ``rung`` falls on: the rung itself (steps), or the last probe step after 0 at or below
        ``rung x budget`` (budget); None where there is none."""
        steps = sorted(int(s) for s in probe_steps if s > 0)
        if self.unit == "steps":
            return int(rung) if int(rung) in steps else None
        if budget is None or not budget > 0:
            raise ValueError("a rule in fractions of the budget needs the budget in steps (the signature's "
                             "'budget_steps').")
        below = [s for s in steps if s <= rung * budget + 1e-9]
        return below[-1] if below else None

    def steps_for(self, budget: float | None, probe_steps: Iterable[int]) -> tuple[int, ...]:
        """The decision steps of a study with this budget (in steps) and these probe steps, ascending (two
        rungs on one step decide once)."""
        probe_steps = list(probe_steps)
        return tuple(sorted({d for d in (self.step_of(r, budget, probe_steps) for r in self.rungs) if d is not None}))

    def rung_at(self, step: int, budget: float | None = None) -> float:
        """The rung that judges at ``step``: in steps, the largest rung at or below it (the first before it);
        in fractions, the smallest rung whose share of the budget reaches the step (the last past them)."""
        if self.unit == "steps":
            below = [r for r in self.rungs if r <= step]
            return max(below) if below else self.rungs[0]
        if budget is None or not budget > 0:
            raise ValueError("a rule in fractions of the budget needs the budget in steps (the signature's "
                             "'budget_steps').")
        reach = [r for r in self.rungs if r * budget + 1e-9 >= step]
        return reach[0] if reach else self.rungs[-1]


RULE_UNITS = ("budget", "steps")


def rung_rows(signatures: Sequence[Signature], finals: Sequence[float], rule: Rule, rung: float,
              groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training rows of one rung: (features, finals, index of each row's trial), over the trials with a
    finite final that reached the step the rung falls on (in the trial's own budget and probe steps)."""
    X, y, index = [], [], []
    for i, (sig, final) in enumerate(zip(signatures, finals)):
        if not math.isfinite(final) or not sig:
            continue
        step = rule.step_of(rung, _budget(sig), sig)  # a probe step of the trial's own, or None
        if step is None:
            continue
        X.append(transfer_features(sig[step], groups))
        y.append(float(final))
        index.append(i)
    return (np.array(X, dtype=float).reshape(len(X), len(feature_names(groups))), np.array(y, dtype=float),
            np.array(index, dtype=int))


def _budget(signature: Signature) -> float | None:
    for values in signature.values():
        b = values.get("budget_steps")
        if b is not None and math.isfinite(float(b)):
            return float(b)
    return None


@dataclass
class TransferScorer:
    """Predict the final metric at each rung from scale-free features (see the module docstring).

    Parameters:
        groups: feature groups to read, a subset of :data:`GROUPS` (``("dev",)``: the dev evaluation).
        rule: the decision rule (rungs are the points an estimator is fitted for).
        alpha: ridge penalty.

    ``fit(signatures, finals, studies=, tasks=)`` fits one estimator per rung on the trials that reached it
    (slopes from differences within each study) and, where the rule has a margin, the margin from
    cross-task gaps (:func:`rung_gaps`); ``score(signature, step)`` predicts from the features at ``step``
    with the estimator of the rung that judges there (:meth:`Rule.rung_at`); ``margin_at(step, budget)`` is
    the rung's margin; ``reads(steps)`` says what scoring measures.
    """

    groups: tuple[str, ...]
    rule: Rule
    alpha: float = 10.0
    estimators_: dict[float, RungModel] = field(default_factory=dict, repr=False)
    margins_: dict[float, float] = field(default_factory=dict, repr=False)
    card: dict = field(default_factory=dict, repr=False)
    versions: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.groups = tuple(self.groups)
        bad = [g for g in self.groups if g not in GROUPS]
        if bad or not self.groups:
            raise ValueError(f"groups must be a non-empty subset of {tuple(GROUPS)}, but got {self.groups}.")

    @property
    def names(self) -> tuple[str, ...]:
        """The measured names the features read (probes and dev metrics)."""
        return tuple(n for g in self.groups for n in GROUPS[g])

    def fit(self, signatures: Sequence[Signature], finals: Sequence[float], *, studies: Sequence | None = None,
            tasks: Sequence | None = None) -> TransferScorer:
        """Fit one ridge per rung on the trials with a finite final that reached the rung.

        ``studies``: the study each trial competed in (slopes come from differences within a study; None:
        one study); ``tasks``: each trial's task (needed, with two tasks at least, where the rule has a
        margin: the margin is measured on tasks the model did not see).
        """
        y_all = np.asarray(finals, dtype=float)
        if len(signatures) != len(y_all):
            raise ValueError(f"{len(signatures)} signatures but {len(y_all)} finals.")
        for name, labels in (("studies", studies), ("tasks", tasks)):
            if labels is not None and len(labels) != len(y_all):
                raise ValueError(f"{len(labels)} {name} labels but {len(y_all)} finals.")
        if self.rule.margin_quantile and (tasks is None or len(set(tasks)) < 2):
            raise ValueError("a rule with a margin needs trials of at least two tasks (tasks=): the margin is how "
                             "far the scorer errs on a task it was not fitted on.")
        study_of = np.asarray(studies if studies is not None else [0] * len(y_all))
        task_of = np.asarray(tasks if tasks is not None else [0] * len(y_all))
        self.estimators_, self.margins_ = {}, {}
        for rung in self.rule.rungs:
            X, y, index = rung_rows(signatures, y_all, self.rule, rung, self.groups)
            if len(y) < 3:
                raise ValueError(f"rung {rung}: {len(y)} trials reached it with a finite final; need 3.")
            self.estimators_[rung] = RungModel(self.alpha).fit(X, y, study_of[index])
            if self.rule.margin_quantile:
                gaps = rung_gaps(X, y, study_of[index], task_of[index], self.rule.keep_top, self.alpha)
                self.margins_[rung] = margin_from(gaps, self.rule.margin_quantile)
        from ._common import versions as _versions

        self.versions = {**_versions(), "format": TRANSFER_FORMAT}
        return self

    def rung_for(self, step: int, budget: float | None = None) -> float:
        """The rung whose estimator scores at ``step`` (see :meth:`Rule.rung_at`; the features are
        scale-free, so a study whose decision steps are not the rungs is still scored)."""
        if not self.estimators_:
            raise ValueError("the transfer scorer is not fitted; call fit() first.")
        return self.rule.rung_at(step, budget)

    def score(self, signature: Signature, step: int) -> float:
        """The predicted final metric from the features at ``step`` (NaN if nothing was measured there)."""
        if step not in signature:
            return math.nan
        X = np.array([transfer_features(signature[step], self.groups)], dtype=float)
        return float(self.estimators_[self.rung_for(step, _budget({step: signature[step]}))].predict(X)[0])

    def margin_at(self, step: int, budget: float | None = None) -> float:
        """The margin of the rung judging at ``step``, in metric units (0 without one)."""
        return self.margins_.get(self.rung_for(step, budget), 0.0) if self.margins_ else 0.0

    def decisions(self, budget: float | None, probe_steps: Iterable[int]) -> dict[int, float]:
        """Where the rule decides in a study of ``budget`` training steps probed at ``probe_steps``: decision
        step -> its margin (metric units), ascending. Raises ValueError where no rung falls on a probe step."""
        probe_steps = list(probe_steps)
        steps = self.rule.steps_for(budget, probe_steps)
        if not steps:
            raise ValueError(f"no rung of the scorer's rule ({self.rule.label}) falls on a probe step "
                             f"{sorted(probe_steps)} of a {budget}-step budget.")
        return {d: self.margin_at(d, budget) for d in steps}

    def out_of_range(self, signature: Signature, step: int) -> list[str]:
        """The features at ``step`` outside what the scorer was fitted on (see :data:`~earlyexit.scoring._ridge.OUT_OF_RANGE_MARGIN`)."""
        if step not in signature:
            return []
        row = transfer_features(signature[step], self.groups)
        names = feature_names(self.groups)
        model = self.estimators_[self.rung_for(step, _budget({step: signature[step]}))]
        return [names[i] for i in model.out_of_range(row)]

    def to_dict(self) -> dict:
        """The whole scorer as JSON-able data (see :func:`TransferScorer.from_dict`)."""
        return {"kind": "transfer", "format": TRANSFER_FORMAT, "groups": list(self.groups),
                "rule": self.rule.as_dict(), "alpha": self.alpha, "features": feature_names(self.groups),
                "rungs": {str(r): m.to_dict() for r, m in sorted(self.estimators_.items())},
                "margins": {str(r): m for r, m in sorted(self.margins_.items())},
                "card": self.card, "versions": self.versions}

    @classmethod
    def from_dict(cls, data: Mapping) -> TransferScorer:
        """Read :meth:`to_dict`'s layout: this format, format 2 (no ``dev_ties``: off) and format 1 (rungs in
        steps, no margin)."""
        if data.get("kind") != "transfer" or data.get("format") not in (1, 2, TRANSFER_FORMAT):
            raise ValueError(f"not a transfer scorer of format 1 to {TRANSFER_FORMAT}: kind {data.get('kind')!r}, "
                             f"format {data.get('format')!r}.")
        scorer = cls(tuple(data["groups"]), Rule(**data["rule"]), float(data["alpha"]))
        key = int if scorer.rule.unit == "steps" else float
        scorer.estimators_ = {key(r): RungModel.from_dict(m, scorer.alpha) for r, m in data["rungs"].items()}
        scorer.margins_ = {key(r): float(m) for r, m in data.get("margins", {}).items()}
        scorer.card, scorer.versions = dict(data.get("card", {})), dict(data.get("versions", {}))
        return scorer

    def reads(self, decision_steps: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """Each decision step reads the groups' names there (the context names are free)."""
        return {int(d): self.names for d in sorted(set(decision_steps))}

    def check_probes(self, measured: Sequence[str], where: str = "the study") -> None:
        from ._common import ScorerFileError

        missing = [n for n in self.names if n not in measured and n not in DEV_METRICS]
        if missing:
            raise ScorerFileError(f"the scorer needs probes {missing}, which {where} does not measure; "
                                  f"add them to probes.names or fit a scorer on what you measure.")
