"""The small image towers of the shapes world: images (64×64 RGB) → unit vectors in MiniLM's feature space."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .render import IMAGE_SIZE

FEATURE_DIM = 384
"""all-MiniLM-L6-v2's sentence feature size."""


def _conv_block(channels_in: int, channels_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    ]


class MainTower(nn.Module):
    """Strided 3×3 convolutions down to 4×4, then a two-layer head (keeps where things are)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (32, 64, 128, 128):
            layers += _conv_block(channels, width, 3, 2)
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 512), nn.ReLU(inplace=True))
        self.project = nn.Linear(512, FEATURE_DIM)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.head(self.features(pixels))), dim=-1)


class ReferenceTower(nn.Module):
    """A different design for the reference scorer: 2× average pooling, then 5×5 convolutions with max pooling."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(2)]
        channels = 3
        for width in (32, 64, 160):
            layers += [*_conv_block(channels, width, 5, 1), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 512), nn.GELU())
        self.project = nn.Linear(512, FEATURE_DIM)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.head(self.features(pixels))), dim=-1)


ARCHITECTURES: dict[str, type[nn.Module]] = {"main": MainTower, "reference": ReferenceTower}


def images_to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """A float batch (n, 3, 64, 64) in [-1, 1] from RGB images of any size."""
    arrays = []
    for image in images:
        rgb = image.convert("RGB")
        if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
            rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(rgb))
    return uint8_to_pixels(torch.from_numpy(np.stack(arrays)))


def uint8_to_pixels(batch: torch.Tensor) -> torch.Tensor:
    """(n, 64, 64, 3) uint8 → (n, 3, 64, 64) float in [-1, 1]."""
    return batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
