"""`earlyexit sweeps`: list, validate, report and import logged sweeps."""

from __future__ import annotations

import argparse
import json


class SweepsCommand:
    """Logged sweeps: `sweeps list [PATHS]`, `sweeps validate PATH [--json]`, `sweeps report PATH`,
    `sweeps import-seed FILE --out DIR`."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True)
        v = sub.add_parser("validate", help="check a sweep folder and print its summary")
        v.add_argument("path")
        v.add_argument("--json", action="store_true", help="print one JSON object")
        v.add_argument("--require-complete", action="store_true", help="fail if planned runs are missing")
        v.add_argument("--allow-missing-probes", action="store_true",
                       help="pass a sweep whose promised probes hold a value on fewer than 95%% of its checkpoint "
                            "rows (by default that fails)")
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
        from ..sweeps import import_seed_results, load

        if args.action == "import-seed":
            n = import_seed_results(args.file, args.out, step=args.step, task=args.task, model=args.model)
            print(f"imported {n} runs into {args.out}")
            return 0
        if args.action == "list":
            from ..sweeps import catalogue, format_catalogue

            rows = catalogue(args.paths)
            print(json.dumps(rows) if args.json else format_catalogue(rows, markdown=args.markdown))
            return 0
        if args.action == "report":
            from ..sweeps import write_report

            out = write_report(load(args.path), args.output)
            print(f"wrote {out} and {out.with_name('correlations.png')}")
            return 0
        summary = load(args.path, require_complete=args.require_complete,
                       require_probes=not args.allow_missing_probes).summary()
        if args.json:
            print(json.dumps(summary))
            return 0
        print(f"{summary['path']}: valid sweep {summary['name']!r} ({summary['task']}, {summary['model']})")
        print(f"  runs {summary['runs']} of {summary['planned_runs']} planned ({summary['diverged']} diverged), "
              f"configs {summary['configs']}, seeds {summary['seeds']}")
        print(f"  checkpoints {summary['checkpoints']}")
        print(f"  probes {', '.join(summary['probes'])}")
        if summary["probe_coverage"]:
            print("  probe values logged: " + ", ".join(f"{p} {share:.0%}"
                                                       for p, share in summary["probe_coverage"].items()))
        costs = summary["probe_costs"]
        if costs is not None and costs["steps"] != costs["steps"]:  # NaN: a promised probe has no price there
            print("  probe costs: probe_costs.json prices only some promised probes; measure them again with "
                  "`earlyexit bench probes --spec SPEC --write`")
        elif costs is not None:
            print(f"  probe costs: {costs['steps']:.1f} training steps a checkpoint for every promised probe "
                  f"(probe_costs.json, measured on {costs['device'] or costs['machine']}, torch {costs['torch']})")
        elif summary["probes"]:
            print("  probe costs: none measured (no probe_costs.json): the replay charges policies that read probes "
                  "the log's wall-clock compute_steps; `earlyexit bench probes --spec SPEC --write` measures them")
        print(f"  final dev accuracy: median {summary['median_final']:.4f}, best {summary['best_final']:.4f}")
        return 0
