"""Retro-simulate pruned studies over a logged sweep.

Each held-out set of runs (one seed of a sweep) is replayed as a study whose
trials arrive in a random order. A policy sees only what it would have seen
live: the trial's own checkpoints up to the current step, the checkpoints of
earlier trials, and the finals of earlier completed trials. A trial either
stops at a probe step or trains to the end.

Compute is counted in training steps, as a fraction of training every
config fully without probes. A policy that uses probes also pays for them
(:class:`Compute`): where the sweep has measured probe costs
(``probe_costs.json``), each checkpoint the policy probes costs exactly the
probes it uses, and each dev evaluation it looks at costs one evaluation;
otherwise it pays the log's ``compute_steps``, the wall-clock overhead of
every probe the sweep measured, and dev evaluations are free. The final
evaluation of a run trained to the end is free for every policy.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import stats

from ..names import DEV_METRICS
from ..sweeps import ProbeCosts, Sweep
from ..training import epoch_budget, schedule_context
from ._schedule import Judge, schedule


@dataclass(frozen=True)
class Run:
    """One logged run, as the replay sees it.

    Attributes:
        run_id, config_id, seed: identity.
        final: final dev accuracy (NaN if diverged).
        steps: training steps the run took (where it diverged, if it did).
        signature: ``{step: {probe or dev metric: value}}``.
        compute: ``{step: training steps + probe overhead so far}``.
        total_compute: the whole run's compute with probe overhead.
        diverged: the run ended on a non-finite loss.
        params: the run's searched hyperparameters, seed excluded (``{"learning_rate": 1e-4, ...}``).
    """

    run_id: str
    config_id: str
    seed: int
    final: float
    steps: int
    signature: dict
    compute: dict
    total_compute: float
    diverged: bool
    params: dict = field(default_factory=dict)


def sweep_context(sweep: Sweep) -> tuple[int, int, dict]:
    """What every run of ``sweep`` shares: its budget in steps, its number of classes, and the training
    settings a run's parameters may leave out (schedule, warmup, learning rate), from the manifest."""
    m = sweep.manifest
    protocol = m.get("protocol", {})
    budget = int(m.get("budget_steps") or protocol.get("max_steps") or sweep.runs["steps"].max())
    classes = int(m.get("num_labels") or len(m.get("label_names") or ()) or 2)  # version 1: SST-2 and CoLA
    fixed = {"schedule": protocol.get("schedule", "linear"), "warmup_ratio": protocol.get("warmup_ratio", 0.0),
             "learning_rate": protocol.get("learning_rate", math.nan)}
    return budget, classes, fixed


def run_budget(sweep: Sweep, params: dict, budget: int, run_id: str | None = None) -> int:
    """A run's own budget in steps: the manifest's ``run_budgets`` entry where the sweep recorded one, else the
    sweep's ``budget`` unless the run's searched batch size changes it (an epoch budget of ``max_epochs`` over the
    manifest's ``train_examples``, as :meth:`TrainConfig.budget_steps`)."""
    m = sweep.manifest
    if run_id is not None and run_id in (m.get("run_budgets") or {}):
        return int(m["run_budgets"][run_id])
    epochs, examples = m.get("protocol", {}).get("max_epochs"), m.get("train_examples")
    size = params.get("batch_size")
    if not (epochs and examples and size) or not math.isfinite(float(size)):
        return budget
    return epoch_budget(epochs, examples, size)


def context_at(step: int, params: dict, budget: int, classes: int, fixed: dict) -> dict:
    """The free names of :data:`earlyexit.names.CONTEXT_NAMES` for a run with ``params`` at ``step``."""
    merged = {**fixed, **{k: v for k, v in params.items() if k in fixed}}
    return schedule_context(step, budget, float(merged["learning_rate"]), float(merged["warmup_ratio"]),
                            str(merged["schedule"]), classes)


def runs_of(sweep: Sweep) -> list[Run]:
    cps = sweep.checkpoints
    params = [p for p in sweep.manifest.get("params", []) if p != "seed" and p in sweep.runs.columns]
    budget, classes, fixed = sweep_context(sweep)
    by_run = dict(tuple(cps.groupby("run_id", sort=False)))  # each run's rows, in the file's order
    columns = [*sweep.probes, "dev_accuracy", "dev_metric", "dev_loss"]
    out = []
    for _, r in sweep.runs.iterrows():
        rows = by_run.get(r["run_id"], cps.iloc[:0]).sort_values("step")
        own = run_budget(sweep, {p: r[p] for p in params}, budget, r["run_id"])
        if sweep.probe_steps:  # a version-2 sweep's final row is the final evaluation (free), not a checkpoint
            rows = rows[rows["step"].isin(sweep.probe_steps)]
        signature, compute = {}, {}
        values_of = {c: rows[c].to_numpy() for c in columns}
        for i, (step, spent) in enumerate(zip(rows["step"].to_numpy(), rows["compute_steps"].to_numpy())):
            values = {c: float(values_of[c][i]) for c in columns}
            values.update(context_at(int(step), {p: r[p] for p in params}, own, classes, fixed))
            signature[int(step)] = values
            compute[int(step)] = float(spent)
        out.append(Run(r["run_id"], r["config_id"], int(r["seed"]), float(r["final_metric"]), int(r["steps"]),
                       signature, compute, float(r["compute_steps"]), r["status"] == "diverged",
                       {p: r[p] for p in params}))
    return out


@dataclass(frozen=True)
class Compute:
    """How a policy's compute is counted for one run, in training steps.

    Attributes:
        probes: what the policy measures at each checkpoint it looks at
            (names of :data:`earlyexit.probes.PROBE_NAMES`, and
            ``dev_accuracy`` for a dev evaluation); empty for none.
        costs: per-probe costs in training steps (the sweep's
            ``probe_costs.json``); None charges the log's wall-clock
            ``compute_steps`` instead, i.e. every probe the sweep measured.
        probe_until: the last step at which the policy still probes (its
            decision step); later checkpoints of a survivor cost nothing.
            Only with ``costs``: the logged compute cannot be split.
        steps: the only checkpoints the policy looks at (``prefix_accuracy``:
            its decision step); None for every checkpoint up to
            ``probe_until``.
    """

    probes: tuple = ()
    costs: ProbeCosts | None = None
    probe_until: int | None = None
    steps: tuple | None = None

    @cached_property
    def per_checkpoint(self) -> float:
        """Training steps one checkpoint's probes cost (NaN when charged from the log); priced once."""
        if not self.probes:
            return 0.0
        if self.costs is None:
            return math.nan if self._uses_probes else 0.0
        return self.costs.of(self.probes)

    def until(self, run: Run, step: int) -> float:
        """Compute of ``run`` trained to ``step`` (or to where it diverged) and probed up to there."""
        stop = min(step, run.steps)
        if not self.probes:
            return float(stop)
        if self.costs is None:
            return run.compute.get(stop, stop) if self._uses_probes else float(stop)
        return stop + self.per_checkpoint * self._checkpoints(run, stop)

    def whole(self, run: Run) -> float:
        """Compute of ``run`` trained to its end."""
        if not self.probes:
            return float(run.steps)
        if self.costs is None:
            return run.total_compute if self._uses_probes else float(run.steps)
        return run.steps + self.per_checkpoint * self._checkpoints(run, run.steps)

    @property
    def _uses_probes(self) -> bool:
        return bool(set(self.probes) - set(DEV_METRICS))

    def _checkpoints(self, run: Run, stop: int) -> int:
        last = stop if self.probe_until is None else min(stop, self.probe_until)
        counted = self._counted.get(id(run))
        if counted is None or counted[0] is not run:  # the run's checkpoints this policy reads, in order, once
            read = None if self.steps is None else set(self.steps)
            counted = self._counted[id(run)] = (run, sorted(s for s in run.signature if read is None or s in read))
        return bisect.bisect_right(counted[1], last)

    @cached_property
    def _counted(self) -> dict:
        return {}


NO_PROBES = Compute()


@dataclass(frozen=True)
class Outcome:
    """One replayed study: compute fraction used, regret, and the scores the policy gave."""

    compute_used: float
    regret: float
    scores: dict  # run_id -> score the policy ranked by (NaN if none)
    kept: tuple = ()  # run_ids trained to the end (completed)


Policy = Callable[[Sequence[Run], int], Outcome]


def _best_final(runs: Sequence[Run]) -> float:
    finals = [r.final for r in runs if math.isfinite(r.final)]
    return max(finals) if finals else math.nan


def _full_cost(runs: Sequence[Run]) -> float:
    """Training every config fully, without probes: the denominator of compute fractions."""
    return float(sum(r.steps for r in runs)) or 1.0


def outcome(runs: Sequence[Run], used: float, completed: Sequence[Run], scores: dict) -> Outcome:
    best_kept = max((r.final for r in completed if math.isfinite(r.final)), default=math.nan)
    regret = _best_final(runs) - best_kept if math.isfinite(best_kept) else _best_final(runs)
    return Outcome(used / _full_cost(runs), regret, scores, tuple(r.run_id for r in completed))


# -- policies that need no Optuna study ------------------------------------
def no_pruning(runs: Sequence[Run], order_seed: int) -> Outcome:
    return outcome(runs, _full_cost(runs), runs, {r.run_id: math.nan for r in runs})


def oracle(runs: Sequence[Run], order_seed: int) -> Outcome:
    best = max((r for r in runs if math.isfinite(r.final)), key=lambda r: r.final)
    return outcome(runs, best.steps, [best], {r.run_id: r.final for r in runs})


def screen(step: int, keep_top: int, score_of: Callable[[Run, int], float], *,
           compute: Compute = NO_PROBES) -> Policy:
    """Train every config to ``step``, keep the top ``keep_top`` by ``score_of(run, step)``, finish those.

    ``prefix_accuracy`` is this with the dev accuracy at ``step`` (no probe
    overhead); ``earlyexit`` and ``loss_only`` with a probe score, paying for
    their probes as ``compute`` says. Equal scores are ranked in the arrival
    order drawn from ``order_seed``. Diverged runs stop where they diverged;
    a survivor that diverges after ``step`` is replaced by the next best.
    """
    if keep_top < 1:
        raise ValueError(f"keep_top must be at least 1, but got {keep_top=}.")

    def policy(runs: Sequence[Run], order_seed: int) -> Outcome:
        scores = {r.run_id: (score_of(r, step) if step in r.signature else math.nan) for r in runs}
        # Ties (e.g. every config still at the majority class) go by arrival order, drawn per order.
        arrival = [runs[i] for i in np.random.default_rng(order_seed).permutation(len(runs))]
        ranked = sorted((r for r in arrival if math.isfinite(scores[r.run_id])), key=lambda r: -scores[r.run_id])
        # Survivors train on; one that diverges later stops there and the next best takes its place.
        kept, trained = [], set()
        for r in ranked:
            if len(kept) >= keep_top:
                break
            trained.add(r.run_id)
            if not r.diverged:
                kept.append(r)
        used = sum(compute.whole(r) if r.run_id in trained else compute.until(r, step) for r in runs)
        return outcome(runs, used, kept, scores)

    return policy


def live_rungs(steps: Sequence[int], keep_top: int, score_of: Callable[[Run, int], float], *,
               compute: Compute = NO_PROBES, min_lr_progress: float = 0.0,
               margin: float | Mapping[int, float] = 0.0, dev_ties: bool = False) -> Policy:
    """The rung rule as a live study applies it (:class:`earlyexit.pruning.GeometricPruner`, no startup
    trials): trials arrive one at a time in the order drawn from ``order_seed``; at each decision step a
    trial is compared with every earlier trial that reported there (kept or pruned, its score recorded) and
    pruned when ``keep_top`` of them scored more than the margin higher (one value, or one per step), unless
    it has spent less than ``min_lr_progress`` of its learning-rate schedule; a non-finite score prunes.
    With ``dev_ties``, an earlier trial outranks it only if its dev metric at the rung is also strictly higher
    (``GeometricPruner(dev_ties=True)``).

    Unlike an offline schedule that trains every config to a rung before judging any, the first trials of
    a study are kept for want of rivals: this is what a user of ``earlyexit run`` gets. It runs on the
    live replays' scheduler (:func:`~earlyexit.replay._schedule.schedule`, one worker). Scores are computed
    once per (run, step) and shared across orders.
    """
    if keep_top < 1:
        raise ValueError(f"keep_top must be at least 1, but got {keep_top=}.")
    margins = {d: (margin.get(d, 0.0) if isinstance(margin, Mapping) else margin) for d in steps}
    cache: dict = {}  # (run_id, step) -> (score, dev metric, lr progress), shared by every order

    def policy(runs: Sequence[Run], order_seed: int) -> Outcome:
        judge = _RungJudge(steps, keep_top, score_of, cache, margins, min_lr_progress, dev_ties)
        order = [runs[i] for i in np.random.default_rng(order_seed).permutation(len(runs))]
        used, completed = schedule(order, judge, steps, compute)
        return outcome(runs, used, completed, judge.scores)

    return policy


class _RungJudge(Judge):
    """:func:`live_rungs`'s judge: at each rung, the trial against every earlier trial's score there."""

    def __init__(self, steps, keep_top, score_of, cache, margins, min_lr_progress, dev_ties):
        self.rungs, self.keep_top, self.score_of, self.cache = tuple(steps), keep_top, score_of, cache
        self.margins, self.min_lr_progress, self.dev_ties = margins, min_lr_progress, dev_ties
        self.seen: dict[int, list[float]] = {d: [] for d in steps}
        self.seen_dev: dict[int, list[float]] = {d: [] for d in steps}
        self.scores: dict[str, float] = {}

    def reaches(self, run, step):
        """Every rung up to ``step`` is logged and within the run (a run that diverged at a rung is judged there)."""
        return all(d in run.signature and run.steps >= d for d in self.rungs[:self.rungs.index(step) + 1])

    def at(self, index, run, step):
        from ..pruning import decide

        key = (run.run_id, step)
        if key not in self.cache:
            self.cache[key] = (float(self.score_of(run, step)), run.signature[step].get("dev_metric", math.nan),
                               run.signature[step].get("lr_progress"))
        v, dev, lr_progress = self.cache[key]
        self.scores[run.run_id] = v
        ties = dict(dev=dev, others_dev=self.seen_dev[step]) if self.dev_ties else {}
        decision = decide(v, self.seen[step], step=step, keep_top=self.keep_top, margin=self.margins[step],
                          min_lr_progress=self.min_lr_progress, lr_progress=lr_progress, **ties)
        self.seen[step].append(v)
        self.seen_dev[step].append(dev)
        return decision.prune


def dev_metric_at(run: Run, step: int) -> float:
    """The sweep's metric on dev at ``step`` (the accuracy of a version-1 sweep); NaN where not evaluated."""
    return run.signature.get(step, {}).get("dev_metric", math.nan)


def probe_rank(probe: str, higher_is_better: bool = False) -> Callable[[Run, int], float]:
    def score(run: Run, step: int) -> float:
        v = run.signature.get(step, {}).get(probe, math.nan)
        return v if higher_is_better else -v

    return score


def scorer_at(scorer) -> Callable[[Run, int], float]:
    def score(run: Run, step: int) -> float:
        return scorer.score({s: v for s, v in run.signature.items() if s <= step}, step)

    return score


@dataclass(frozen=True)
class PolicyResult:
    """A policy's figures over held-out sets and orders: means and standard deviations."""

    compute_saved: float
    compute_saved_std: float
    regret: float
    regret_std: float
    spearman: float
    replays: int

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


def evaluate(policy: Policy, held_out: Sequence[Sequence[Run]], orders: int,
             rank_value: Callable[[Run], float] | None = None) -> PolicyResult:
    """Run ``policy`` on every held-out set in ``orders`` arrival orders.

    ``spearman`` is the mean over held-out sets of the Spearman correlation
    of ``rank_value(run)`` (the policy's score at its decision step) with the
    final accuracy, over runs with both finite (NaN for policies without one).
    """
    saved, regrets, rhos = [], [], []
    for runs in held_out:
        for o in range(orders):
            res = policy(runs, o)
            saved.append(1 - res.compute_used)
            regrets.append(res.regret)
        if rank_value is not None:
            finals = np.array([r.final for r in runs])
            sc = np.array([rank_value(r) for r in runs], dtype=float)
            ok = np.isfinite(finals) & np.isfinite(sc)
            if ok.sum() >= 3 and np.ptp(sc[ok]) > 0:
                rhos.append(stats.spearmanr(sc[ok], finals[ok]).statistic)
    return PolicyResult(float(np.mean(saved)), float(np.std(saved)), float(np.mean(regrets)), float(np.std(regrets)),
                        float(np.mean(rhos)) if rhos else math.nan, len(saved))
