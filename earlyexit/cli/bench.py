"""`earlyexit bench`: time the probes against a training step."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CLIUsageError, _json_float


class BenchCommand:
    """Benchmarks: `earlyexit bench probes` times the probes against a seed-style reference."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("what", choices=["probes"], help="what to benchmark")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--quick", action="store_true",
                       help="a 1-layer, 16-token shape with one repeat and no accuracy check (for smoke tests)")
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
        p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N or mps; with --spec: the spec's")
        p.add_argument("--spec", default=None,
                       help="instead: measure each probe part's cost in training steps on this sweep spec's own "
                            "model and data (what the replay charges)")
        p.add_argument("--write", action="store_true",
                       help="with --spec: save the costs as probe_costs.json in the spec's sweep folder")
        p.add_argument("--out", default=None, help="with --write: the sweep folder (default: studies/<study.name>/)")
        p.add_argument("--until", type=int, default=100,
                       help="with --spec: train to this step, measuring at the spec's probe steps up to it "
                            "(the first, cold, is not counted)")

    def take_action(self, args) -> int:
        import torch

        from ..bench.probe_cost import BenchConfig, format_table, run

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.spec is not None:
            return self._spec_costs(args)
        if args.write:
            raise CLIUsageError("--write needs --spec (the sweep whose probe costs to save).")
        import dataclasses

        cfg = BenchConfig()
        if args.quick:
            cfg = BenchConfig(layers=1, hidden=64, heads=2, intermediate=128, vocab=2000, seq_len=16,
                              repeats=1, warm_steps=2, trace_seeds=2, accuracy=False)
        if args.device is not None:
            cfg = dataclasses.replace(cfg, device=args.device)
        log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
        result = run(cfg, progress=log)
        print(json.dumps(result, default=_json_float) if args.json else "\n" + format_table(result))
        return 0

    def _spec_costs(self, args) -> int:
        from pathlib import Path

        from ..study import load_spec
        from ..study import measure_probe_costs
        from ..sweeps import format_costs, write_probe_costs

        spec = load_spec(args.spec)
        log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
        command = "earlyexit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
        costs = measure_probe_costs(args.spec, until=args.until, command=command, progress=log, device=args.device)
        print(json.dumps(costs.to_dict(), default=_json_float) if args.json else "\n" + format_costs(costs))
        if args.write:
            folder = Path(args.out) if args.out else Path(args.spec).parent / spec.name
            log(f"wrote {write_probe_costs(folder, costs)}")
        return 0
