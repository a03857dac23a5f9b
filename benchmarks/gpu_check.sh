#!/usr/bin/env bash
# GPU check: one short job (under 8 minutes on one GPU) that runs what only a GPU exercises, and measures it.
#   bash benchmarks/gpu_check.sh [FOLDER]      (default folder: gpu-check/; PYTHON: the trainer's Python, default
#                                               .venv/bin/python; STEPS: training steps, default 500 on a GPU)
# On a GPU machine: `ragan info`; the tests of XLA, mixed precision, MirroredStrategy and two hosts; a 128 px training
# in float32 and one with --mixed-precision --xla (images/s from the trainer's own progress events, the first window,
# which holds compilation, left out; peak GPU memory from nvidia-smi); --multi-gpu when more than one GPU is present;
# synthetic pairs generated from the fast run. Without a GPU (a few minutes on 2 CPU cores) the GPU parts are skipped:
# the tests are only collected (CI runs them on the CPU), the two trainings run at 64 px for 4 steps (the float16 path
# forced, RAGAN_FORCE_MIXED_PRECISION) and generate runs, saying so: the script itself stays tested, but its figures
# are no measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${1:-gpu-check}
mkdir -p "$out"
gpus=$("$python" -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null || echo 0)
steps=${STEPS:-500}
size=128
log_every=10
shape="(24, 192, 192)"
if [ "$gpus" -eq 0 ]; then
    steps=${STEPS:-4}
    size=64
    log_every=1
    shape="(12, 96, 96)"
    export RAGAN_FORCE_MIXED_PRECISION=1  # the float16 path runs (slowly) on the CPU too
    echo "gpu_check: no GPU visible to TensorFlow: GPU parts skipped; trainings at $size px for $steps steps on the" \
        "CPU (not a measurement)"
fi
failed=()

"$python" -m RaGANLib info
# The tests whose code paths differ on a GPU (names as in Testing/: -k must select them, checked below).
selection="xla or mixed_precision or mirrored or two_hosts"
tests=(Testing/test_distributed.py Testing/test_adaptive_training.py Testing/test_augment.py)
selected=$("$python" -m pytest -q -p no:cacheprovider --collect-only "${tests[@]}" -k "$selection" | grep -c "::" || true)
echo "gpu_check: $selected tests selected by -k '$selection'"
[ "$selected" -ge 5 ] || failed+=("test selection ($selected tests)")
if [ "$gpus" -gt 0 ]; then
    "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" -k "$selection" || failed+=(tests)
else
    echo "gpu_check: tests skipped without a GPU (CI runs them on the CPU)"
fi

data="$out/phantom"
[ -d "$data" ] || "$python" -c "import sys; from RaGANLib.data import phantom; phantom.write_dataset(sys.argv[1], cases=6, shape=$shape)" "$data"

memory_log="$out/gpu-memory.csv"
if [ "$gpus" -gt 0 ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 500 >"$memory_log" &
    sampler=$!
    trap 'kill $sampler 2>/dev/null || true' EXIT
fi

train() {  # NAME FLAGS...: train into $out/NAME (a fresh run folder each time) and print its speed
    local name=$1
    shift
    [ ! -f "$out/$name/.ragan.json" ] || "$python" -c "import shutil, sys; shutil.rmtree(sys.argv[1])" "$out/$name"
    "$python" -m RaGANLib train --dataset "$data" --out "$out/$name" --size "$size" --steps "$steps" --log-every "$log_every" \
        --checkpoint-every "$steps" --preview-every "$steps" --events json "$@" >"$out/$name.events.jsonl" ||
        failed+=("$name")
    "$python" - "$out/$name.events.jsonl" "$name" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
started = next((e for e in events if e["event"] == "started"), {})
speeds = sorted(e["images_per_s"] for e in events if e["event"] == "progress")[1:]  # the first holds compilation
last = events[-1] if events else {"event": "nothing"}
median = f"{speeds[len(speeds) // 2]:.1f}" if speeds else "?"
print(f"{sys.argv[2]}: {last['event']} at step {last.get('step')} ({last.get('message', last.get('reason'))}), "
      f"{started.get('precision')} on {started.get('device')} x{started.get('replicas')}: "
      f"median {median} images/s over {len(speeds)} windows")
PY
}

train float32
train mixed-xla --mixed-precision --xla
if [ "$gpus" -gt 1 ]; then
    train mirrored --multi-gpu --mixed-precision --xla
fi
for name in mixed-xla float32; do  # the fast run's model; the other one's if the fast run failed
    if [ -d "$out/$name/model" ]; then
        [ ! -f "$out/generated/.ragan.json" ] || "$python" -c "import shutil, sys; shutil.rmtree(sys.argv[1])" "$out/generated"
        "$python" -m RaGANLib generate "$out/$name/model" --count 64 --out "$out/generated" --events json |
            tail -n 1 || failed+=(generate)
        break
    fi
done
if [ -n "${sampler:-}" ]; then
    kill "$sampler" 2>/dev/null || true
    awk -F', ' '$2 > peak {peak = $2} END {print "peak GPU memory used: " peak " MiB"}' "$memory_log"
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_check: FAILED: ${failed[*]}"
    exit 1
fi
echo "gpu_check: done; previews in $out/*/previews, synthetic pairs in $out/generated"
