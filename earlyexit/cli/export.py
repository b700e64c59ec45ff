"""`earlyexit export`: write the winning hyperparameters for a training script."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import CLIUsageError


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
        p.add_argument("--allow-pickle", action="store_true",
                        help="load a scorer saved as a pickle (.joblib): this runs any code in the file, so only "
                             "for a file you made or trust")
        g.add_argument("--fit-on", nargs="+", default=None, help="sweep folder only: fit the scorer on these sweeps")
        p.add_argument("--prefix", type=int, default=100, help="sweep folder only: the decision step (default 100)")

    def take_action(self, args) -> int:
        from ..export import chosen_configs, render
        from ..scoring import load_scorer
        from ..sweeps import find_sweeps, load

        if args.top > 1 and args.format in ("hf", "script"):
            raise CLIUsageError(f"--format {args.format} exports one config; drop --top or use json, yaml or args.")
        chosen = chosen_configs(args.study, storage=args.storage, top=args.top,
                                scorer=load_scorer(args.scorer, allow_pickle=args.allow_pickle) if args.scorer else None,
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
