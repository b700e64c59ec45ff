#!/usr/bin/env bash
# The GPU checks of the probes, in one call (prepared for a lent GPU machine; every output goes under $OUT).
# Each step logs to $OUT/<step>.log and the script goes on after a failure; $OUT/summary.txt lists the exit codes.
#   OUT=/tmp/out bash benchmarks/gpu_check.sh
set -u
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:-}:$(pwd)" PYTHONUNBUFFERED=1
step() { local name=$1; shift; local t0=$SECONDS; "$@" > "$OUT/$name.log" 2>&1; echo "$name rc=$? $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"; }
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# 1. the CUDA tests, and the device-placement tests on a real device
step cuda-tests python -m pytest -q tests/test_devices.py tests/test_probe_placement.py
# 2. every probe on CUDA against the CPU on the same weights and batches (fp32: 1e-4 relative; traces: their SE)
step probes-equal python benchmarks/device_check.py --device cuda --out "$OUT/device_check.json"
step probes-equal-6l python benchmarks/device_check.py --device cuda --layers 6 --hidden 128 --out "$OUT/device_check_6l.json"
# 3. the quick start on one GPU, and four workers on it
step quickstart python -m earlyexit run studies/quickstart.toml --device cuda:0 --storage "journal:$OUT/qs.log" --no-progress
step four-workers python -m earlyexit run studies/quickstart.toml --devices 0,0,0,0 --n-trials 4 --storage "journal:$OUT/w4.log" --no-progress
# 4. the probes' price in training steps on the GPU (the bench's shapes; JSON with the device)
step bench python -m earlyexit bench probes --device cuda --json
cp "$OUT/bench.log" "$OUT/probe_costs_gpu.json" 2>/dev/null
nvidia-smi --query-gpu=memory.used --format=csv >> "$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/summary.txt"
