"""The "shapes" image–text model: frozen all-MiniLM-L6-v2 text tower + a small trained image tower.

The image tower (see `hardprompt.shapes`) was trained to put images of rendered scenes next to the
MiniLM features of their captions, so prompts are optimized over the full MiniLM vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources

import torch
from PIL import Image
from safetensors import safe_open

from ..errors import HardpromptError
from .frozen import freeze
from .resolve import model_location
from .sentence import SentenceEncoder

#: Alias → weights file in hardprompt/assets/shapes.
SHAPES_TOWERS = {"shapes": "main.safetensors", "shapes-reference": "reference.safetensors"}


class ShapesEncoder(SentenceEncoder):
    """MiniLM for text (mean pooling, unit norm) and a small CNN for images, in the same feature space."""

    def __init__(self, model, tokenizer, image_tower: torch.nn.Module, name: str, device: torch.device) -> None:
        super().__init__(model, tokenizer, name=name, device=device)
        self.image_tower = freeze(image_tower, device)

    @property
    def supports_images(self) -> bool:
        return self.image_tower is not None

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        from ..shapes.towers import images_to_pixels

        if not self.supports_images:
            return super().encode_images(images)
        if not images:
            raise HardpromptError("there are no images to encode")
        return self.image_tower(images_to_pixels(images).to(self.device)).float()

    def release_image_tower(self) -> None:
        self.image_tower = None


def load_image_tower(filename: str) -> tuple[torch.nn.Module, dict]:
    """The tower stored in hardprompt/assets/shapes/`filename`, and its training metrics."""
    from ..shapes.towers import ARCHITECTURES

    path = resources.files("hardprompt") / "assets" / "shapes" / filename
    if not path.is_file():
        raise HardpromptError(f"the shapes weights {filename} are missing (python -m hardprompt.shapes.train)")
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
        state = {key: file.get_tensor(key).float() for key in file.keys()}  # noqa: SIM118 (safe_open is no dict)
    tower = ARCHITECTURES[metadata.get("arch", "main")]()
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise HardpromptError(f"the shapes weights {filename} do not fit their architecture")
    return tower, json.loads(metadata.get("metrics", "{}"))


def load_shapes_encoder(name: str, device: torch.device) -> ShapesEncoder:
    """The shapes model `name` (an alias in SHAPES_TOWERS) on `device`."""
    from transformers import AutoModel, AutoTokenizer

    location = model_location("minilm")
    tower, _ = load_image_tower(SHAPES_TOWERS[name])
    model = AutoModel.from_pretrained(location)
    return ShapesEncoder(model, AutoTokenizer.from_pretrained(location), tower, name=name, device=device)
