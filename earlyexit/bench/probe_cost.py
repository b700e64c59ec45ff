"""``earlyexit bench probes``: what the probes cost, in training steps, and how right they are.

On a BERT-mini-shaped classifier (random weights), it times one AdamW
training step, then each probe on its own and the whole probe set, for
:func:`earlyexit.probes.measure` and for the seed-style reference, in the
same process. Costs are ratios to the training step. Accuracy: the top
eigenvalue against power iteration run to a relative change below 1e-4, and
the trace error of both estimators against a many-vector estimate, over
several seeds.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..names import DEFAULT_PROBES
from ..probes import (ProbeSettings, deflated_hutchinson, lanczos, measure, measure_reference, power_iteration,
                      probing)

BENCH_PROBES = DEFAULT_PROBES


@dataclass(frozen=True)
class BenchConfig:
    """Shape of the benchmark model and data.

    Attributes:
        layers, hidden, heads, intermediate, vocab: the BERT shape.
        batch, seq_len: one training batch, in sequences and tokens.
        probe_batches: the probe set is one training batch's examples split
            into this many batches (for the gradient variance).
        warm_steps: training steps between the cold and the warm checkpoint.
        repeats: timing repeats (the median is reported).
        trace_seeds: seeds for the trace-accuracy comparison.
        device: where the model and batches live (see ``earlyexit.training``'s devices).
    """

    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    vocab: int = 30522
    batch: int = 32
    seq_len: int = 64
    probe_batches: int = 4
    warm_steps: int = 10
    repeats: int = 3
    trace_seeds: int = 5
    accuracy: bool = True
    device: str = "cpu"


def _model(cfg: BenchConfig) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=cfg.vocab, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate, num_labels=2)
    return BertForSequenceClassification(config)


def _loss_fn(model, batch):
    ids, labels = batch
    return model(input_ids=ids, labels=labels).loss


def run(cfg: BenchConfig = BenchConfig(), settings: ProbeSettings | None = None, progress=print) -> dict:
    """Run the benchmark and return every figure as a JSON-ready dict."""
    from ..training import device_name, resolve_device

    settings = settings or ProbeSettings()
    device = resolve_device(cfg.device)
    gen = torch.Generator().manual_seed(1)
    model = _model(cfg).to(device)
    ids = torch.randint(1000, cfg.vocab, (cfg.batch, cfg.seq_len), generator=gen).to(device)
    labels = torch.randint(0, 2, (cfg.batch,), generator=gen).to(device)
    size = cfg.batch // cfg.probe_batches
    probe = [(ids[i:i + size], labels[i:i + size]) for i in range(0, cfg.batch, size)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def train_step():
        # Fresh random batches, as in a run: training on the probe batch
        # itself would memorise it within the warm steps.
        model.train()
        batch = (torch.randint(1000, cfg.vocab, (cfg.batch, cfg.seq_len), generator=gen).to(device),
                 torch.randint(0, 2, (cfg.batch,), generator=gen).to(device))
        loss = _loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the step's time, not its launch

    for _ in range(2):
        train_step()
    # The cold checkpoint: a run's first probe, no warm start.
    step_s = _median_time(train_step, cfg.repeats + 2)
    progress(f"training step: {step_s:.3f} s")
    cold = measure(model, _loss_fn, probe, optimizer=optimizer, settings=settings)
    cold_s = cold.diagnostics["seconds"]
    for _ in range(cfg.warm_steps):
        train_step()
    step_s = statistics.median([step_s, _median_time(train_step, cfg.repeats)])

    # The warm checkpoint: warm-started from the cold one, as in a run.
    warm_times, warm = [], None
    for _ in range(cfg.repeats):
        warm = measure(model, _loss_fn, probe, optimizer=optimizer, settings=settings, warm_start=cold.warm_start)
        warm_times.append(warm.diagnostics["seconds"])
    warm_s = statistics.median(warm_times)
    progress(f"ours, whole set: cold {cold_s / step_s:.1f} steps, warm {warm_s / step_s:.1f} steps")

    per_probe = {}
    for name in BENCH_PROBES:
        t = [measure(model, _loss_fn, probe, names=[name], optimizer=optimizer, settings=settings,
                     warm_start=cold.warm_start).diagnostics["seconds"] for _ in range(cfg.repeats)]
        per_probe[name] = statistics.median(t) / step_s
    ref = measure_reference(model, _loss_fn, probe, names=BENCH_PROBES)
    ref_steps = {n: ref[n + "_seconds"] / step_s for n in BENCH_PROBES}
    ref_total = sum(ref_steps.values())
    progress(f"reference, whole set: {ref_total:.1f} steps")

    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": {k: getattr(cfg, k) for k in ("layers", "hidden", "batch", "seq_len", "probe_batches")},
        "train_step_s": step_s,
        "ours_steps": warm_s / step_s,
        "ours_cold_steps": cold_s / step_s,
        "reference_steps": ref_total,
        "ours_probe_steps": per_probe,
        "reference_probe_steps": ref_steps,
        "ours_hessian_vector_products": warm.diagnostics["hessian_vector_products"],
        "ours_forward_passes": warm.diagnostics["forward_passes"],
        "critical_sharpness_forward_passes": warm.diagnostics.get("critical_sharpness_forward_passes"),
        "values": {"ours": dict(warm), "reference": {n: ref[n] for n in BENCH_PROBES}},
    }
    if cfg.accuracy:
        result["accuracy"] = _accuracy(model, probe, optimizer, settings, cold.warm_start, cfg, progress)
    return result


def _accuracy(model, probe, optimizer, settings, warm_start, cfg, progress) -> dict:
    """Eigenvalue and trace accuracy of ours and of the seed-style estimates."""
    with probing(model, _loss_fn, probe) as objective:
        _, _, hvp = objective.gradients_and_hvp()
        where = {"dtype": objective.theta.dtype, "device": objective.theta.device}
        gen = torch.Generator().manual_seed(123)
        converged, used = power_iteration(hvp, objective.dim, gen, rtol=1e-4, max_iterations=300,
                                          device=where["device"])
        progress(f"power iteration converged to {converged:.5g} in {used} products")
        # Many-vector trace: Hutch++ with a 30-vector Krylov basis and 100 vectors on its complement.
        start = torch.randn(objective.dim, generator=gen, device=gen.device).to(**where)
        big = lanczos(hvp, start, max_iter=30, rtol=1e-8)
        many = deflated_hutchinson(hvp, big.basis, float(torch.trace(big.tridiagonal)), dim=objective.dim,
                                   vectors=100, generator=gen, **where)
        progress(f"many-vector trace {many.value:.5g} +- {many.stderr:.2g}")
        seed_style = []
        for seed in range(cfg.trace_seeds):
            g = torch.Generator().manual_seed(1000 + seed)
            plain = deflated_hutchinson(hvp, None, 0.0, dim=objective.dim, vectors=10, generator=g, **where)
            seed_style.append(plain.value)
        seed_eig = power_iteration(hvp, objective.dim, torch.Generator().manual_seed(7), iterations=20,
                                   device=where["device"])[0]
    ours = []
    ours_eig = []
    for seed in range(cfg.trace_seeds):
        r = measure(model, _loss_fn, probe, names=["hessian_top_eigenvalue", "hessian_trace"],
                    optimizer=optimizer, settings=settings, seed=seed, warm_start=warm_start)
        ours.append(r["hessian_trace"])
        ours_eig.append(r["hessian_top_eigenvalue"])

    def rms(xs):
        return statistics.fmean([(x - many.value) ** 2 for x in xs]) ** 0.5

    return {
        "top_eigenvalue_converged": converged,
        "top_eigenvalue_ours": ours_eig,
        "top_eigenvalue_ours_max_rel_error": max(abs(e - converged) / abs(converged) for e in ours_eig),
        "top_eigenvalue_reference": seed_eig,
        "top_eigenvalue_reference_rel_error": abs(seed_eig - converged) / abs(converged),
        "trace_many_vectors": many.value,
        "trace_many_vectors_stderr": many.stderr,
        "trace_ours": ours,
        "trace_reference": seed_style,
        "trace_ours_rms_error": rms(ours),
        "trace_reference_rms_error": rms(seed_style),
    }


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def format_table(result: dict) -> str:
    """The benchmark as a plain-text table."""
    lines = [
        f"machine: {result['machine']}, torch {result['torch']}, {result['threads']} threads; shape {result['shape']}",
        f"one training step (AdamW, clip 1.0, batch {result['shape']['batch']}): {result['train_step_s']:.3f} s",
        "",
        f"{'probe':<26}{'ours (steps)':>14}{'seed-style (steps)':>20}",
    ]
    for name in BENCH_PROBES:
        lines.append(f"{name:<26}{result['ours_probe_steps'][name]:>14.2f}{result['reference_probe_steps'][name]:>20.2f}")
    lines.append(f"{'whole set, warm checkpoint':<26}{result['ours_steps']:>14.2f}{result['reference_steps']:>20.2f}")
    lines.append(f"{'whole set, cold checkpoint':<26}{result['ours_cold_steps']:>14.2f}{'':>20}")
    lines.append(f"ours: {result['ours_hessian_vector_products']:.0f} Hessian-vector products, "
                 f"{result['ours_forward_passes']:.0f} extra forward passes "
                 f"({result['critical_sharpness_forward_passes']} for critical sharpness)")
    acc = result.get("accuracy")
    if acc:
        lines += [
            "",
            f"top eigenvalue: converged {acc['top_eigenvalue_converged']:.5g}; ours max rel. error "
            f"{acc['top_eigenvalue_ours_max_rel_error']:.2%}; seed-style (20 power its) "
            f"{acc['top_eigenvalue_reference_rel_error']:.2%}",
            f"trace: many-vector {acc['trace_many_vectors']:.5g} (+- {acc['trace_many_vectors_stderr']:.2g}); "
            f"rms error ours {acc['trace_ours_rms_error']:.4g}, seed-style (10 Hutchinson) "
            f"{acc['trace_reference_rms_error']:.4g} over {len(acc['trace_ours'])} seeds",
        ]
    return "\n".join(lines)
