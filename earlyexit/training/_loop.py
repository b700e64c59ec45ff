"""The training loop: AdamW fine-tuning that calls the probes at checkpoints.

Data flows one way: the loop trains, measures probes and dev metrics at the
probe steps, and hands each :class:`Checkpoint` to a callback. The callback
(a pruner, a logger) returns True to stop the run there; the loop knows
nothing about why.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import torch

from ..data import TaskData, load_task
from ..models import load_model, load_tokenizer, shrink_vocabulary, used_token_ids
from ..metrics import check_metric, metric_value
from ..names import DEV_METRICS
from ..probes import PROBE_NAMES, WarmStart, measure
from . import _snapshot
from ._batches import Batcher, collate
from ._config import HF_SCHEDULER_NAMES, TrainConfig, compute_steps
from ._device import autocast, device_name, grad_scaler, resolve_device, to_device


@dataclass(frozen=True)
class Checkpoint:
    """What the loop knows at one probe step.

    Attributes:
        step: optimiser steps taken so far.
        probes: probe values by name (see :func:`earlyexit.probes.measure`);
            empty when the probes failed (``probe_error`` says why).
        dev_accuracy: accuracy on the whole dev split, in [0, 1].
        dev_metric: the study's metric (``config.metric``) on the dev split
            (equal to ``dev_accuracy`` for ``accuracy``; MCC is in [-1, 1]).
        dev_loss: mean cross-entropy on the dev split, in nats.
        train_loss: mean training loss over the steps since the last checkpoint.
        probe_seconds, eval_seconds: wall time of the probes and of evaluation.
        train_step_seconds: mean wall time of a training step so far (NaN at step 0).
        compute_steps: compute used so far in training-step equivalents:
            training steps plus probe time divided by the mean step time.
        wall_seconds: wall time since the run started.
        diagnostics: the probes' cost and convergence figures.
        probe_error: why the probes failed at this step, or None.
        dev_predictions: the predicted class id of every dev example, in the
            dev split's order (empty where dev was not evaluated): the
            per-example record a paired test of two trials reads.
    """

    step: int
    probes: dict[str, float]
    dev_accuracy: float
    dev_loss: float
    train_loss: float
    probe_seconds: float
    eval_seconds: float
    train_step_seconds: float
    compute_steps: float
    wall_seconds: float
    diagnostics: dict[str, float] = field(default_factory=dict)
    probe_error: str | None = None
    dev_metric: float = math.nan
    dev_predictions: tuple[int, ...] = ()


@dataclass(frozen=True)
class TrainResult:
    """The end of a run.

    Attributes:
        status: ``completed``, ``stopped`` (the callback asked) or ``diverged``
            (a non-finite training loss).
        steps: optimiser steps taken.
        final_accuracy, final_loss: dev metrics at the end (NaN if diverged).
        final_metric: the study's metric on dev at the end (NaN if diverged).
        device: where the run trained (``device_name``: the GPU's model on CUDA).
        compute_steps: training steps plus probe overhead, in steps.
        checkpoints: every checkpoint measured.
        reason: why the run ended early, or None.
        train_step_seconds: mean wall time of a training step over the run.
        final_test_accuracy, final_test_metric: the final model on the task's
            test split, evaluated once, only when ``train(evaluate_test=True)``
            and the task has one (NaN otherwise). Nothing decides on them.
        resumed_at: the step a resumed run went on from (``train(snapshot=...)``),
            or None for a run trained in one go.
        earlier_seconds: wall time the run spent before that resume (0 if none);
            checkpoints' ``wall_seconds`` count it, so they run on across sittings.
    """

    status: str
    steps: int
    final_accuracy: float
    final_loss: float
    compute_steps: float
    checkpoints: list[Checkpoint]
    reason: str | None = None
    train_step_seconds: float = math.nan
    final_metric: float = math.nan
    device: str = ""
    final_test_accuracy: float = math.nan
    final_test_metric: float = math.nan
    resumed_at: int | None = None
    earlier_seconds: float = 0.0


def probe_set(config: TrainConfig, task: TaskData, tokenizer, id_map=None, device=None) -> list[dict]:
    """The fixed probe batches: ``probe_seed`` picks them, so every trial of a study shares them."""
    need = config.probe_batches * config.probe_batch_size
    if need > len(task.train):
        raise ValueError(f"the probe set needs {need} examples but the task has {len(task.train)}.")
    gen = torch.Generator().manual_seed(config.probe_seed)
    idx = torch.randperm(len(task.train), generator=gen)[:need].tolist()
    # Sorted by length so each probe batch pads little; the set (and L) is the same.
    rows = sorted((task.train[i] for i in idx), key=lambda r: len(r[0]) + len(r[1] or ""))
    size = config.probe_batch_size
    batches = [collate(tokenizer, rows[k:k + size], config.max_length, id_map) for k in range(0, need, size)]
    return batches if device is None else [to_device(b, device) for b in batches]


def _loss(model, batch):
    return model(**batch).loss


def evaluate(model, tokenizer, rows, *, batch_size: int, max_length: int, id_map=None,
             metric: str = "accuracy", device=None) -> tuple[float, float, float]:
    """Dev accuracy in [0, 1], mean cross-entropy in nats, and ``metric`` (see ``earlyexit.metrics``), in eval mode.

    Rows are evaluated in length order (less padding); the figures are sums
    over rows, so the order does not change them.
    """
    return predict(model, tokenizer, rows, batch_size=batch_size, max_length=max_length, id_map=id_map,
                   metric=metric, device=device)[:3]


def predict(model, tokenizer, rows, *, batch_size: int, max_length: int, id_map=None,
            metric: str = "accuracy", device=None) -> tuple[float, float, float, tuple[int, ...]]:
    """:func:`evaluate`'s three figures and the predicted class id of each row, in the rows' own order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1] or ""))
    rows = [rows[i] for i in order]
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    total_loss, labels, predictions = 0.0, [], []
    try:
        with torch.no_grad():
            for k in range(0, len(rows), batch_size):
                batch = collate(tokenizer, rows[k:k + batch_size], max_length, id_map)
                if device is not None:
                    batch = to_device(batch, device)
                out = model(**batch)
                total_loss += float(out.loss) * len(batch["labels"])
                labels += batch["labels"].tolist()
                predictions += out.logits.argmax(-1).tolist()
    finally:
        for m, flag in flags:
            m.training = flag
    accuracy = sum(y == p for y, p in zip(labels, predictions)) / len(rows)
    value = accuracy if metric == "accuracy" else metric_value(metric, labels, predictions)
    in_order = [0] * len(rows)
    for i, p in zip(order, predictions):
        in_order[i] = int(p)
    return accuracy, total_loss / len(rows), value, tuple(in_order)


def train(
    config: TrainConfig,
    *,
    on_checkpoint: Callable[[Checkpoint], bool] | None = None,
    task: TaskData | None = None,
    progress: Callable[[int, int], None] | None = None,
    plan: Mapping[int, Collection[str]] | None = None,
    evaluate_test: bool = False,
    snapshot: str | os.PathLike | None = None,
    snapshot_seconds: float = 60.0,
) -> TrainResult:
    """Fine-tune per ``config``, probing at ``config.probe_steps``.

    ``plan`` (step -> names) replaces that with exactly what someone reads:
    checkpoints only at its steps, measuring there only its probe names, and
    evaluating on dev only where it names ``dev_accuracy`` or ``dev_loss``
    (NaN otherwise). A study's pruner passes what its scorer reads, so a
    trial pays for nothing else. Without a plan the final step is a
    checkpoint too (every probe and the dev metrics at the end of the
    budget), whether or not it is a probe step.

    ``config.max_epochs`` is resolved to steps on the task's training split
    here (:meth:`TrainConfig.with_budget`); probe steps past the budget are
    never reached.

    Deterministic on CPU for a given config. ``on_checkpoint(checkpoint)``
    returning True stops the run at that checkpoint (status ``stopped``).
    A non-finite training loss ends the run with status ``diverged``. A probe
    that fails (for example a model without double-backward support) is
    recorded with its reason and the run goes on. ``task`` may be passed to
    share loaded data between runs; ``progress(step, max_steps)`` is called
    after every step. ``evaluate_test`` evaluates the final model once on the
    task's test split, where it has one (a logged sweep's test metric).

    ``snapshot`` names a file that keeps the run's state (see ``_snapshot``):
    it is written after each checkpoint and after every ``snapshot_seconds``
    of wall time (at a step's end), and a run whose file holds a state of
    this configuration, plan, device and torch goes on from it instead of
    from step 0: the same steps, checkpoints and figures as a run never
    stopped (on the CPU, to the bit). The checkpoints measured before the
    resume are in the result but are not handed to ``on_checkpoint`` again.
    The caller removes the file once it has kept the result.

    One function on purpose (it is longer than the house's 80 lines): the step loop and the checkpoint it
    calls share the run's clock, losses and warm start, and reading them in one place is what keeps the
    order of the seeded draws, and so a logged run, reproducible.
    """
    started = time.perf_counter()
    task = task or load_task(config.source)
    config = config.with_budget(len(task.train))
    check_metric(config.metric, task.num_labels)
    tokenizer, model, id_map, device, probes, scaler, batcher, params, optimizer, scheduler = _set_up(
        config, task, evaluate_test)

    checkpoints: list[Checkpoint] = []
    warm = WarmStart()
    train_seconds, probe_seconds_total = 0.0, 0.0
    losses: list[float] = []
    step = 0
    resumed_at, earlier = None, 0.0
    key = None if snapshot is None else _snapshot.fingerprint(config, plan, device)
    state = None if snapshot is None else _snapshot.load(snapshot, key)
    if state is not None:
        state = _snapshot.restore(state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                  batcher=batcher, device=device)
        step, resumed_at, earlier = state["step"], state["step"], state["elapsed"]
        warm = WarmStart(**state["warm"])
        checkpoints = [Checkpoint(**cp) for cp in state["checkpoints"]]
        losses, train_seconds, probe_seconds_total = state["losses"], state["train_seconds"], state["probe_seconds"]
        started = time.perf_counter() - earlier
    saved_at = time.perf_counter()

    def save() -> None:
        nonlocal saved_at
        _snapshot.save(snapshot, _snapshot.capture(
            key, step=step, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, batcher=batcher,
            warm=warm, checkpoints=checkpoints, losses=losses, train_seconds=train_seconds,
            probe_seconds=probe_seconds_total, elapsed=time.perf_counter() - started, device=device))
        saved_at = time.perf_counter()

    def checkpoint() -> Checkpoint:
        nonlocal warm, probe_seconds_total
        t0 = time.perf_counter()
        values, diag, error = {}, {}, None
        wanted = config.probe_names if plan is None else tuple(n for n in plan[step] if n in PROBE_NAMES)
        if wanted:
            try:
                with autocast(device, config.precision if config.probe_precision == "train" else "fp32"):
                    result = measure(model, _loss, probes, names=wanted, optimizer=optimizer,
                                     seed=config.probe_seed, warm_start=warm)
                values, diag, warm = dict(result), dict(result.diagnostics), result.warm_start
            except (RuntimeError, NotImplementedError) as exc:
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        probe_s = time.perf_counter() - t0
        probe_seconds_total += probe_s
        t1 = time.perf_counter()
        acc, dev_loss, dev_metric, dev_predictions = math.nan, math.nan, math.nan, ()
        if plan is None or any(n in DEV_METRICS for n in plan[step]):
            acc, dev_loss, dev_metric, dev_predictions = predict(
                model, tokenizer, task.dev, batch_size=config.eval_batch_size, max_length=config.max_length,
                id_map=id_map, metric=config.metric, device=device)
        eval_s = time.perf_counter() - t1
        step_s = train_seconds / step if step else math.nan
        cp = Checkpoint(
            step=step, probes=values, dev_accuracy=acc, dev_loss=dev_loss,
            train_loss=sum(losses) / len(losses) if losses else math.nan,
            probe_seconds=probe_s, eval_seconds=eval_s, train_step_seconds=step_s,
            compute_steps=compute_steps(step, probe_seconds_total, step_s) if step else math.nan,
            wall_seconds=time.perf_counter() - started,
            diagnostics=diag, probe_error=error, dev_metric=dev_metric, dev_predictions=dev_predictions)
        losses.clear()
        checkpoints.append(cp)
        return cp

    probe_steps = set(s for s in (config.probe_steps if plan is None else plan) if s <= config.max_steps)
    if plan is None:
        probe_steps.add(config.max_steps)  # the final checkpoint is always logged
    # A resumed run whose last checkpoint is at its step measured it before the stop.
    measured = checkpoints[-1].step if checkpoints else None
    model.train()
    while True:
        if step in probe_steps and step != measured:
            cp = checkpoint()
            if on_checkpoint is not None and on_checkpoint(cp):
                return TrainResult("stopped", step, cp.dev_accuracy, cp.dev_loss,
                                   _compute(step, train_seconds, probe_seconds_total), checkpoints,
                                   reason=f"stopped at step {step}",
                                   train_step_seconds=train_seconds / step if step else math.nan,
                                   final_metric=cp.dev_metric, device=device_name(device),
                                   resumed_at=resumed_at, earlier_seconds=earlier)
            if snapshot is not None and step < config.max_steps:
                save()
        if step >= config.max_steps:
            break
        t0 = time.perf_counter()
        batch = to_device(batcher.next(), device)
        with autocast(device, config.precision):
            loss = _loss(model, batch)
        if not torch.isfinite(loss):
            return _diverged(step, checkpoints, train_seconds, probe_seconds_total, f"non-finite loss at step {step}")
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            if not torch.isfinite(norm) and scaler is None:
                return _diverged(step, checkpoints, train_seconds, probe_seconds_total,
                                 f"non-finite gradient at step {step}")
        if scaler is not None:
            scaler.step(optimizer)  # skips the step on an inf/NaN gradient and lowers the scale
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        step += 1
        train_seconds += time.perf_counter() - t0
        if progress is not None:
            progress(step, config.max_steps)
        if snapshot is not None and step < config.max_steps and time.perf_counter() - saved_at >= snapshot_seconds:
            save()

    acc, dev_loss, dev_metric, test_acc, test_metric = _final_figures(
        config, task, model, tokenizer, id_map, device, checkpoints, step, evaluate_test)
    return TrainResult("completed", step, acc, dev_loss, _compute(step, train_seconds, probe_seconds_total),
                       checkpoints, train_step_seconds=train_seconds / step if step else math.nan,
                       final_metric=dev_metric, device=device_name(device),
                       final_test_accuracy=test_acc, final_test_metric=test_metric,
                       resumed_at=resumed_at, earlier_seconds=earlier)


def _set_up(config: TrainConfig, task: TaskData, evaluate_test: bool):
    """The run's tokenizer, model (on its device), vocabulary map, device, probe batches, gradient scaler, training
    batches, trainable parameters, optimizer and schedule, made in this order (the seeded draws depend on it)."""
    from transformers import get_scheduler

    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, task.num_labels, seed=config.seed, num_layers=config.num_layers,
                       hidden_dropout=config.hidden_dropout, classifier_dropout=config.classifier_dropout)
    id_map = None
    if config.prune_vocabulary:
        splits = (task.train, task.dev, task.test) if evaluate_test else (task.train, task.dev)
        texts = [t for rows in splits for r in rows for t in (r[0], r[1]) if t is not None]
        id_map = shrink_vocabulary(model, used_token_ids(tokenizer, texts, max_length=config.max_length))
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    device = resolve_device(config.device)
    model.to(device)
    probes = probe_set(config, task, tokenizer, id_map, device)
    scaler = grad_scaler(device, config.precision)
    torch.manual_seed(config.seed)
    batcher = Batcher(tokenizer, task.train, batch_size=config.batch_size, seed=config.seed,
                      max_length=config.max_length, group_by_length=config.group_by_length, id_map=id_map)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = int(round(config.warmup_ratio * config.max_steps))
    name = HF_SCHEDULER_NAMES[config.schedule]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=config.max_steps)

    return tokenizer, model, id_map, device, probes, scaler, batcher, params, optimizer, scheduler


def _final_figures(config: TrainConfig, task: TaskData, model, tokenizer, id_map, device,
                   checkpoints: list[Checkpoint], step: int, evaluate_test: bool):
    """Dev accuracy, loss and metric at the end (the last checkpoint's where it evaluated there), and the test
    split's accuracy and metric where asked for and present (NaN otherwise)."""
    last = checkpoints[-1] if checkpoints else None
    if last is not None and last.step == step and not math.isnan(last.dev_accuracy):
        acc, dev_loss, dev_metric = last.dev_accuracy, last.dev_loss, last.dev_metric
    else:
        acc, dev_loss, dev_metric = evaluate(model, tokenizer, task.dev, batch_size=config.eval_batch_size,
                                             max_length=config.max_length, id_map=id_map, metric=config.metric,
                                             device=device)
    test_acc, test_metric = math.nan, math.nan
    if evaluate_test and task.test:
        test_acc, _, test_metric = evaluate(model, tokenizer, task.test, batch_size=config.eval_batch_size,
                                            max_length=config.max_length, id_map=id_map, metric=config.metric,
                                            device=device)
    return acc, dev_loss, dev_metric, test_acc, test_metric


def _compute(steps: int, train_seconds: float, probe_seconds: float) -> float:
    """:func:`compute_steps` with the run's mean step time (probes alone count 0 steps if no step ran)."""
    return compute_steps(steps, probe_seconds, train_seconds / steps if steps else math.nan)


def _diverged(step, checkpoints, train_seconds, probe_seconds, reason) -> TrainResult:
    return TrainResult("diverged", step, math.nan, math.nan, _compute(step, train_seconds, probe_seconds),
                       checkpoints, reason=f"diverged: {reason}",
                       train_step_seconds=train_seconds / step if step else math.nan)
