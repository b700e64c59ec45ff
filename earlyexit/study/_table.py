"""What a study prints and returns when it ends: the trial table and the summary."""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState

from ..names import PRUNED_REASON, STUDY_BUDGET, STUDY_METRIC


def trial_table(study: optuna.Study) -> str:
    """One line per trial: state, steps trained, final metric, why pruned, parameters."""
    rows = [f"{'#':>4} {'state':<9} {'steps':>6} {'final acc':>9}  {'why pruned':<64} params"]
    for t in study.get_trials(deepcopy=False):
        acc = t.user_attrs.get("final_accuracy")
        acc_s = f"{acc:.4f}" if isinstance(acc, float) else "-"
        reason = t.user_attrs.get(PRUNED_REASON, "") if t.state == TrialState.PRUNED else ""
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
        rows.append(f"{t.number:>4} {t.state.name.lower():<9} {t.user_attrs.get('steps', '-')!s:>6} {acc_s:>9}  "
                    f"{reason[:64]:<64} {params}")
    return "\n".join(rows)


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def summary(study: optuna.Study) -> dict:
    """Best trial and compute figures as a JSON-ready dict."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    out = {
        "study": study.study_name,
        "trials": len(trials),
        "complete": len(done),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "compute_steps": sum(t.user_attrs.get("compute_steps", 0.0) for t in trials),
    }
    budget = study.user_attrs.get(STUDY_BUDGET)
    judged = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if budget and judged:
        # What pruning saved: training-step equivalents spent (probes included) against training every
        # finished trial to the end of the budget, without probes.
        full = budget * len(judged)
        spent = sum(t.user_attrs.get("compute_steps", 0.0) for t in judged)
        out["full_training_steps"] = full
        out["compute_saved"] = 1 - spent / full
    if done:
        best = max(done, key=lambda t: t.value)
        metric = study.user_attrs.get(STUDY_METRIC, "accuracy")
        out["best"] = {"trial": best.number, "metric": metric, "value": best.value,
                       "final_accuracy": best.user_attrs.get("final_accuracy", best.value), "params": best.params}
    return json.loads(json.dumps(out, default=str))
