"""`earlyexit replay`: replay pruning policies over logged sweeps."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CLIUsageError


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
        p.add_argument("--allow-pickle", action="store_true",
                        help="load a scorer saved as a pickle (.joblib): this runs any code in the file, so only "
                             "for a file you made or trust")
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
        p.add_argument("--trials", type=int, nargs="+", default=None,
                       help="with --nested: replay studies of this many configs drawn from each sweep seed (sweeps "
                            "with fewer are left out); with one SWEEP and --choices: the study sizes to replay")
        p.add_argument("--choices", default=None,
                       help="with one SWEEP and --trials: a --nested run's JSON; each policy's setting is chosen "
                            "there on the sweeps of other tasks")
        p.add_argument("--draws", type=int, default=5, help="with --trials: studies drawn per seed (default 5)")
        p.add_argument("--jobs", type=int, default=1, help="with --nested: processes (default 1)")
        p.add_argument("--policies", nargs="+", default=None,
                       help="with --nested: only these policies (default: all; see `earlyexit.replay._nested`)")

    def take_action(self, args) -> int:
        from pathlib import Path

        from ..replay import format_replay, replay, save_figures
        from ..scoring import load_scorer
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        if args.orders < 1 or args.keep_top < 1:
            raise CLIUsageError("--orders and --keep-top must be at least 1.")
        if args.nested and not args.leave_one_task_out:
            raise CLIUsageError("--nested goes with --leave-one-task-out.")
        if args.leave_one_task_out and args.nested:
            return self._nested(args)
        if args.trials is not None and not args.leave_one_task_out:
            return self._study_size(args)
        if args.leave_one_task_out:
            return self._transfer(args)
        if len(args.sweep) != 1:
            raise CLIUsageError("give one sweep folder to replay (several only with --leave-one-task-out).")
        args.sweep = args.sweep[0]
        sweep = load_one_budget(args.sweep)
        scorer = load_scorer(args.scorer, allow_pickle=args.allow_pickle) if args.scorer else None
        fit_on = [load_one_budget(p) for p in find_sweeps(args.fit_on)] if args.fit_on else []
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

        from ..replay import compare
        from ..replay import format_nested, plot_nested
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        if args.workers < 1 or args.jobs < 1 or args.draws < 1:
            raise CLIUsageError("--workers, --jobs and --draws must be at least 1.")
        if args.trials is not None and (len(args.trials) != 1 or args.trials[0] < 2):
            raise CLIUsageError("with --nested, --trials takes one study size of at least 2.")
        from ..replay import NESTED_POLICIES as POLICIES

        unknown = sorted(set(args.policies or ()) - set(POLICIES))
        if unknown:
            raise CLIUsageError(f"unknown policies {unknown}; choose from {list(POLICIES)}.")
        result = compare([load_one_budget(f) for f in find_sweeps(args.sweep)],
                         tuple(args.policies or POLICIES),
                         orders=args.orders, workers=args.workers,
                         trials=args.trials[0] if args.trials else None, draws=args.draws, jobs=args.jobs,
                         progress=lambda m: print(m, file=sys.stderr))
        if args.plot:
            plot_nested(result, Path(args.plot))
            result["plot"] = args.plot
        print(json.dumps(result) if args.json else format_nested(result, markdown=args.markdown))
        return 0

    @staticmethod
    def _study_size(args) -> int:
        from pathlib import Path

        from ..replay import study_size
        from ..replay import format_study_size, plot_study_size
        from ._common import load_one_budget

        if len(args.sweep) != 1 or not args.choices:
            raise CLIUsageError("--trials without --leave-one-task-out replays one SWEEP and needs --choices "
                                "(a --nested run's JSON, where each policy's setting is chosen).")
        if any(n < 2 for n in args.trials) or args.workers < 1 or args.jobs < 1 or args.draws < 1:
            raise CLIUsageError("--trials must be at least 2; --workers, --jobs and --draws at least 1.")
        try:
            chosen_from = json.loads(Path(args.choices).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CLIUsageError(f"--choices {args.choices}: not a readable JSON file ({exc}).") from None
        if "candidates" not in chosen_from:
            raise CLIUsageError(f"--choices {args.choices}: no 'candidates'; give the JSON of a --nested run.")
        from ..replay import NESTED_POLICIES as POLICIES

        result = study_size(load_one_budget(args.sweep[0]), args.trials, chosen_from, tuple(args.policies or POLICIES),
                            orders=args.orders, workers=args.workers,
                            draws=args.draws, jobs=args.jobs, progress=lambda m: print(m, file=sys.stderr))
        if args.plot:
            plot_study_size([result], Path(args.plot))
            result["plot"] = args.plot
        print(json.dumps(result) if args.json else format_study_size(result))
        return 0

    @staticmethod
    def _transfer(args) -> int:
        from pathlib import Path

        from ..replay import format_transfer, leave_one_task_out, plot_transfer
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        folders = find_sweeps(args.sweep)
        result = leave_one_task_out([load_one_budget(f) for f in folders], orders=args.orders, prefix=args.prefix,
                                    keep_top=args.keep_top, progress=lambda m: print(m, file=sys.stderr))
        png = Path(args.plot) if args.plot else folders[0].parent / "transfer_pareto.png"
        plot_transfer(result, png)
        result["plot"] = str(png)
        print(json.dumps(result) if args.json else format_transfer(result, markdown=args.markdown)
              + f"\nPareto plot: {png}")
        return 0
