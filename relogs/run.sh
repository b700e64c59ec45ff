#!/usr/bin/env bash
# Re-log the three sweeps first logged on a GPU (their probes failed there; see relogs/README.md).
# One worker per call; run two for the 2 cores. Resumable: each run is claimed, a finished run is never
# trained again, and a killed worker loses only the run it was training.
#   nohup bash relogs/run.sh > runs/relog-1.log 2>&1 &
#   nohup bash relogs/run.sh > runs/relog-2.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
device="${EARLYEXIT_RELOG_DEVICE:-cpu}"
threads="${EARLYEXIT_RELOG_THREADS:-1}"
for name in trec-wide64 subj-wide64 mpqa-wide96; do
    earlyexit sweep "studies/$name.toml" --out "relogs/$name" --threads "$threads" --device "$device"
done
