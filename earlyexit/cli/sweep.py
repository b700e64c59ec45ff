"""`earlyexit sweep`: train every config of a spec to the end and log it."""

from __future__ import annotations

import argparse
import sys

from ._common import CLIUsageError


class SweepCommand:
    """Train every config of a spec to completion (no pruning) and log it: earlyexit sweep SPEC.toml"""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("spec", help="sweep spec (TOML): a grid, or study.n_trials sampled configs")
        p.add_argument("--out", default=None, help="sweep folder (default: studies/<study.name>/ next to the spec)")
        p.add_argument("--limit", type=int, default=None, help="train at most this many runs now")
        p.add_argument("--plan", action="store_true", help="list the runs and exit")
        p.add_argument("--threads", type=int, default=None,
                       help="torch threads (default: torch's); two 1-thread sweeps outrun one 2-thread sweep on 2 cores")
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: the spec's)")
        p.add_argument("--storage", default=None,
                       help="claim runs through this study storage (postgresql://..., sqlite:///..., journal:PATH) "
                            "so that workers on several machines log one sweep; each writes every run to its --out")

    def take_action(self, args) -> int:
        from pathlib import Path

        if args.threads is not None:
            if args.threads < 1:
                raise CLIUsageError(f"--threads must be at least 1, but got {args.threads}.")
            import torch

            torch.set_num_threads(args.threads)

        from ..study import load_spec, with_device
        from ..study import plan, run_sweep

        spec = with_device(load_spec(args.spec), args.device)
        if args.limit is not None and args.limit < 1:
            raise CLIUsageError(f"--limit must be at least 1, but got {args.limit}.")
        if args.plan:
            for run in plan(spec):
                print(run.run_id, run.config_id, run.params)
            return 0
        folder = Path(args.out) if args.out else Path(args.spec).parent / spec.name
        if args.storage is not None:
            from ..study import make_storage

            try:  # a bad URL fails here, in one line, before anything is trained
                make_storage(args.storage, heartbeat_seconds=spec.heartbeat_seconds)
            except ValueError as exc:
                raise CLIUsageError(str(exc)) from None
        run_sweep(spec, folder, limit=args.limit, command="earlyexit " + " ".join(sys.argv[1:]),
                  log=lambda m: print(m, flush=True), storage=args.storage)
        return 0
