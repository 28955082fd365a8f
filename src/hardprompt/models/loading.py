"""Load a model adapter by alias, Hugging Face hub id, open_clip name, or local directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..errors import HardpromptError
from .base import TextEncoder
from .resolve import EMBEDDED_MODELS, model_location, not_available, resolve_device, resolve_dtype

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


def load_text_encoder(name: str, device: str = "auto", dtype: str = "float32", image_tower: bool = True) -> TextEncoder:
    """A `TextEncoder` for `name`: a built-in model (shapes), an embedded alias (minilm), an open_clip model
    (`open_clip:ARCH/PRETRAINED`, `open_clip:hf-hub:ORG/REPO`, a folder with open_clip_config.json),
    a hub id, or a local directory.

    CLIP models get `CLIPEncoder` (text and images), open_clip models `OpenCLIPEncoder`, BERT-family
    models `SentenceEncoder`. `dtype` is the precision of the weights ("auto": float16 on a GPU,
    float32 on the CPU); bfloat16 halves the bytes read per step (faster on CPUs with bfloat16 units);
    prompts, features and scores stay float32. Without `image_tower` the adapter has none (a
    Hugging Face CLIP then reads only its text tower's weights).
    """
    torch_device = resolve_device(device)
    if name in CUSTOM_MODELS:
        if dtype not in ("auto", "float32"):
            raise HardpromptError(f"model {name!r} runs in float32 only; drop --dtype {dtype}")
        encoder = CUSTOM_MODELS[name](name, torch_device)
    elif name in MODEL_GROUPS:
        raise HardpromptError(f"{name!r} names several models ({', '.join(MODEL_GROUPS[name])}); load each one")
    else:
        torch_dtype = resolve_dtype(dtype, torch_device)
        spec = _open_clip_spec(name)
        if spec is not None:
            from .open_clip import load_open_clip

            encoder = load_open_clip(name, spec, torch_device, torch_dtype)
        else:
            return _load_transformers_encoder(name, torch_device, torch_dtype, image_tower)
    if not image_tower:
        encoder.release_image_tower()
    return encoder


def encode_images_once(name: str, images: Sequence[Image.Image], device: str = "auto", dtype: str = "float32"):
    """Features of `images` under model `name`'s image tower, freed on return.

    A Hugging Face CLIP reads only its image tower's weights, so that, followed by
    `load_text_encoder(name, image_tower=False)`, the two towers are never in memory together;
    other models are loaded whole for this.
    """
    location = None if name in CUSTOM_MODELS or _open_clip_spec(name) is not None else model_location(name)
    if location is not None and _transformers_model_type(name, location) == "clip":
        from .clip import clip_image_features

        torch_device = resolve_device(device)
        return clip_image_features(location, images, torch_device, resolve_dtype(dtype, torch_device))
    return load_text_encoder(name, device, dtype).encode_images(images)


def _open_clip_spec(name: str) -> str | None:
    """open_clip's name for `name` (ARCH/PRETRAINED, hf-hub:..., local-dir:...), or None for other models."""
    if name.startswith("open_clip:"):
        return name.removeprefix("open_clip:")
    if name in EMBEDDED_MODELS:
        return None
    location = model_location(name)
    return "local-dir:" + location if (Path(location) / "open_clip_config.json").is_file() else None


def _transformers_model_type(name: str, location: str) -> str | None:
    from transformers import AutoConfig

    try:
        return getattr(AutoConfig.from_pretrained(location), "model_type", None)
    except (OSError, ValueError) as error:
        raise not_available(name, error) from None


def _load_transformers_encoder(name: str, device: torch.device, dtype: torch.dtype, image_tower: bool) -> TextEncoder:
    """A CLIP or sentence encoder that transformers loads from `name`'s location (hub id or directory)."""
    from transformers import AutoModel, AutoTokenizer

    location = model_location(name)
    model_type = _transformers_model_type(name, location)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        if model_type == "clip":
            from .clip import load_clip

            return load_clip(location, tokenizer, name, device, dtype, image_tower)
        if model_type in SENTENCE_MODEL_TYPES:
            from .sentence import SentenceEncoder

            model = AutoModel.from_pretrained(location, dtype=dtype)
            return SentenceEncoder(model, tokenizer, name=name, device=device)
    except OSError as error:
        raise not_available(name, error) from None
    supported = ", ".join(["clip", "open_clip", *sorted(SENTENCE_MODEL_TYPES)])
    raise HardpromptError(f"model {name!r} has type {model_type!r}; supported: {supported}")
