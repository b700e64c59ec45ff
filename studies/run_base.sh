#!/usr/bin/env bash
# One worker of the prior-sweeps base: measures a sweep's probe costs where the folder has
# none, then logs its runs, sweep by sweep in the order below (the six tasks of the leave-one-task-out targets first, then the cheapest whole sweeps). Start it
# twice (two 1-thread workers use 2 cores best); each run is claimed, so none is trained twice, and a
# killed worker loses only the run in progress. Run from the repository root:
#   nohup bash studies/run_base.sh >> runs/base-a.log 2>&1 &
#   nohup bash studies/run_base.sh >> runs/base-b.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
SWEEPS="${EARLYEXIT_BASE_SWEEPS:-trec-wide24 mpqa-wide24 subj-wide24 mr-wide24 sst2-8k-wide24 cola-4l-wide24 trec-6l-wide24 mr-4l-wide24 cola-6l-wide24}"
for name in $SWEEPS; do
    spec="studies/$name.toml"
    # One worker measures the probe costs (beside the other worker's runs, as the sweeps run) while
    # the other starts the sweep; a lock file says who measures.
    if [ ! -f "studies/$name/probe_costs.json" ] && mkdir "runs/$name.costs.lock" 2>/dev/null; then
        echo "$(date -u +%FT%TZ) $name: measuring probe costs"
        earlyexit bench probes --spec "$spec" --write --threads 1 || echo "$name: probe costs failed"
        rmdir "runs/$name.costs.lock"
    fi
    echo "$(date -u +%FT%TZ) $name: logging runs"
    earlyexit sweep "$spec" --threads 1 || echo "$name: sweep exited with $?"
done
echo "$(date -u +%FT%TZ) base: nothing left for this worker"
