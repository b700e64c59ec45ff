#!/usr/bin/env bash
# Swap the re-logged sweeps into studies/ once all three are complete with their probes, then re-measure the
# nested figures that read them. Refuses (exit 1, nothing changed) while any of the three is incomplete.
#   bash relogs/swap.sh            # check, swap, and print the figure commands
#   bash relogs/swap.sh --measure  # ... and run them (relogs/remeasure.sh: a few hours of both cores)
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
echo "swapped: ${names[*]} (commit them)"
echo "then measure again every figure that reads them: bash relogs/remeasure.sh (--list shows what it runs)"
if [ "${1:-}" = "--measure" ]; then
    bash relogs/remeasure.sh
fi
