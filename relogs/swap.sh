#!/usr/bin/env bash
# Swap the re-logged sweeps into studies/ once all three are complete with their probes, then re-measure the
# nested figures that read them. Refuses (exit 1, nothing changed) while any of the three is incomplete.
#   bash relogs/swap.sh            # check, swap, and print the figure commands
#   bash relogs/swap.sh --measure  # ... and run them (about 30 minutes of both idle cores; pause the workers)
set -euo pipefail
cd "$(dirname "$0")/.."
names=(trec-wide64 subj-wide64 mpqa-wide96)
for name in "${names[@]}"; do
    if ! earlyexit sweeps validate "relogs/$name" --require-complete > /dev/null 2>&1; then
        echo "relogs/$name is not complete with its probes yet: nothing swapped." >&2
        earlyexit sweeps validate "relogs/$name" --require-complete || true
        exit 1
    fi
done
for name in "${names[@]}"; do
    # The probe prices are the spec's, measured on this CPU (earlyexit bench probes --spec ... --write); they
    # move with it. The GPU log stays in git history.
    cp "studies/$name/probe_costs.json" "relogs/$name/probe_costs.json"
    git rm -r -q "studies/$name"
    cp -r "relogs/$name" "studies/$name"
    git rm -r -q --cached "relogs/$name" && rm -rf "relogs/$name"
    earlyexit sweeps report "studies/$name" > /dev/null   # REPORT.md and correlations.png, now with probes
    git add "studies/$name"
    earlyexit sweeps validate "studies/$name" --require-complete
done
echo "swapped: ${names[*]} (commit them, then re-measure the figures below, with their dates)"
sixteen='$(ls -d studies/*/ | grep -v agnews)'
commands=(
    "earlyexit replay --leave-one-task-out $sixteen --nested --policies default default_sync progress_match interval interval_tasks prefix_accuracy median successive_halving hyperband --jobs 2 --json > benchmarks/nested/all16-w1.json"
    "earlyexit replay --leave-one-task-out $sixteen --nested --policies default lookahead median --jobs 2 --json > benchmarks/nested/lookahead16-w1.json"
    "earlyexit replay --leave-one-task-out $sixteen --nested --policies lookahead_study --jobs 2 --json > benchmarks/nested/lookahead-study16-w1.json"
    "earlyexit replay --leave-one-task-out $sixteen --nested --policies lookahead_refit --jobs 2 --json > benchmarks/nested/lookahead-refit16-w1.json"
    "python benchmarks/fixed_budget.py > benchmarks/fixed-budget.txt"
    "python benchmarks/study_refit.py --json benchmarks/study-refit.json"
)
for c in "${commands[@]}"; do
    echo "  $c"
done
echo "also re-measure the fourteen-sweep figures (base14-*, interval14-*, size-*: their commands are in the README and"
echo "docs/pruner.md), which read trec-wide64 and mpqa-wide96 too, and the README's first table (lookahead16-w1-first)"
if [ "${1:-}" = "--measure" ]; then
    for c in "${commands[@]}"; do
        echo "running: $c" >&2
        eval "$c"
    done
    echo "measured; update the README and docs/lookahead.md from the new JSON (tests/test_readme_figures.py says where)"
fi
