"""Load a model adapter by alias, Hugging Face hub id, open_clip name, or local directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import HardpromptError
from .base import TextEncoder
from .resolve import model_location, not_available, resolve_device, resolve_dtype

SENTENCE_MODEL_TYPES = {"bert", "distilbert", "roberta", "xlm-roberta", "mpnet", "electra"}


def _load_shapes(name: str, device: torch.device) -> TextEncoder:
    from .shapes import load_shapes_encoder

    return load_shapes_encoder(name, device)


#: Names of models built by the package itself: alias -> function(alias, device) returning the adapter.
CUSTOM_MODELS: dict[str, Callable[[str, torch.device], TextEncoder]] = {
    "shapes": _load_shapes,
    "shapes-reference": _load_shapes,
}

#: Names that stand for several text encoders read together: alias -> their names.
MODEL_GROUPS: dict[str, tuple[str, ...]] = {
    # SDXL's two text encoders come from these CLIPs (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14).
    "sdxl": ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"),
}


def expand_model_names(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """The model names `names` stands for, group aliases (sdxl) expanded."""
    expanded: list[str] = []
    for name in [names] if isinstance(names, str) else names:
        expanded.extend(MODEL_GROUPS.get(name, (name,)))
    return expanded


def load_text_encoder(name: str, device: str = "auto", dtype: str = "auto") -> TextEncoder:
    """A `TextEncoder` for `name`: a built-in model (shapes), an embedded alias (minilm), an open_clip model
    (`open_clip:ARCH/PRETRAINED`, `open_clip:hf-hub:ORG/REPO`, a folder with open_clip_config.json),
    a hub id, or a local directory.

    CLIP models get `CLIPEncoder` (text and images), open_clip models `OpenCLIPEncoder`, BERT-family
    models `SentenceEncoder`. `dtype` is the precision of the weights ("auto": float16 on a GPU,
    float32 on the CPU); bfloat16 halves the bytes read per step (faster on CPUs with bfloat16 units);
    prompts, features and scores stay float32.
    """
    torch_device = resolve_device(device)
    if name in CUSTOM_MODELS:
        if dtype not in ("auto", "float32"):
            raise HardpromptError(f"model {name!r} runs in float32 only; drop --dtype {dtype}")
        return CUSTOM_MODELS[name](name, torch_device)
    if name in MODEL_GROUPS:
        raise HardpromptError(f"{name!r} names several models ({', '.join(MODEL_GROUPS[name])}); load each one")
    torch_dtype = resolve_dtype(dtype, torch_device)
    if name.startswith("open_clip:"):
        from .open_clip import load_open_clip

        return load_open_clip(name, name.removeprefix("open_clip:"), torch_device, torch_dtype)
    location = model_location(name)
    if (Path(location) / "open_clip_config.json").is_file():
        from .open_clip import load_open_clip

        return load_open_clip(name, "local-dir:" + location, torch_device, torch_dtype)
    return _load_transformers_encoder(name, location, torch_device, torch_dtype)


def _load_transformers_encoder(name: str, location: str, device: torch.device, dtype: torch.dtype) -> TextEncoder:
    """A CLIP or sentence encoder that transformers loads from `location` (hub id or directory)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise not_available(name, error) from None
    model_type = getattr(config, "model_type", None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        if model_type == "clip":
            from transformers import CLIPImageProcessorPil, CLIPModel

            from .clip import CLIPEncoder

            model = CLIPModel.from_pretrained(location, dtype=dtype)
            try:
                processor = CLIPImageProcessorPil.from_pretrained(location)
            except OSError:
                processor = None
            return CLIPEncoder(model, tokenizer, processor, name=name, device=device)
        if model_type in SENTENCE_MODEL_TYPES:
            from .sentence import SentenceEncoder

            model = AutoModel.from_pretrained(location, dtype=dtype)
            return SentenceEncoder(model, tokenizer, name=name, device=device)
    except OSError as error:
        raise not_available(name, error) from None
    supported = ", ".join(["clip", "open_clip", *sorted(SENTENCE_MODEL_TYPES)])
    raise HardpromptError(f"model {name!r} has type {model_type!r}; supported: {supported}")
