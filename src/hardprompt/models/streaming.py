"""Run a model whose weights stay on disk: each block is read from safetensors right before it runs and
dropped right after, so the peak is one block's weights instead of the whole model's.

Used to encode target images: an image tower runs once per batch of images, front to back, so
reading it block by block costs no more than reading it whole, and ViT-bigG/14's 1.84B-parameter
tower (6.9 GiB in float32) peaks at one of its 48 blocks (152 MiB). Like accelerate's sequential
offload, with the model's own forward left untouched: hooks fill a block's parameters before its
forward and swap them back to the meta device after.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsCheckpoint:
    """The tensors of a Hugging Face safetensors checkpoint folder (one file or shards), read by name."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if (folder / INDEX).is_file():
            weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            self.files = {name: folder / file for name, file in weight_map.items()}
        elif (folder / SINGLE).is_file():
            with safe_open(folder / SINGLE, framework="pt") as handle:
                self.files = {name: folder / SINGLE for name in handle.keys()}  # noqa: SIM118 (not a dict)
        else:
            raise FileNotFoundError(f"no {SINGLE} or {INDEX} in {folder}")

    @classmethod
    def find(cls, folder: str | Path) -> SafetensorsCheckpoint | None:
        """The checkpoint in `folder`, or None when it is not a local folder of safetensors weights."""
        try:
            return cls(folder)
        except (FileNotFoundError, NotADirectoryError, OSError, ValueError, KeyError):
            return None

    def has(self, names: Iterable[str]) -> bool:
        return all(name in self.files for name in names)

    def read(self, names: Iterable[str], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The tensors `names`, floating ones cast to `dtype`, on `device`; each file is mapped only while read."""
        by_file: dict[Path, list[str]] = {}
        for name in names:
            by_file.setdefault(self.files[name], []).append(name)
        tensors = {}
        for file, file_names in by_file.items():
            with safe_open(file, framework="pt") as handle:
                for name in file_names:
                    tensor = handle.get_tensor(name)
                    tensors[name] = tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
        return tensors


def stream_blocks(
    blocks: dict[str, nn.Module],
    checkpoint: SafetensorsCheckpoint,
    device: torch.device,
    dtype: torch.dtype,
) -> list[torch.utils.hooks.RemovableHandle]:
    """Make each of `blocks` ({checkpoint prefix: module on the meta device}) read its weights just before
    its forward and drop them just after. Returns the hook handles."""
    handles = []
    for prefix, block in blocks.items():
        names = [f"{prefix}.{name}" for name in block.state_dict()]

        def load(module: nn.Module, _inputs, names=names, prefix=prefix) -> None:
            tensors = checkpoint.read(names, device, dtype)
            module.load_state_dict({name[len(prefix) + 1 :]: t for name, t in tensors.items()}, assign=True)
            module.requires_grad_(False)

        def drop(module: nn.Module, _inputs, _output) -> None:
            module.to("meta")

        handles.append(block.register_forward_pre_hook(load))
        handles.append(block.register_forward_hook(drop))
    return handles


def load_eagerly(
    blocks: dict[str, nn.Module], checkpoint: SafetensorsCheckpoint, device: torch.device, dtype: torch.dtype
) -> None:
    """Read the weights of `blocks` ({checkpoint prefix: module}) now and keep them."""
    for prefix, block in blocks.items():
        names = [f"{prefix}.{name}" for name in block.state_dict()]
        tensors = checkpoint.read(names, device, dtype)
        block.load_state_dict({name[len(prefix) + 1 :]: t for name, t in tensors.items()}, assign=True)
        block.requires_grad_(False)
