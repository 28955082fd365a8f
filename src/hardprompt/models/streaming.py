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
from torch import nn

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
"""The safetensors dtypes a checkpoint may use here."""


def read_header(file: Path) -> dict[str, tuple[torch.dtype, list[int], int, int]]:
    """{name: (dtype, shape, first byte, end byte)} of a safetensors file (its JSON header)."""
    with open(file, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    start = 8 + length
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        entries[name] = (DTYPES[entry["dtype"]], list(entry["shape"]), start + begin, start + end)
    return entries


class SafetensorsCheckpoint:
    """The tensors of a Hugging Face safetensors checkpoint folder (one file or shards), read by name.

    Tensors are read with plain file reads into memory of their own, not mapped: a tensor viewing a
    mapped file keeps the mapping, and the pages the kernel maps around it, counted as resident.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if (folder / INDEX).is_file():
            files = sorted({folder / file for file in json.loads((folder / INDEX).read_text())["weight_map"].values()})
        elif (folder / SINGLE).is_file():
            files = [folder / SINGLE]
        else:
            raise FileNotFoundError(f"no {SINGLE} or {INDEX} in {folder}")
        self.entries = {name: (file, *entry) for file in files for name, entry in read_header(file).items()}

    @classmethod
    def find(cls, folder: str | Path) -> SafetensorsCheckpoint | None:
        """The checkpoint in `folder`, or None when it is not a local folder of safetensors weights we read."""
        try:
            return cls(folder)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def has(self, names: Iterable[str]) -> bool:
        """Whether the checkpoint holds every tensor of `names`."""
        return all(name in self.entries for name in names)

    def read(self, names: Iterable[str], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The tensors `names`, floating ones cast to `dtype`, on `device`."""
        tensors = {}
        for name in names:
            file, stored, shape, begin, end = self.entries[name]
            raw = torch.empty(end - begin, dtype=torch.uint8)
            with open(file, "rb") as handle:
                handle.seek(begin)
                if handle.readinto(raw.numpy()) != end - begin:
                    raise OSError(f"{file} ends inside tensor {name}")
            tensor = raw.view(stored).reshape(shape)
            tensors[name] = tensor.to(device, dtype if tensor.is_floating_point() else tensor.dtype)
        return tensors

    def fill(self, block: nn.Module, prefix: str, device: torch.device, dtype: torch.dtype) -> None:
        """Give `block` (meta or not) its weights: the tensors under `prefix` in the checkpoint, frozen."""
        names = [f"{prefix}.{name}" for name in block.state_dict()]
        tensors = self.read(names, device, dtype)
        block.load_state_dict({name[len(prefix) + 1 :]: t for name, t in tensors.items()}, assign=True)
        block.requires_grad_(False)


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

        def load(module: nn.Module, _inputs, prefix=prefix) -> None:
            checkpoint.fill(module, prefix, device, dtype)

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
        checkpoint.fill(block, prefix, device, dtype)
