"""`earlyexit scorer info`: a fitted scorer's card."""

from __future__ import annotations

import argparse
import json


class ScorerCommand:
    """Fitted scorers: `scorer info [FILE]` prints a scorer's card (default: the package's default scorer)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True)
        i = sub.add_parser("info", help="what a scorer reads, its rule, what it learnt from, and its figures")
        i.add_argument("file", nargs="?", default="default", help="a scorer file, or `default` (the default)")
        i.add_argument("--allow-pickle", action="store_true",
                        help="load a scorer saved as a pickle (.joblib): this runs any code in the file, so only "
                             "for a file you made or trust")
        i.add_argument("--json", action="store_true", help="print the card as JSON")

    def take_action(self, args) -> int:
        from ..scoring import DEFAULT_SCORER, TransferScorer, load_scorer

        scorer = load_scorer(args.file, allow_pickle=args.allow_pickle)
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
             *(["margins (metric units, per rung): " + ", ".join(
                 f"{r:.0%}: {m:.4f}" if rule.unit == "budget" else f"{r}: {m:.4f}"
                 for r, m in sorted(scorer.margins_.items()))] if scorer.margins_ else []),
             "learnt from: " + ", ".join(f"{n} ({v['task']}, {v['metric']}, {v['runs']} runs)"
                                         for n, v in card.get("sweeps", {}).items())]
    nested = card.get("nested_leave_one_task_out")
    if nested:
        lines.append("leave-one-task-out (the choice remade without each task"
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
