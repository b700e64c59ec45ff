"""`earlyexit fit`: fit a probe scorer on logged sweeps."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CLIUsageError


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
        p.add_argument("--bound", action="store_true",
                       help="instead of a scorer: the bound on a trial's final that `[pruner] bound = true` reads "
                            "(earlyexit.scoring.FinalInterval, fitted on the sweeps grouped by task; at least two "
                            "tasks), written as JSON to -o or into the package (earlyexit/assets/final_interval.json)")
        p.add_argument("--predictor", action="store_true",
                       help="instead of a scorer: the look-ahead's predictor of a trial's final that `[pruner] "
                            "lookahead = true` reads (earlyexit.scoring.FinalPredictor, plain JSON, fitted on the "
                            "sweeps grouped by task; at least two tasks), written to -o or into the package "
                            "(earlyexit/assets/final_predictor.json)")
        p.add_argument("--json", action="store_true", help="print the cross-validation report as JSON")

    def _predictor(self, args) -> int:
        from ..replay import fit_predictor, held_sets
        from ..scoring import PREDICTOR_FILE, save_predictor
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        sweeps = [load_one_budget(p) for p in find_sweeps(args.sweeps)]
        tasks = sorted({str(sw.manifest.get("task")) for sw in sweeps})
        if len(tasks) < 2:
            raise CLIUsageError(f"fit --predictor calibrates across tasks and needs sweeps of two or more; got {tasks}.")
        model = fit_predictor([h for sw in sweeps for h in held_sets(sw)])
        out = args.output or str(PREDICTOR_FILE)
        save_predictor(model, out)
        low, high = model.margins(0.8)
        print(f"predictor fitted on {len(sweeps)} sweeps of {len(tasks)} tasks ({', '.join(tasks)}), "
              f"{len(model.y_)} readings: margins at 80% each side {low:+.3f} / {high:+.3f} of the headroom -> {out}")
        return 0

    def _bound(self, args) -> int:
        from ..replay import fit_interval, held_sets
        from ..scoring import BOUND_FILE, save_bound
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        sweeps = [load_one_budget(p) for p in find_sweeps(args.sweeps)]
        tasks = sorted({str(sw.manifest.get("task")) for sw in sweeps})
        if len(tasks) < 2:
            raise CLIUsageError(f"fit --bound calibrates across tasks and needs sweeps of two or more; got {tasks}.")
        model = fit_interval([h for sw in sweeps for h in held_sets(sw)], coverage=0.8)
        out = args.output or str(BOUND_FILE)
        save_bound(model, out, sweeps=tuple(sorted(sw.name for sw in sweeps)))
        print(f"bound fitted on {len(sweeps)} sweeps of {len(tasks)} tasks ({', '.join(tasks)}): margin at 80% "
              f"coverage {model.margin_:+.3f} of the headroom -> {out}")
        return 0

    def take_action(self, args) -> int:
        from ..replay import fit_sweeps
        from ..scoring import DEFAULT_SCORER, save_scorer
        from ..sweeps import find_sweeps
        from ._common import load_one_budget

        if args.bound:
            return self._bound(args)
        if args.predictor:
            return self._predictor(args)
        if args.default:
            args.transfer, args.output = True, args.output or str(DEFAULT_SCORER)
        if args.output is None:
            raise CLIUsageError("fit: give -o FILE (or --default).")
        sweeps = [load_one_budget(p) for p in find_sweeps(args.sweeps)]
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
        from ..replay import fit_transfer
        from ..scoring import save_scorer

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
