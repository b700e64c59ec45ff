"""`earlyexit probe`: measure the probes of a model at a point."""

from __future__ import annotations

import argparse
import json

from ._common import CLIUsageError, _data_source, _json_float


class ProbeCommand:
    """Measure every probe once on a model and a few batches of a task."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default="earlyexit:tiny-bert",
                       help="hub name, local folder, or earlyexit:tiny-bert (default; offline)")
        p.add_argument("--layers", type=int, default=None, help="keep only the first N encoder layers")
        p.add_argument("--task", default="sst2", help="task name; a GLUE name fills in the text columns (default sst2)")
        p.add_argument("--data", default="earlyexit:sst2-2k",
                       help="data folder or a training file (.tsv, .csv, .jsonl, .parquet), or 'hub' for "
                            "load_dataset('glue', task) (default: bundled SST-2 subset)")
        p.add_argument("--text-columns", nargs="+", default=None, help="one or two text columns of your data")
        p.add_argument("--label-column", default="label", help="the label column of your data (default label)")
        p.add_argument("--batches", type=int, default=4, help="number of probe batches (default 4)")
        p.add_argument("--batch-size", type=int, default=8, help="examples per probe batch (default 8)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--names", nargs="+", default=None, help="probes to measure (default all)")
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    def take_action(self, args) -> int:
        import torch

        from ..data import load_task
        from ..training import collate
        from ..training import device_name, resolve_device, to_device
        from ..models import load_model, load_tokenizer
        from ..probes import measure

        if args.batches < 1 or args.batch_size < 1:
            raise CLIUsageError("--batches and --batch-size must be at least 1.")
        task = load_task(_data_source(args))
        tokenizer = load_tokenizer(args.model)
        device = resolve_device(args.device)
        model = load_model(args.model, task.num_labels, seed=args.seed, num_layers=args.layers).to(device)
        gen = torch.Generator().manual_seed(args.seed)
        need = args.batches * args.batch_size
        if need > len(task.train):
            raise CLIUsageError(f"asked for {need} probe examples but the task has {len(task.train)}.")
        idx = torch.randperm(len(task.train), generator=gen)[:need].tolist()
        rows = [task.train[i] for i in idx]
        batches = [to_device(collate(tokenizer, rows[k:k + args.batch_size], 128), device)
                   for k in range(0, need, args.batch_size)]
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        result = measure(model, lambda m, b: m(**b).loss, batches, names=args.names,
                         optimizer=optimizer, seed=args.seed)
        if args.json:
            print(json.dumps({"model": args.model, "task": args.task, "device": device_name(device), "probes": dict(result),
                              "diagnostics": result.diagnostics}, default=_json_float))
            return 0
        print(f"model {args.model}, task {args.task} ({task.source}), {args.batches} batches of {args.batch_size}")
        for name, value in result.items():
            print(f"  {name:<28}{value:>14.6g}")
        d = result.diagnostics
        print(f"  ({d['hessian_vector_products']:.0f} Hessian-vector products, "
              f"{d['forward_passes']:.0f} extra forward passes, {d['seconds']:.2f} s)")
        return 0
