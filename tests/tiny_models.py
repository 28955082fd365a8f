"""Tiny models built from configs (random weights) with real tokenizers: nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import torch

ASSETS = Path(__file__).parent / "assets"
CLIP_BPE = ASSETS / "bpe_simple_vocab_16e6.txt.gz"


def write_clip_tokenizer_files(folder: Path) -> None:
    """vocab.json and merges.txt of the real CLIP BPE vocabulary (49,408 tokens), from open_clip's file."""
    from hardprompt.models.clip_bpe import clip_vocabulary

    vocab, merges = clip_vocabulary(CLIP_BPE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def save_tiny_clip(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2, projection: int = 32) -> Path:
    """A random CLIPModel with the real vocabulary, tokenizer and PIL image processor, saved to `folder`."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    write_clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection))
    model.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
