"""Tiny open_clip models built from configs (random weights, the real CLIP BPE vocabulary): nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch

VISION = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16}
TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}
#: Text towers that take the adapter's two paths: n + 2 positions (causal, pooled at the end token) or the full context.
TEXT_TOWERS = {
    "causal-argmax": {},
    "custom-text-eos": {"custom_text": True, "text_cfg": {"pool_type": "eos", "eos_id": 49407, "proj_bias": True}},
    "bidirectional-last": {"text_cfg": {"no_causal_mask": True, "pool_type": "last"}},
}


def tiny_open_clip_config(tower: str = "causal-argmax") -> dict:
    """An open_clip model config (embed_dim 32) with one of the TEXT_TOWERS."""
    extra = TEXT_TOWERS[tower]
    config = {"embed_dim": 32, "vision_cfg": dict(VISION), "text_cfg": {**TEXT, **extra.get("text_cfg", {})}}
    if extra.get("custom_text"):
        config["custom_text"] = True
    return config


def save_tiny_open_clip(folder: Path, tower: str = "causal-argmax", seed: int = 0) -> Path:
    """A random open_clip model saved in open_clip's hub layout: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {"size": 32, "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
    config = {"model_cfg": tiny_open_clip_config(tower), "preprocess_cfg": preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    weights = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(weights, folder / "open_clip_model.safetensors")
    return folder
