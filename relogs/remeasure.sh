#!/usr/bin/env bash
# Every committed figure that reads mpqa-wide96, trec-wide64 or subj-wide64, measured again after the swap
# (bash relogs/swap.sh), in order: each command writes its file through a temporary one, and a command whose
# output is listed in runs/remeasured.txt is skipped, so a run cut short resumes where it stopped.
#   bash relogs/remeasure.sh          # all of them: a few hours of both cores (pause the sweep workers for timings)
#   bash relogs/remeasure.sh --list   # what it would run, and what is done
# The W = 1 files of a few policies are taken from the full comparison's run (benchmarks/nested_subset.py: a
# policy's figures do not depend on the others beside it), so they follow it.
# Not here: the figures of sweeps none of the three is in (base12-w1, the twelve older sweeps), and
# lookahead16-w1-first.json, the look-ahead's first version, which the code no longer has (the docs quote its
# default and median columns: take them from all-policies16-w1.json after the swap).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
done_file=runs/remeasured.txt
touch "$done_file"
N=benchmarks/nested
sixteen="$(ls -d studies/*/ | grep -v agnews | tr '\n' ' ')"
fourteen="$(ls -d studies/*/ | grep -v -e agnews -e subj-wide64 -e sst2-8k-wide32 | tr '\n' ' ')"
nested() { echo "earlyexit replay --leave-one-task-out $1 --nested --jobs 2 --json ${*:2}"; }
BASE14="default default_sync progress_match crude_rule halving_rungs prefix_accuracy median patient_median percentile successive_halving hyperband wilcoxon"
OPTUNA="default median patient_median percentile successive_halving hyperband wilcoxon"
ALL16="default default_sync progress_match interval interval_tasks prefix_accuracy median successive_halving hyperband"
jobs=(
    "$N/all-policies16-w1.json|$(nested "$sixteen" --plot $N/all-policies16-w1.png)"
    "$N/all16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/all16-w1.json --policies $ALL16"
    "$N/lookahead16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/lookahead16-w1.json --policies lookahead"
    "$N/lookahead-study16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/lookahead-study16-w1.json --policies lookahead_study"
    "$N/lookahead-refit16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/lookahead-refit16-w1.json --policies lookahead_refit"
    "$N/lookahead-tuned16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/lookahead-tuned16-w1.json --policies lookahead_refit lookahead_tuned"
    "$N/lookahead-probes16-w1.json|python benchmarks/nested_subset.py $N/all-policies16-w1.json $N/lookahead-probes16-w1.json --policies default lookahead_refit lookahead_probes median"
    "$N/lookahead16-w4.json|$(nested "$sixteen" --workers 4 --policies lookahead)"
    "$N/lookahead16-w8.json|$(nested "$sixteen" --workers 8 --policies lookahead)"
    "$N/lookahead-study16-w4.json|$(nested "$sixteen" --workers 4 --policies lookahead_study)"
    "$N/lookahead-study16-w8.json|$(nested "$sixteen" --workers 8 --policies lookahead_study)"
    "$N/lookahead-refit16-w4.json|$(nested "$sixteen" --workers 4 --policies lookahead_refit)"
    "$N/lookahead-refit16-w8.json|$(nested "$sixteen" --workers 8 --policies lookahead_refit)"
    "$N/base14-w1.json|$(nested "$fourteen" --policies $BASE14 --plot $N/base14-w1.png)"
    "$N/base14-w4.json|$(nested "$fourteen" --workers 4 --policies $OPTUNA)"
    "$N/base14-w8.json|$(nested "$fourteen" --workers 8 --policies $OPTUNA)"
    "$N/interval14-w1.json|$(nested "$fourteen" --policies interval interval_tasks)"
    "$N/interval14-w4.json|$(nested "$fourteen" --workers 4 --policies interval interval_tasks)"
    "$N/interval14-w8.json|$(nested "$fourteen" --workers 8 --policies interval interval_tasks)"
    "$N/size-mpqa-wide96.json|earlyexit replay studies/mpqa-wide96 --trials 24 48 96 --choices $N/base12-w1.json --jobs 2 --json"
    "$N/size-trec-wide64.json|earlyexit replay studies/trec-wide64 --trials 24 48 64 --choices $N/base12-w1.json --jobs 2 --json"
    "$N/size-subj-wide64.json|earlyexit replay studies/subj-wide64 --trials 24 48 64 --choices $N/base14-w1.json --jobs 2 --json"
    "benchmarks/fixed-budget.txt|python benchmarks/fixed_budget.py"
    "benchmarks/study-refit.json|python benchmarks/study_refit.py --orders 5 --json benchmarks/study-refit.json"
    "benchmarks/neighbours.txt|python benchmarks/neighbours.py --orders 5 --json benchmarks/neighbours.json"
    "benchmarks/probe-features.txt|python benchmarks/predictor_features.py --features probes --orders 5 --json benchmarks/probe-features.json"
    "benchmarks/record-features.txt|python benchmarks/predictor_features.py --features records --orders 5 --json benchmarks/record-features.json"
    "benchmarks/lookahead-frontier.json|python benchmarks/lookahead_frontier.py --orders 10 --json benchmarks/lookahead-frontier.json --plot benchmarks/lookahead-frontier.png"
    "benchmarks/where-compute-goes.txt|python benchmarks/where_compute_goes.py --orders 10 --json benchmarks/where-compute-goes.json"
    "benchmarks/where-compute-goes-w8.txt|python benchmarks/where_compute_goes.py --orders 10 --workers 8 --json benchmarks/where-compute-goes-w8.json"
    "benchmarks/early-bound.txt|python benchmarks/early_bound.py --orders 10 --json benchmarks/early-bound.json"
    "benchmarks/local-intervals.txt|python benchmarks/local_intervals.py --orders 10 --json benchmarks/local-intervals.json"
    "benchmarks/warmup-surrogate.txt|python benchmarks/warmup_surrogate.py --orders 10 --json benchmarks/warmup-surrogate.json"
    "benchmarks/tie_breakers.md|python benchmarks/tie_breakers.py $sixteen"
    "benchmarks/winner_ranks.md|python benchmarks/winner_ranks.py $sixteen"
)
for job in "${jobs[@]}"; do
    out="${job%%|*}"; cmd="${job#*|}"
    if grep -qxF "$out" "$done_file"; then
        [ "${1:-}" = "--list" ] && echo "done     $out"
        continue
    fi
    if [ "${1:-}" = "--list" ]; then echo "to run   $out: $cmd"; continue; fi
    echo "$(date -u +%H:%M:%S) $out: $cmd" >&2
    start=$SECONDS
    if [[ "$cmd" == "earlyexit replay"* || "$out" == *.txt || "$out" == *.md ]]; then  # prints its figures: through a temporary file
        eval "$cmd" > "$out.tmp" && mv "$out.tmp" "$out" || { echo "failed: $out" >&2; rm -f "$out.tmp"; exit 1; }
    else
        eval "$cmd" || { echo "failed: $out" >&2; exit 1; }
    fi
    echo "$out" >> "$done_file"
    echo "  $(( SECONDS - start )) s" >&2
done
[ "${1:-}" = "--list" ] || echo "all measured; update the README and docs from the new files (tests/test_readme_figures.py says where)"
