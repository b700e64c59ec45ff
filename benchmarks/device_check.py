"""Probes on a device against the CPU, on the same weights and batches: the check a GPU run must pass.

Builds a small BERT-style classifier from a config (random weights, nothing downloaded), takes a few optimizer
steps on the CPU, copies the model and optimizer state to ``--device``, and measures every probe on both with
the same seed. Each value must agree within ``--rtol`` (1e-4 in fp32), the Hessian trace within its reported
standard error (its random vectors are drawn on the CPU generator on both, so it should agree much closer), and
the critical sharpness within its bracket. Prints a table and writes JSON (device, date, torch version).

    python benchmarks/device_check.py --device cuda --out $OUT/device_check.json
    python benchmarks/device_check.py --device cpu          # the script itself, on a CPU-only machine

The other GPU checks are commands of the project (``benchmarks/gpu_check.sh`` runs them all in one call).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time

import torch


def _model(layers: int, hidden: int, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=512, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=4 * hidden, max_position_embeddings=64, num_labels=3)
    return BertForSequenceClassification(config)


def _batches(n: int, size: int = 8, length: int = 24, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(1, 512, (size, length), generator=g),
             "attention_mask": torch.ones(size, length, dtype=torch.long),
             "labels": torch.randint(0, 3, (size,), generator=g)} for _ in range(n)]


def _loss(model, batch):
    return model(**batch).loss


def _to(batches, device):
    return [{k: v.to(device) for k, v in b.items()} for b in batches]


def main() -> int:
    from earlyexit.names import PROBE_NAMES
    from earlyexit.probes import measure
    from earlyexit.stamp import today

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 on Ampere and later
    torch.backends.cudnn.allow_tf32 = False
    model = _model(args.layers, args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    probe, reference = _batches(3), _batches(1, seed=2)
    for b in _batches(4, seed=3):
        opt.zero_grad()
        _loss(model, b).backward()
        opt.step()
    other = copy.deepcopy(model).to(args.device)
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-3)
    other_opt.load_state_dict(opt.state_dict())  # moves the state to the parameters' device
    started = time.time()
    cpu = measure(model, _loss, probe, names=PROBE_NAMES, optimizer=opt, reference_batches=reference, seed=5)
    dev = measure(other, _loss, _to(probe, args.device), names=PROBE_NAMES, optimizer=other_opt,
                  reference_batches=_to(reference, args.device), seed=5)
    rows, ok = [], True
    for name in PROBE_NAMES:
        a, b = cpu[name], dev[name]
        tol = args.rtol * max(abs(a), 1e-12)
        if name == "hessian_trace":
            tol = max(tol, cpu.diagnostics.get("hessian_trace_stderr", 0.0))
        if name == "fisher_trace":
            tol = max(tol, cpu.diagnostics.get("fisher_trace_stderr", 0.0))
        if "critical" in name:
            tol = max(tol, 0.05 * abs(a))  # the critical step is found to a 3% bracket
        good = (math.isinf(a) and a == b) or abs(a - b) <= tol
        ok &= good
        rows.append({"probe": name, "cpu": a, "device": b, "tolerance": tol, "ok": good})
    print(f"{'probe':30s} {'cpu':>14s} {args.device:>14s} {'tolerance':>11s}  ok")
    for r in rows:
        print(f"{r['probe']:30s} {r['cpu']:14.6g} {r['device']:14.6g} {r['tolerance']:11.3g}  {r['ok']}")
    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else \
        platform.processor() or platform.machine()
    out = {"date": today(), "device": f"{args.device} {device_name}", "torch": torch.__version__,
           "layers": args.layers, "hidden": args.hidden, "rtol": args.rtol, "rows": rows, "all_ok": ok,
           "seconds": round(time.time() - started, 2)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
