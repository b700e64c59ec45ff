"""`earlyexit run`: run a pruned study from a spec."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._common import CLIUsageError


class RunCommand:
    """Run (or continue) a pruned study from a TOML spec: earlyexit run studies/quickstart.toml"""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("spec", help="study spec (TOML)")
        p.add_argument("--storage", default=os.environ.get("EARLYEXIT_STORAGE"),
                       help="Optuna storage URL (default: the spec's, or $EARLYEXIT_STORAGE); "
                            "postgresql://... for several workers")
        p.add_argument("--study-name", default=None, help="default: the spec's study.name")
        p.add_argument("--n-trials", type=int, default=None, help="finished trials to reach (default: the spec's)")
        p.add_argument("--n-jobs", type=int, default=1, help="parallel trials in this process")
        p.add_argument("--threads", type=int, default=None,
                       help="torch threads per trial (default: the cores not busy now, shared among --n-jobs; "
                            "oversubscribed threads spin and slow everything)")
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: the spec's "
                                                      "train.device, else auto)")
        p.add_argument("--devices", default=None,
                       help="one worker process per device on the same study, e.g. 0,1,2,3 (CUDA indices); needs "
                            "a storage for several writers (journal:PATH, postgresql://...)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    def take_action(self, args) -> int:
        import optuna

        from ..study import default_threads, load_spec, run_study, summary, trial_table, with_device

        if args.n_trials is not None and args.n_trials < 1:
            raise CLIUsageError(f"--n-trials must be at least 1, but got {args.n_trials}.")
        if args.n_jobs < 1:
            raise CLIUsageError(f"--n-jobs must be at least 1, but got {args.n_jobs}.")
        if args.threads is not None and args.threads < 1:
            raise CLIUsageError(f"--threads must be at least 1, but got {args.threads}.")
        spec = with_device(load_spec(args.spec), args.device)
        if args.devices is not None:
            return self._workers(args, spec)
        synchronous = spec.pruner.mode == "synchronous"  # every trial of the study at once (its cohort)
        at_once = (args.n_trials or spec.n_trials) if synchronous else args.n_jobs
        threads = args.threads or default_threads(at_once)
        import torch

        torch.set_num_threads(threads)
        if not args.json:
            print(f"{threads} torch thread(s) per trial, {at_once} trial(s) at a time"
                  + (" (synchronous: judged together at each rung)" if synchronous else ""), file=sys.stderr)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = run_study(spec, storage=args.storage, study_name=args.study_name, n_trials=args.n_trials,
                          n_jobs=args.n_jobs, show_progress=not args.no_progress)
        result = summary(study)
        if args.json:
            print(json.dumps(result))
            return 0
        print(trial_table(study))
        saved = (f" against {result['full_training_steps']:.0f} to train every finished trial to the end: pruning "
                 f"saved {result['compute_saved']:.1%}" if "compute_saved" in result else "")
        print(f"\n{result['complete']} complete, {result['pruned']} pruned, {result['failed']} failed; "
              f"{result['compute_steps']:.0f} training-step equivalents in all (probes included){saved}")
        if "best" in result:
            best = result["best"]
            shown = f"dev {best['metric']} {best['value']:.4f}" + (
                f" (dev accuracy {best['final_accuracy']:.4f})" if best["metric"] != "accuracy" else "")
            print(f"best: trial {best['trial']}, {shown}")
            for k, v in best["params"].items():
                print(f"  {k} = {v}")
        return 0


    @staticmethod
    def _workers(args, spec) -> int:
        from ..study import default_threads
        from ..study import check_shared_storage, device_list, run_workers
        from ..training import resolve_device

        devices = device_list(args.devices)
        for d in devices:
            resolve_device(d)  # every device is there before any worker starts
        storage = args.storage or spec.storage
        check_shared_storage(storage, len(devices))
        extra = [*(["--n-trials", str(args.n_trials)] if args.n_trials else []),
                 *(["--study-name", args.study_name] if args.study_name else [])]
        threads = args.threads or default_threads(len(devices))
        print(f"{len(devices)} workers ({', '.join(devices)}), {threads} torch thread(s) each, on {storage}",
              file=sys.stderr)
        return run_workers(args.spec, devices, storage=storage, threads=threads, extra=extra,
                           log=lambda m: print(m, flush=True))
