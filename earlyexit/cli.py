"""The ``earlyexit`` command line: a thin layer over the library.

Each command is a small class with ``add_arguments(parser)`` and
``take_action(args) -> int``; its help is its docstring. A bad argument or
input prints one line and exits with status 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings


class CLIUsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


LIBRARY_ERRORS = (ValueError, OSError)
"""What the library raises for bad input (a spec, data, a sweep folder, a scorer file, a storage URL:
``SpecError``, ``DataError``, ``SweepFormatError``, ``ScorerFileError`` are ``ValueError``s; a file that
cannot be read is an ``OSError``): caught in one place, :func:`main`, reported like a usage error."""


def _data_source(args):
    """A DataSource from --task/--data/--text-columns/--label-column (a file stands for both splits)."""
    from pathlib import Path

    from .data import DataSource

    data = None if args.data == "hub" else args.data
    columns = tuple(args.text_columns) if args.text_columns else None
    if data is not None and Path(data).is_file():  # probes read the training split only
        return DataSource(task=args.task, train=data, dev=data, text_columns=columns, label_column=args.label_column)
    return DataSource(task=args.task, path=data, text_columns=columns, label_column=args.label_column)


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

        from .data import load_task
        from .training import collate
        from .training._device import device_name, resolve_device, to_device
        from .models import load_model, load_tokenizer
        from .probes import measure

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

        from .benchmarks.probe_cost import BenchConfig, format_table, run

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

        from .study import load_spec
        from .study._probe_costs import measure_probe_costs
        from .sweeps import format_costs, write_probe_costs

        spec = load_spec(args.spec)
        log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
        command = "earlyexit " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
        costs = measure_probe_costs(args.spec, until=args.until, command=command, progress=log, device=args.device)
        print(json.dumps(costs.to_dict(), default=_json_float) if args.json else "\n" + format_costs(costs))
        if args.write:
            folder = Path(args.out) if args.out else Path(args.spec).parent / spec.name
            log(f"wrote {write_probe_costs(folder, costs)}")
        return 0


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

        from .study import default_threads, load_spec, run_study, summary, trial_table, with_device

        if args.n_trials is not None and args.n_trials < 1:
            raise CLIUsageError(f"--n-trials must be at least 1, but got {args.n_trials}.")
        if args.n_jobs < 1:
            raise CLIUsageError(f"--n-jobs must be at least 1, but got {args.n_jobs}.")
        if args.threads is not None and args.threads < 1:
            raise CLIUsageError(f"--threads must be at least 1, but got {args.threads}.")
        spec = with_device(load_spec(args.spec), args.device)
        if args.devices is not None:
            return self._workers(args, spec)
        threads = args.threads or default_threads(args.n_jobs)
        import torch

        torch.set_num_threads(threads)
        if not args.json:
            print(f"{threads} torch thread(s) per trial, {args.n_jobs} trial(s) at a time", file=sys.stderr)
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
        from .study import default_threads
        from .study._workers import check_shared_storage, device_list, run_workers
        from .training._device import resolve_device

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

    def take_action(self, args) -> int:
        from pathlib import Path

        if args.threads is not None:
            if args.threads < 1:
                raise CLIUsageError(f"--threads must be at least 1, but got {args.threads}.")
            import torch

            torch.set_num_threads(args.threads)

        from .study import load_spec, with_device
        from .study import plan, run_sweep

        spec = with_device(load_spec(args.spec), args.device)
        if args.limit is not None and args.limit < 1:
            raise CLIUsageError(f"--limit must be at least 1, but got {args.limit}.")
        if args.plan:
            for run in plan(spec):
                print(run.run_id, run.config_id, run.params)
            return 0
        folder = Path(args.out) if args.out else Path(args.spec).parent / spec.name
        run_sweep(spec, folder, limit=args.limit, command="earlyexit " + " ".join(sys.argv[1:]),
                  log=lambda m: print(m, flush=True))
        return 0


class SweepsCommand:
    """Logged sweeps: `sweeps list [PATHS]`, `sweeps validate PATH [--json]`, `sweeps report PATH`,
    `sweeps import-seed FILE --out DIR`."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True)
        v = sub.add_parser("validate", help="check a sweep folder and print its summary")
        v.add_argument("path")
        v.add_argument("--json", action="store_true", help="print one JSON object")
        v.add_argument("--require-complete", action="store_true", help="fail if planned runs are missing")
        i = sub.add_parser("import-seed", help="convert the seed code's JSON results into a sweep folder")
        i.add_argument("file")
        i.add_argument("--out", required=True, help="new sweep folder")
        i.add_argument("--step", type=int, default=0, help="probe step of fields without one (default 0)")
        i.add_argument("--task", default="sst2")
        i.add_argument("--model", default="prajjwal1/bert-mini")
        c = sub.add_parser("list", help="the catalogue: one row per sweep in the folders or globs given")
        c.add_argument("paths", nargs="*", default=["studies"],
                       help="sweep folders, folders of sweeps, or globs (default: studies)")
        c.add_argument("--json", action="store_true", help="print a JSON list, one object per sweep")
        c.add_argument("--markdown", action="store_true", help="print the table as Markdown")
        r = sub.add_parser("report", help="write REPORT.md and correlations.png: probes vs final accuracy")
        r.add_argument("path")
        r.add_argument("-o", "--output", default=None, help="report file (default: PATH/REPORT.md)")

    def take_action(self, args) -> int:
        from .sweeps import import_seed_results, load

        if args.action == "import-seed":
            n = import_seed_results(args.file, args.out, step=args.step, task=args.task, model=args.model)
            print(f"imported {n} runs into {args.out}")
            return 0
        if args.action == "list":
            from .sweeps import catalogue, format_catalogue

            rows = catalogue(args.paths)
            print(json.dumps(rows) if args.json else format_catalogue(rows, markdown=args.markdown))
            return 0
        if args.action == "report":
            from .sweeps._report import write_report

            out = write_report(load(args.path), args.output)
            print(f"wrote {out} and {out.with_name('correlations.png')}")
            return 0
        summary = load(args.path, require_complete=args.require_complete).summary()
        if args.json:
            print(json.dumps(summary))
            return 0
        print(f"{summary['path']}: valid sweep {summary['name']!r} ({summary['task']}, {summary['model']})")
        print(f"  runs {summary['runs']} of {summary['planned_runs']} planned ({summary['diverged']} diverged), "
              f"configs {summary['configs']}, seeds {summary['seeds']}")
        print(f"  checkpoints {summary['checkpoints']}")
        print(f"  probes {', '.join(summary['probes'])}")
        print(f"  final dev accuracy: median {summary['median_final']:.4f}, best {summary['best_final']:.4f}")
        return 0


class ExportCommand:
    """Export a study's best hyperparameters: earlyexit export STUDY --format {json,yaml,hf,args,script}"""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("study", help="study name, its spec file (uses the spec's name and storage), "
                                     "or a sweep folder (exports the config a replay would choose)")
        p.add_argument("--storage", default=os.environ.get("EARLYEXIT_STORAGE"),
                       help="Optuna storage URL (default: the spec's, or $EARLYEXIT_STORAGE)")
        p.add_argument("--format", required=True, choices=["json", "yaml", "hf", "args", "script"])
        p.add_argument("--top", type=int, default=1, help="export the top K trials (json, yaml, args)")
        p.add_argument("-o", "--output", default=None, help="write to this file (default: stdout)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--scorer", default=None, help="sweep folder only: a fitted scorer file, or `default`")
        g.add_argument("--fit-on", nargs="+", default=None, help="sweep folder only: fit the scorer on these sweeps")
        p.add_argument("--prefix", type=int, default=100, help="sweep folder only: the decision step (default 100)")

    def take_action(self, args) -> int:
        from .export import chosen_configs, render
        from .scoring import load_scorer
        from .sweeps import find_sweeps, load

        if args.top > 1 and args.format in ("hf", "script"):
            raise CLIUsageError(f"--format {args.format} exports one config; drop --top or use json, yaml or args.")
        chosen = chosen_configs(args.study, storage=args.storage, top=args.top,
                                scorer=load_scorer(args.scorer) if args.scorer else None,
                                fit_on=[load(p) for p in find_sweeps(args.fit_on)] if args.fit_on else (),
                                prefix=args.prefix, progress=lambda m: print(m, file=sys.stderr))
        return self._write(args, render(chosen, args.format))

    @staticmethod
    def _write(args, text: str) -> int:
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0


class FitCommand:
    """Fit a scorer on logged sweeps: earlyexit fit SWEEP... -o scorer.joblib"""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("sweeps", nargs="+", help="sweep folders")
        p.add_argument("-o", "--output", default=None, help="scorer file to write")
        p.add_argument("--prefixes", type=int, nargs="+", default=None,
                       help="probe steps to fit a model for (default: every probe step after 0)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--probes", nargs="+", default=None,
                       help="fit on these probes only (default: every probe the sweeps share); a study then "
                            "needs to measure only these")
        g.add_argument("--no-hessian", action="store_true",
                       help="fit without the Hessian probes (about 4 training steps a checkpoint instead of "
                            "about 26 on the reference sweeps)")
        p.add_argument("--decision-step-only", action="store_true",
                       help="features from the decision (prefix) step alone, not every probe step up to it: a "
                            "study then probes and evaluates once per trial")
        p.add_argument("--all-features", action="store_true",
                       help="read every probe (and a dev evaluation) at every probe step up to each prefix; by "
                            "default, where the first sweep has probe_costs.json, each prefix reads the cheapest "
                            "feature set whose held-out regret is within 0.1 accuracy points of the best one's")
        p.add_argument("--keep-top", type=int, default=1,
                       help="the cost-aware choice's held-out regret keeps this many trials per study (default 1)")
        p.add_argument("--transfer", action="store_true",
                       help="fit a scorer for tasks the sweeps do not cover: scale-free features at decision "
                            "rungs, the features and the rule (rungs, keep top, learning-rate progress) chosen by "
                            "leave-one-task-out over the sweeps' tasks (at least two)")
        p.add_argument("--default", action="store_true",
                       help="the package's default scorer: --transfer, written into the package "
                            "(earlyexit/assets/default_scorer.json) with a card holding the nested "
                            "leave-one-task-out figures (needs sweeps of three tasks)")
        p.add_argument("--json", action="store_true", help="print the cross-validation report as JSON")

    def take_action(self, args) -> int:
        from .replay import fit_sweeps
        from .scoring import DEFAULT_SCORER, save_scorer
        from .sweeps import find_sweeps, load

        if args.default:
            args.transfer, args.output = True, args.output or str(DEFAULT_SCORER)
        if args.output is None:
            raise CLIUsageError("fit: give -o FILE (or --default).")
        sweeps = [load(p) for p in find_sweeps(args.sweeps)]
        log = (lambda m: print(m, file=sys.stderr)) if args.json else print
        if args.transfer:
            return self._transfer(sweeps, args, log)
        scorer = fit_sweeps(sweeps, probes=args.probes, no_hessian=args.no_hessian, prefixes=args.prefixes,
                            decision_step_only=args.decision_step_only, all_features=args.all_features,
                            keep_top=args.keep_top, progress=log)
        save_scorer(scorer, args.output)
        if args.json:
            print(json.dumps({"output": args.output, "report": {str(k): v for k, v in scorer.report.items()}},
                             default=str))
        else:
            print(f"wrote {args.output} (held-out Spearman of predicted and final accuracy, per prefix step above)")
        return 0

    @staticmethod
    def _transfer(sweeps, args, log) -> int:
        from .replay._transfer_rule import fit_transfer
        from .scoring import save_scorer

        scorer = fit_transfer(sweeps, progress=log, nested=args.default)
        save_scorer(scorer, args.output)
        rule = scorer.rule
        if args.json:
            print(json.dumps({"output": args.output, "card": scorer.card}))
        else:
            name = "default" if args.default else args.output
            print(f"wrote {args.output} ({rule.label}); in a study spec:\n[pruner]\nkind = \"geometric\"\n"
                  f"scorer = \"{name}\"\n# decision steps, keep-top, margin and guard come from the scorer's rule "
                  "(its rungs placed on the spec's probe steps in the study's budget) unless the spec sets them")
        return 0


class ReplayCommand:
    """Retro-simulate pruning policies over a logged sweep: compute saved against regret."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("sweep", nargs="+", help="sweep folder to replay (with --leave-one-task-out: sweep folders, "
                                                "folders of sweeps or globs, of at least two tasks)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--leave-one-task-out", action="store_true",
                       help="for each task, fit on the other tasks' sweeps and replay its sweeps; one table "
                            "per held-out sweep and aggregated (mean and worst), and a Pareto plot (--plot)")
        g.add_argument("--scorer", default=None, help="a fitted scorer file, or `default` (the package's)")
        g.add_argument("--fit-on", nargs="+", default=None, help="fit the scorer on these other sweeps")
        g.add_argument("--baselines-only", action="store_true",
                       help="no scorer: replay only prefix_accuracy, loss_only, Optuna's pruners, oracle and no "
                            "pruning, and the hyperparameters surrogate where there is something to fit it on "
                            "(for a sweep with too few seeds to fit a scorer on, yet)")
        p.add_argument("--orders", type=int, default=20, help="arrival orders per held-out seed (default 20)")
        p.add_argument("--prefix", type=int, default=100, help="decision step (default 100)")
        p.add_argument("--keep-top", type=int, default=1, help="configs kept at the decision step (default 1)")
        p.add_argument("--no-pareto", action="store_true", help="skip the aggressiveness sweep and plot")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--markdown", action="store_true", help="print the tables as Markdown (for a README)")
        p.add_argument("--plot", default=None, help="with --leave-one-task-out: the Pareto plot's file "
                                                    "(default: transfer_pareto.png beside the first sweep)")
        p.add_argument("--nested", action="store_true",
                       help="with --leave-one-task-out: the fair comparison only (every policy's setting chosen "
                            "on the other tasks: the resolution rule, the prefix rule, Optuna's pruners), in minutes")
        p.add_argument("--workers", type=int, default=1, help="with --nested: trials running at once (default 1)")
        p.add_argument("--trials", type=int, default=None,
                       help="with --nested: replay studies of this many configs drawn from each sweep seed "
                            "(sweeps with fewer are left out)")
        p.add_argument("--draws", type=int, default=5, help="with --trials: studies drawn per seed (default 5)")
        p.add_argument("--jobs", type=int, default=1, help="with --nested: processes (default 1)")
        p.add_argument("--policies", nargs="+", default=None,
                       help="with --nested: only these policies (default: all; see `earlyexit.replay._nested`)")

    def take_action(self, args) -> int:
        from pathlib import Path

        from .replay import format_replay, replay, save_figures
        from .scoring import load_scorer
        from .sweeps import find_sweeps, load

        if args.orders < 1 or args.keep_top < 1:
            raise CLIUsageError("--orders and --keep-top must be at least 1.")
        if args.nested and not args.leave_one_task_out:
            raise CLIUsageError("--nested goes with --leave-one-task-out.")
        if args.leave_one_task_out and args.nested:
            return self._nested(args)
        if args.leave_one_task_out:
            return self._transfer(args)
        if len(args.sweep) != 1:
            raise CLIUsageError("give one sweep folder to replay (several only with --leave-one-task-out).")
        args.sweep = args.sweep[0]
        sweep = load(args.sweep)
        scorer = load_scorer(args.scorer) if args.scorer else None
        fit_on = [load(p) for p in find_sweeps(args.fit_on)] if args.fit_on else []
        log = (lambda m: print(m, file=sys.stderr))
        result = replay(sweep, scorer=scorer, fit_on=fit_on, orders=args.orders, prefix=args.prefix,
                        keep_top=args.keep_top, pareto=not args.no_pareto,
                        baselines_only=args.baselines_only, progress=log)
        if not args.no_pareto:
            result.update(save_figures(result, sweep, Path(args.sweep)))
        if args.json:
            print(json.dumps(result))
            return 0
        print(format_replay(result, markdown=args.markdown))
        return 0

    @staticmethod
    def _nested(args) -> int:
        from pathlib import Path

        from .replay._nested import compare, format_nested, plot_nested
        from .sweeps import find_sweeps, load

        if args.workers < 1 or args.jobs < 1 or (args.trials is not None and args.trials < 2) or args.draws < 1:
            raise CLIUsageError("--workers, --jobs and --draws must be at least 1, --trials at least 2.")
        from .replay._nested import POLICIES

        unknown = sorted(set(args.policies or ()) - set(POLICIES))
        if unknown:
            raise CLIUsageError(f"unknown policies {unknown}; choose from {list(POLICIES)}.")
        result = compare([load(f) for f in find_sweeps(args.sweep)], tuple(args.policies or POLICIES),
                         orders=args.orders, workers=args.workers,
                         trials=args.trials, draws=args.draws, jobs=args.jobs,
                         progress=lambda m: print(m, file=sys.stderr))
        if args.plot:
            plot_nested(result, Path(args.plot))
            result["plot"] = args.plot
        print(json.dumps(result) if args.json else format_nested(result, markdown=args.markdown))
        return 0

    @staticmethod
    def _transfer(args) -> int:
        from pathlib import Path

        from .replay import format_transfer, leave_one_task_out, plot_transfer
        from .sweeps import find_sweeps, load

        folders = find_sweeps(args.sweep)
        result = leave_one_task_out([load(f) for f in folders], orders=args.orders, prefix=args.prefix,
                                    keep_top=args.keep_top, progress=lambda m: print(m, file=sys.stderr))
        png = Path(args.plot) if args.plot else folders[0].parent / "transfer_pareto.png"
        plot_transfer(result, png)
        result["plot"] = str(png)
        print(json.dumps(result) if args.json else format_transfer(result, markdown=args.markdown)
              + f"\nPareto plot: {png}")
        return 0


class ScorerCommand:
    """Fitted scorers: `scorer info [FILE]` prints a scorer's card (default: the package's default scorer)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True)
        i = sub.add_parser("info", help="what a scorer reads, its rule, what it learnt from, and its figures")
        i.add_argument("file", nargs="?", default="default", help="a scorer file, or `default` (the default)")
        i.add_argument("--json", action="store_true", help="print the card as JSON")

    def take_action(self, args) -> int:
        from .scoring import DEFAULT_SCORER, TransferScorer, load_scorer

        scorer = load_scorer(args.file)
        where = DEFAULT_SCORER if args.file == "default" else args.file
        if not isinstance(scorer, TransferScorer):
            info = {"file": str(where), "kind": type(scorer).__name__, "reads": list(scorer.names),
                    "prefixes": sorted(scorer.schemas), "versions": scorer.versions}
            print(json.dumps(info, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
            return 0
        card = {"file": str(where), "kind": "transfer", "reads": list(scorer.names), **scorer.card}
        if args.json:
            print(json.dumps(card, indent=1))
            return 0
        print(format_card(card, scorer))
        return 0


def format_card(card: dict, scorer) -> str:
    """A transfer scorer's card in words."""
    rule = scorer.rule
    lines = [f"scorer: {card['file']}",
             f"reads at each rung: {', '.join(scorer.names)} (and, free: learning-rate progress, uniform loss, budget)",
             f"rule: {rule.label}",
             *([f"margins (metric units, per rung): " + ", ".join(
                 f"{r:.0%}: {m:.4f}" if rule.unit == "budget" else f"{r}: {m:.4f}"
                 for r, m in sorted(scorer.margins_.items()))] if scorer.margins_ else []),
             "learnt from: " + ", ".join(f"{n} ({v['task']}, {v['metric']}, {v['runs']} runs)"
                                         for n, v in card.get("sweeps", {}).items())]
    nested = card.get("nested_leave_one_task_out")
    if nested:
        lines.append(f"leave-one-task-out (the choice remade without each task"
                     + (f"; replayed {nested['replayed']}" if "replayed" in nested else "")
                     + f"): {nested['mean_compute_saved']:.1%} compute saved, mean regret "
                     f"{nested['mean_regret_points']:.2f} points, worst {nested['worst_regret_points']:.2f}"
                     + (f"; the same rules with perfect scores would save {nested['mean_rule_ceiling']:.1%}"
                        if "mean_rule_ceiling" in nested else ""))
        for name, f in nested["held_out"].items():
            lines.append(f"  {name}: {f['compute_saved']:.1%} saved, regret {f['regret_points']:.2f} points")
    loto = card.get("leave_one_task_out")
    if loto:
        lines.append(f"on the tasks it was chosen on: {loto['mean_compute_saved']:.1%} saved, mean regret "
                     f"{loto['mean_regret_points']:.2f} points, worst {loto['worst_regret_points']:.2f}")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items()))
    return "\n".join(lines)


_COMMANDS = {
    "fit": FitCommand(),
    "scorer": ScorerCommand(),
    "replay": ReplayCommand(),
    "export": ExportCommand(),
    "sweeps": SweepsCommand(),
    "sweep": SweepCommand(),
    "run": RunCommand(),
    "probe": ProbeCommand(),
    "bench": BenchCommand(),
}


def _json_float(x):
    """JSON fallback: tensors and other objects as their string form."""
    return str(x)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earlyexit", description=__import__("earlyexit").__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"earlyexit {__import__('earlyexit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in _COMMANDS.items():
        p = sub.add_parser(name, help=command.__doc__.splitlines()[0], description=command.__doc__)
        command.add_arguments(p)
        p.set_defaults(_command=command, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # Optuna marks the heartbeat, retry and Wilcoxon APIs we rely on as experimental, once per use;
        # that is for library authors, not for someone reading a study's progress.
        warnings.filterwarnings("ignore", message=r".*(is experimental|an experimental feature)")
    try:
        return args._command.take_action(args)
    except (CLIUsageError, *LIBRARY_ERRORS) as exc:
        if args.debug:
            raise
        print(f"earlyexit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
