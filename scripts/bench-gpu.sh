#!/usr/bin/env bash
# myosight's GPU figures: I3D per clip at batch 1 and the live worker (fused window latency p50/p95/p99 at
# 112 and 224 px, decisions per second, time to the first fused prediction) with the models on a CUDA device.
#
# Run from the repository root on a machine with an NVIDIA GPU, in an environment where myosight is
# installed with a CUDA build of torch, for example:
#   python3 -m venv .venv && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu126
#   .venv/bin/pip install -e '.[dev]' && .venv/bin/myosight weights fetch
# Then:  scripts/bench-gpu.sh [DEVICE] [OUT]   (defaults: cuda, bench-gpu)
# It writes OUT/bench-gpu.json and OUT/performance-gpu.md (the table docs/performance.md takes).
set -euo pipefail
DEVICE="${1:-cuda}"
OUT="${2:-bench-gpu}"
MYOSIGHT="${MYOSIGHT:-.venv/bin/myosight}"
mkdir -p "$OUT"
"$MYOSIGHT" --version
"$MYOSIGHT" bench i3d realtime --device "$DEVICE" --seconds "${SECONDS_PER_MODE:-30}" \
    --output "$OUT/performance-gpu.md" --json > "$OUT/bench-gpu.json"
echo "GPU figures in $OUT/bench-gpu.json and $OUT/performance-gpu.md"
