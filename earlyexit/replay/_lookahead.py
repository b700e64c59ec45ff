"""The ``lookahead`` policy: the shipped rule, plus a prediction of each trial's final with calibrated intervals.

At each of the rule's rungs, and at the end of each trial's own warmup (the first logged step past it), a trial
is pruned when :class:`~earlyexit.pruning.ResolutionRule` prunes it (at the rungs), or when its optimistic final
is below the K-th best pessimistic final among the study's other trials: a completed trial's final, or a running
trial's pessimistic predicted final at its latest reading (so that with several workers the running trials count
too). Finals are predicted by :class:`~earlyexit.scoring.FinalPredictor` (fitted on other tasks' sweeps) and the
margins are calibrated on the study's own completed trials once it has enough at the step, on the other tasks
until then (:mod:`earlyexit.pruning._lookahead`).
"""

from __future__ import annotations

import math

import numpy as np

from ..protocol import headroom, lookahead_row, warmup_steps
from ..pruning import bound_upper, lookahead_judge
from ..pruning import ResolutionRule
from ..scoring import (PROBE_FEATURES, FinalPredictor, choose_neighbours, choose_probe_features, probe_feature_row,
                       probes_read)
from ._engine import HeldSet, RuleJudge
from ._interval import grouped_rows


def lookahead_rows(held: HeldSet, *, fitting: bool = False, probes: tuple[str, ...] = ()
                   ) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """Every reading of ``held`` inside the budget: ``(keys, X, final headroom shares)`` (``fitting``: only runs
    with a final); ``probes``: probe features (:data:`~earlyexit.scoring.PROBE_FEATURES`) after the six."""
    keys, rows, finals = [], [], []
    H = headroom(held.constant)
    for run, step, sig in held.readings(fitting=fitting):
        keys.append((run.run_id, step))
        lr = held.peak_lr.get(run.run_id, math.nan)
        rows.append(lookahead_row(dev_metric=sig.get("dev_metric", math.nan), constant=held.constant,
                                  lr_progress=sig.get("lr_progress", math.nan), step=step, budget=held.budget,
                                  learning_rate=lr, warmup_ratio=held.warmup.get(run.run_id, 0.0),
                                  dev_loss=sig.get("dev_loss", math.nan), classes=held.classes)
                    + probe_feature_row(sig, lr, probes))
        finals.append((run.final - held.constant) / H)
    return keys, np.array(rows, dtype=float).reshape(-1, 6 + len(probes)), np.array(finals, dtype=float)


def fit_predictor(sets: list[HeldSet], **settings) -> FinalPredictor:
    """A :class:`FinalPredictor` fitted on the held sets' readings, grouped by task."""
    probes = tuple(settings.get("probes", ()))
    return FinalPredictor(**settings).fit(*grouped_rows(sets, lambda h, fitting: lookahead_rows(
        h, fitting=fitting, probes=probes)))


def gain_rows(held: HeldSet, *, fitting: bool = False, probes: tuple[str, ...] = ()
              ) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray]:
    """The readings of ``held`` whose features and final are known: ``(keys, X, gain to the final in headroom
    units)``, what the predictor is measured on."""
    keys, X, finals = lookahead_rows(held, fitting=fitting, probes=probes)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(finals)
    return [k for k, o in zip(keys, ok) if o], X[ok], finals[ok] - X[ok, 0]


def _fold_rows(sets: list[HeldSet], probes: tuple[str, ...] = ()):
    """What a choice inside the training folds reads: ``(X, finals, task, study and trial of each row)``, every
    reading of ``sets`` with a final."""
    X, finals, groups, studies, runs = [], [], [], [], []
    for held in sets:
        keys, x, f = lookahead_rows(held, fitting=True, probes=probes)
        X.append(x)
        finals.append(f)
        groups += [held.task] * len(f)
        studies += [f"{held.sweep}/{held.seed}"] * len(f)
        runs += [rid for rid, _ in keys]
    return np.vstack(X), np.concatenate(finals), groups, studies, runs


def fit_predictor_choosing_probes(sets: list[HeldSet], *, orders: int = 2) -> FinalPredictor:
    """:func:`fit_predictor` with the probe features chosen on ``sets`` alone (:func:`~earlyexit.scoring.
    choose_probe_features`: each task predicted by the others and refit on its own trials); ``choice_`` holds
    each candidate's criterion."""
    every = tuple(PROBE_FEATURES)
    X, finals, groups, studies, runs = _fold_rows(sets, probes=every)
    chosen, scores = choose_probe_features(X[:, :6], X[:, 6:], finals - X[:, 0], groups, studies, runs,
                                           orders=orders)
    columns = list(range(6)) + [6 + every.index(n) for n in chosen]  # the rows fit_predictor(probes=chosen) reads
    model = FinalPredictor(probes=chosen).fit(X[:, columns], finals, groups)
    model.choice_ = scores
    return model


def fit_predictor_choosing_neighbours(sets: list[HeldSet], *, orders: int = 2) -> FinalPredictor:
    """:func:`fit_predictor` with its ``k`` and the dev metric's weight in the distance chosen on ``sets`` alone
    (:func:`~earlyexit.scoring.choose_neighbours`: each task predicted by the others and refit on its own trials);
    ``choice_`` holds each candidate's criterion."""
    X, finals, groups, studies, runs = _fold_rows(sets)
    (k, weight), scores = choose_neighbours(X, finals - X[:, 0], groups, studies, runs, orders=orders)
    model = FinalPredictor(k=k, metric_weight=weight).fit(X, finals, groups)
    model.choice_ = scores
    return model


def predictions(model: FinalPredictor, held: HeldSet) -> dict[tuple[str, int], tuple[float, float]]:
    """``(run_id, step) -> (dev metric, predicted gain in headroom units)`` for every reading with its features."""
    keys, X, _ = lookahead_rows(held, probes=model.probes)
    if not keys:
        return {}
    gain = model.predict(X)
    H = headroom(held.constant)
    return {k: (float(X[i, 0] * H + held.constant), float(g)) for i, (k, g) in enumerate(zip(keys, gain))
            if math.isfinite(g)}


class StudyPool:
    """A held set's readings, ready for a study refit: each reading's prior neighbours, its true gain and dev
    metric, and the squared distance (times ``shrink`` squared) between every two of them; one per held set, shared
    by every order and judge. What :class:`~earlyexit.pruning.LookaheadPruner` computes from the study, here once."""

    def __init__(self, model: FinalPredictor, held: HeldSet, shrink: float):
        keys, X, _ = lookahead_rows(held, probes=model.probes)
        ok = np.isfinite(X).all(axis=1)
        self.keys = [k for k, o in zip(keys, ok) if o]
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.rows_of: dict[str, list[tuple[int, int]]] = {}  # run_id -> its (step, row), in step order
        for (rid, step), i in sorted(self.index.items(), key=lambda item: (item[0][0], item[0][1])):
            self.rows_of.setdefault(rid, []).append((step, i))
        self.model, self.shrink = model, shrink
        self.Z, self.d, self.g = model.prior_neighbours(X[ok])
        H = headroom(held.constant)
        runs = {r.run_id: r for r in held.runs}
        self.value = np.array([runs[rid].signature[step].get("dev_metric", math.nan) for rid, step in self.keys])
        self.true = np.array([(runs[rid].final - v) / H for (rid, _), v in zip(self.keys, self.value)])
        self.D = model.study_distances(self.Z, self.Z, shrink)
        # Judges that share this pool (the settings of one policy, in one arrival order) ask the same questions
        # until their decisions part: each answer is kept, keyed by everything it depends on (the pool in its
        # order, which breaks ties at the k-th neighbour), so a repeat returns what the arithmetic gave.
        # Per pool (hashed once a call: a tuple does not keep its hash): its rows as an index array, their true
        # gains, and the answers so far.
        self._gains: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, dict[int, float]]] = {}
        self._errors: dict[tuple, list[float]] = {}

    def gains(self, rows: list[int], pool: tuple[int, ...]) -> np.ndarray:
        """Predicted gains of readings ``rows`` with the readings ``pool`` among the neighbours."""
        key = tuple(pool)
        if key not in self._gains:
            index = np.asarray(key, dtype=np.intp)
            self._gains[key] = (index, self.true[index], {})
        index, true, known = self._gains[key]
        todo = [r for r in dict.fromkeys(rows) if r not in known]
        if todo:
            new = self.model.study_medians(self.d[todo], self.g[todo], self.D[todo][:, index], true)
            known.update({r: float(x) for r, x in zip(todo, new)})
        return np.array([known[r] for r in rows], dtype=float)

    def errors_at(self, step: int, done: tuple[tuple[int, int, int], ...]) -> list[float]:
        """True minus predicted gain of each pooled reading at ``step`` (``done``: the pool as ``(trial, step,
        row)``), each predicted without its own trial's readings: the study's conformal errors there."""
        key = (step, tuple(done))
        if key not in self._errors:
            self._errors[key] = self._errors_at(step, done)
        return self._errors[key]

    def _errors_at(self, step: int, done: list[tuple[int, int, int]]) -> list[float]:
        at = [k for k, (_, s, _) in enumerate(done) if s == step]
        if not at:
            return []
        pool = [r for _, _, r in done]
        owner = np.array([t for t, _, _ in done])
        errors = self._leave_trial_out([pool[k] for k in at], pool, owner[at], owner)
        return [float(e) for e in errors if math.isfinite(e)]

    def _leave_trial_out(self, rows: list[int], pool: list[int], row_trials, pool_trials) -> np.ndarray:
        """The errors of readings ``rows``, each predicted from ``pool`` without its own trial's readings."""
        return self.model.leave_trial_out_errors(self.d[rows], self.g[rows], self.D[np.ix_(rows, pool)],
                                                 self.true[pool], self.true[rows], row_trials, pool_trials)


class LookaheadJudge(RuleJudge):
    """``rule`` live at its rungs, and the look-ahead bound at the rungs and at each trial's own warmup end.

    ``fallback(step)``: the margins before the study has enough completed trials at a step (the predictor's
    ``margins(coverage, step / budget)``, or ``(-inf, inf)`` for none). With ``pool`` (a :class:`StudyPool`), the
    completed trials' readings join the predictor's neighbours (``LookaheadPruner(refit=...)``); ``gain`` is then
    not read. ``probes``: the predictor's probe features (``FinalPredictor.probes``), whose probes the replay
    charges at every step the judge reads."""

    def __init__(self, held: HeldSet, rule: ResolutionRule, gain: dict, *, fallback, coverage: float = 0.8,
                 keep: int = 1, z: float = 1.0, pool: StudyPool | None = None, probes: tuple[str, ...] = ()):
        super().__init__(held, rule)
        self.pool = pool
        self.done: tuple[tuple[int, int, int], ...] = ()  # pooled readings: (trial index, step, pool row)
        self.pool_rows: tuple[int, ...] = ()  # their pool rows, in that order
        self._cache: dict[int, list[float]] = {}  # step -> the study's errors there, until a trial completes
        self.gain, self.fallback, self.coverage, self.keep, self.z = gain, fallback, coverage, keep, z
        self.H = headroom(held.constant)
        self.rungs = set(rule.rung_steps(held.budget, held.logged_steps))
        self.finals: dict[str, float] = {}  # completed trials
        self.errors: dict[int, list[float]] = {}  # step -> completed trials' errors there (headroom units)
        self.latest: dict[str, tuple[int, float, float]] = {}  # running trials: (step, value, gain)
        self._ends: dict[str, int | None] = {}  # run_id -> the step where its own warmup ends
        if probes:  # a predictor reading probe features pays for their probes at every step it reads
            self.reads = ("dev_metric",) + probes_read(probes)

    def steps(self, held):
        return tuple(s for s in held.logged_steps if 0 < s < held.budget)

    def _decides_at(self, run, step) -> bool:
        return step in self.rungs or step == self._warmup_end(run)

    def _warmup_end(self, run) -> int | None:
        """The first logged step at or past the end of ``run``'s warmup (None without a warmup)."""
        if run.run_id not in self._ends:
            end = warmup_steps(self.held.budget, self.held.warmup.get(run.run_id, 0.0))
            self._ends[run.run_id] = min((s for s in self.held.logged_steps if s > 0 and s >= end), default=None) \
                if end > 0 else None
        return self._ends[run.run_id]

    def at(self, index, run, step):
        if step in self.rungs and super().at(index, run, step):
            return True
        if self.pool is not None:
            row = self.pool.index.get((run.run_id, step))
            reading = None if row is None else (float(self.pool.value[row]), row)
        else:
            reading = self.gain.get((run.run_id, step))
        if reading is not None:
            self.latest[run.run_id] = (step, *reading)
        if reading is None or not self._decides_at(run, step):
            return False
        v, g = reading
        return self._decide(v, g, step, [(s, rv, rg) for rid, (s, rv, rg) in self.latest.items() if rid != run.run_id])

    def _decide(self, v: float, g, step: int, running: list) -> bool:
        """The bound on a reading (dev metric ``v``; its predicted gain, or its pool row with a pool) at ``step``,
        beside the other ``running`` trials' latest readings ``(step, value, gain or pool row)``."""
        errors = self.errors
        if self.pool is not None:  # gains now, with the trials completed by now among the neighbours
            if not math.isfinite(bound_upper(step, finals=self.finals, errors={step: self._errors_at(step)},
                                             fallback=self.fallback, coverage=self.coverage, keep=self.keep)):
                return False  # the bound cannot prune here, whatever the gains: none is predicted
            gains = self.pool.gains([g] + [rg for _, _, rg in running], self.pool_rows)
            g, running = float(gains[0]), [(s, rv, float(x)) for (s, rv, _), x in zip(running, gains[1:])
                                           if math.isfinite(x)]
            if not math.isfinite(g):
                return False
            errors = {s: self._errors_at(s) for s in {step, *(s for s, _, _ in running)}}
        return lookahead_judge(v, g, step, finals=list(self.finals.values()), errors=errors, running=running,
                               fallback=self.fallback, coverage=self.coverage, keep=self.keep, z=self.z,
                               headroom=self.H,
                               n=self.held.n_dev, metric=self.held.metric)

    def _errors_at(self, step: int) -> list[float]:
        """The study's errors at ``step`` with the pool as it is now (cached until the next trial completes)."""
        if step not in self._cache:
            self._cache[step] = self.pool.errors_at(step, self.done)
        return self._cache[step]

    def end(self, index, run, completed):
        self.latest.pop(run.run_id, None)
        if not (completed and math.isfinite(run.final)):
            return
        self.finals[run.run_id] = run.final
        if self.pool is not None:
            rows = self.pool.rows_of.get(run.run_id, [])
            self.done = tuple(sorted(self.done + tuple((index, step, r) for step, r in rows)))
            self.pool_rows = tuple(r for _, _, r in self.done)
            self._cache = {}
            return
        for (rid, step), (v, g) in self.gain.items():
            if rid == run.run_id:
                self.errors.setdefault(step, []).append((run.final - v) / self.H - g)
