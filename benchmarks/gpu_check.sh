#!/usr/bin/env bash
# The GPU checks of the probes, in one call (prepared for a lent GPU machine; what comes back is under $OUT).
# Each step logs to <step>.log, is cut off after its own time limit, and the script goes on after a failure;
# $OUT/summary.txt lists each step's exit code and seconds, and $OUT/gpu-check.tar gains each step's log and JSON
# as the step ends (a lent machine returns few files). The steps run in order of need, so a call cut short still
# returns the first ones.
#   OUT=/tmp/out bash benchmarks/gpu_check.sh            # on the GPU machine
#   OUT=/tmp/out DEVICE=cpu QUICK=1 SCALE=4 bash benchmarks/gpu_check.sh   # the script itself, on a CPU machine
# SCALE multiplies every step's time limit (the limits are sized for a GPU).
# Packages the GPU image lacks (Optuna and its needs) travel as wheels in .whl/ (bash benchmarks/gpu_wheels.sh
# downloads them; carry .whl); they are installed to /tmp/site first.
set -u
OUT="${OUT:-/tmp/gpu-check}"; mkdir -p "$OUT"
WORK="$(mktemp -d)"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-}"
SCALE="${SCALE:-1}"
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        > "$WORK/wheels.log" 2>&1 && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$(pwd):${PYTHONPATH:-}" PYTHONUNBUFFERED=1
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout "$((limit * SCALE))" "$@" > "$WORK/$name.log" 2>&1;
         echo "$name rc=$? $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
         (cd "$WORK" && find . -maxdepth 1 -type f -newer "$OUT/gpu-check.tar" -print0 | xargs -0 -r tar rf "$OUT/gpu-check.tar")
         touch "$OUT/gpu-check.tar"; }
{ nvidia-smi; python3 -c "import torch, transformers, optuna; print(torch.__version__, transformers.__version__, optuna.__version__)"; } \
    > "$WORK/machine.txt" 2>&1
(cd "$WORK" && tar cf "$OUT/gpu-check.tar" .)
if [ "$DEVICE" = cpu ]; then devices=cpu; workers=cpu,cpu; else devices=0; workers=0,0,0,0; fi
if [ -n "$QUICK" ]; then trials=3; steps=(--max-steps 30); until=25; else trials=20; steps=(); until=100; fi
# 1. the CUDA tests, and the device-placement tests on a real device
step cuda-tests 90 python3 -m pytest -q -x tests/test_devices.py tests/test_probe_placement.py
# 2. every probe on the device against the CPU on the same weights and batches (fp32: 1e-4 relative; traces: their SE)
step probes-equal 45 python3 benchmarks/device_check.py --device "$DEVICE" --out "$WORK/device_check.json"
step probes-equal-6l 45 python3 benchmarks/device_check.py --device "$DEVICE" --layers 6 --hidden 128 \
    --out "$WORK/device_check_6l.json"
# 3. training in bf16 autocast with the probes in fp32
step bf16 60 python3 benchmarks/precision_check.py --device "$DEVICE" --steps "$until" --out "$WORK/precision_check.json"
# 4. the quick start on one GPU (--devices 0), then four workers on it
step quickstart 90 python3 -m earlyexit run studies/quickstart.toml --devices "$devices" --storage "journal:$WORK/qs.log"
step four-workers 90 python3 -m earlyexit run studies/quickstart.toml --devices "$workers" --n-trials 4 \
    --storage "journal:$WORK/w4.log"
# 5. memory after 20 trials against after 2, in one study process
step memory 120 python3 benchmarks/memory_check.py --device "${DEVICE/#cuda/cuda:0}" --trials "$trials" "${steps[@]}" \
    --out "$WORK/memory_check.json"
# 6. the probes' price in training steps on the device: the sweeps' 2-layer MiniLM shape and a BERT-base-sized
#    encoder, both from a config (probe_costs.json with the device in its provenance)
if [ -n "$QUICK" ]; then shapes=(minilm-2l); else shapes=(minilm-2l bert-base); fi
step costs 150 python3 benchmarks/shape_costs.py --device "$DEVICE" --until "$until" --out "$WORK/costs" \
    --shapes "${shapes[@]}"
for s in "${shapes[@]}"; do cp "$WORK/costs/$s/probe_costs.json" "$WORK/probe_costs_$s.json" 2>/dev/null; done
nvidia-smi --query-gpu=memory.used --format=csv > "$WORK/memory-end.txt" 2>&1
(cd "$WORK" && tar rf "$OUT/gpu-check.tar" probe_costs_*.json memory-end.txt 2>/dev/null)
cat "$OUT/summary.txt"
