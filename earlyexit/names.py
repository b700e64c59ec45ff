"""The vocabulary every layer shares: probe names and families, dev metrics, a signature, the scorer
protocol, and the keys a trial's attributes are stored under.

Torch-free and import-free (typing only), so that the analysis side (fit, replay, export from a sweep,
the sweep catalogue) names things without importing the training stack.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol, runtime_checkable

BUNDLED_PREFIX = "earlyexit:"
"""Names an asset bundled with the package: ``earlyexit:tiny-bert`` (a model), ``earlyexit:sst2-2k`` (data)."""

PROBE_NAMES: tuple[str, ...] = (
    "loss",
    "gradient_norm",
    "gradient_variance",
    "sam_sharpness",
    "hessian_top_eigenvalue",
    "hessian_trace",
    "critical_sharpness",
    "relative_critical_sharpness",
    "fisher_trace",
)
"""Every probe :func:`earlyexit.probes.measure` knows, in a stable order."""

GRADIENT_PROBES: tuple[str, ...] = ("loss", "gradient_norm", "gradient_variance")
"""What one per-batch gradient pass gives (the ``gradient`` part of the probe costs)."""

NEEDS_GRADIENT = frozenset({"gradient_norm", "gradient_variance", "sam_sharpness", "critical_sharpness",
                            "relative_critical_sharpness"})
"""Probes that need the gradient (the loss alone is a forward pass)."""

HESSIAN_PROBES = frozenset({"hessian_top_eigenvalue", "hessian_trace"})
"""Probes that need Hessian-vector products (the costly ones)."""

CHEAP_PROBES: tuple[str, ...] = ("loss", "gradient_norm", "gradient_variance", "sam_sharpness", "critical_sharpness")
"""The probes without Hessian-vector products (``earlyexit fit --no-hessian``)."""

OPT_IN_PROBES = frozenset({"relative_critical_sharpness", "fisher_trace"})
"""Probes measured only when named: the relative probe needs a second batch set; the Fisher trace came
after the prior sweeps' protocol was fixed, which a default must not change under a sweep being logged."""

PROBE_FEATURE_NAMES: tuple[str, ...] = ("lr_x_top_eigenvalue", "lr_x_critical_sharpness", "gradient_noise",
                                        "trace_over_top", "relative_sam", "relative_train_loss")
"""The look-ahead predictor's scale-free features made of probes (defined in :mod:`earlyexit.scoring`)."""

DEFAULT_PROBES: tuple[str, ...] = tuple(n for n in PROBE_NAMES if n not in OPT_IN_PROBES)
"""What a run measures unless told otherwise."""

CONTEXT_NAMES = ("lr_progress", "learning_rate", "uniform_loss", "budget_steps")
"""What a signature holds at each step besides measurements, known without measuring (free): the fraction
(0..1) of the learning-rate schedule spent by the step, the learning rate of the step's update, the loss
of a uniform prediction, ln(number of classes) in nats (what the loss is measured against across tasks), and
the run's training budget in steps (what a rung given as a fraction of the budget is a fraction of)."""

DEV_METRICS = ("dev_accuracy", "dev_loss", "dev_metric")
"""What a dev evaluation measures (``dev_metric``: the study's metric, see ``earlyexit.metrics``); in a
scorer's names or a measurement plan, they ask for one."""

Signature = Mapping[int, Mapping[str, float]]
"""A trial's measurements so far: ``{probe step: {probe or dev metric name: value}}``."""

Plan = Mapping[int, Collection[str]]
"""What to measure where: ``{probe step: names}`` (probes and dev metrics)."""


@runtime_checkable
class Scorer(Protocol):
    """What the pruner, the study runner, the replay, the export and ``hf.py`` need of a scorer.

    ``score(signature, step)`` is the trial's score at ``step`` from what it measured up to there
    (higher is better; a fitted scorer's score is the predicted final metric). ``reads(steps)`` says
    which names it reads at which steps to decide at ``steps`` (None: it needs no plan, read all).
    """

    def score(self, signature: Signature, step: int) -> float: ...

    def reads(self, steps: Iterable[int]) -> dict[int, tuple[str, ...]] | None: ...


# Trial attributes (Optuna user attributes) written by the study runner and the Trainer callback,
# read by the export and the summary.
PROBES_AT = "probes@{step}"
"""``{probe name: value}`` measured at the step (non-finite values as strings)."""
SCORE_AT = "score@{step}"
"""The score the trial reported at the step."""
OUT_OF_RANGE_AT = "out_of_range@{step}"
"""The scorer's features outside the range it was fitted on at the step (the trial is then kept there)."""
LR_PROGRESS_AT = "lr_progress@{step}"
"""Fraction (0..1) of the trial's learning-rate schedule spent by the step (the pruner's "too early" clock)."""
DEV_ACCURACY_AT = "dev_accuracy@{step}"
DEV_METRIC_AT = "dev_metric@{step}"
"""The study's metric on dev at the step (what a pruner with ``dev_ties`` compares: a trial is outranked only
by trials whose dev metric there is strictly higher)."""
DEV_PREDICTIONS_AT = "dev_predictions@{step}"
"""The predicted class of every dev example at the step, one character each (``encode_classes``): the
per-example record :class:`earlyexit.pruning.ResolutionPruner` pairs two trials on."""
DEV_SIZE = "earlyexit:dev_size"
"""Examples in the dev set a trial is evaluated on (for the value-and-size standard error)."""
WARMING_UP_AT = "warming_up@{step}"
"""Whether the trial's learning rate is still below its peak at the step (its warmup not yet over)."""
PROBE_ERROR_AT = "probe_error@{step}"
PRUNED_REASON = "pruned_reason"
"""Why the trial was pruned (or ``diverged``)."""
DEV_LOSS_AT = "dev_loss@{step}"
"""The dev loss at the step, in nats (what the bound on a trial's final reads beside the dev metric)."""
MAX_STEPS = "earlyexit:max_steps"
"""The trial's own budget in optimizer steps (where the pruner places its rungs for it)."""
WARMUP_STEPS = "earlyexit:warmup_steps"
"""The trial's warmup in optimizer steps."""
PEAK_LEARNING_RATE = "earlyexit:learning_rate"
"""The trial's peak learning rate (after warmup)."""
WARMUP_RATIO = "earlyexit:warmup_ratio"
"""The trial's warmup as a fraction (0..1) of its budget."""
COHORT = "earlyexit:cohort"
"""The synchronous cohort a trial belongs to (trials judged together at each rung), with ``mode = "synchronous"``."""
PHASE_ATTR = "earlyexit:phase"
"""A screened study's phase of a trial (``screen``, or ``final`` for a survivor trained to the end)."""
WORKER = "earlyexit:worker"
"""``host:pid`` of the process that ran the trial."""
DEVICE = "earlyexit:device"
"""Where the trial trained (the GPU's model on CUDA)."""
STUDY_SPEC = "earlyexit:spec"
"""The spec's TOML text (a study user attribute)."""
STUDY_SPEC_PATH = "earlyexit:spec_path"
STUDY_METRIC = "earlyexit:metric"
STUDY_BUDGET = "earlyexit:budget_steps"
"""A trial's budget in optimiser steps (``max_steps``, or resolved from ``max_epochs``)."""
STUDY_LABEL_NAMES = "earlyexit:label_names"
STUDY_DEV_LABELS = "earlyexit:dev_labels"
"""The dev split's class ids, one character each (``encode_classes``), for paired comparisons."""


def at(key: str, step: int) -> str:
    """A per-step attribute key: ``at(PROBES_AT, 50) == "probes@50"``."""
    return key.format(step=step)
