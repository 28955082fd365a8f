"""CLIP (any Hugging Face `CLIPModel`) as a text and image encoder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import HardpromptError
from .base import TextEncoder
from .frozen import freeze
from .streaming import SafetensorsCheckpoint, load_eagerly, stream_blocks

if TYPE_CHECKING:
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        PretrainedConfig,
        PreTrainedModel,
    )


@lru_cache(maxsize=8)
def _causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive causal attention mask of shape (1, 1, length, length)."""
    blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    return torch.zeros(length, length, dtype=dtype, device=device).masked_fill(blocked, torch.finfo(dtype).min)[
        None, None
    ]


class CLIPEncoder(TextEncoder):
    """A CLIP model whose text tower is run on prompt embeddings.

    CLIP's text transformer is causal and pools at the end-of-text token, so positions after it
    never matter: a prompt of n tokens is encoded as exactly n + 2 positions (BOS, prompt, EOS)
    instead of the 77 that the tokenizer pads to.

    `model` is a `CLIPModel` (both towers) or a `CLIPTextModelWithProjection` (text only, as
    `load_clip` gives when no image tower is asked for).
    """

    def __init__(self, model, tokenizer, image_processor, name: str, device: torch.device) -> None:
        self.model = freeze(model, device)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.device = device
        text_config = getattr(model.config, "text_config", model.config)  # a CLIPModel, or its text tower alone
        self.bos_id = int(tokenizer.bos_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self.context_len = int(text_config.max_position_embeddings)

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.model.text_model.embeddings.token_embedding.weight

    @property
    def max_prompt_len(self) -> int:
        return self.context_len - 2

    def encode_prompt_embeddings(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        batch = prompt_embeds.shape[0]
        table = self.embedding_table
        bos = table[self.bos_id].expand(batch, 1, -1)
        eos = table[self.eos_id].expand(batch, 1, -1)
        inputs = torch.cat([bos, prompt_embeds.to(table.dtype), eos], dim=1)
        text_model = self.model.text_model
        hidden = text_model.embeddings(inputs_embeds=inputs)
        mask = _causal_mask(hidden.shape[1], hidden.device, hidden.dtype)
        hidden = text_model.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        pooled = text_model.final_layer_norm(hidden[:, -1])
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.context_len, return_tensors="pt"
        ).to(self.device)
        pooled = self.model.text_model(**batch).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)

    def tokenize(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [i for i in ids if i not in (self.bos_id, self.eos_id)]

    @property
    def supports_images(self) -> bool:
        return self.image_processor is not None and getattr(self.model, "vision_model", None) is not None

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not self.supports_images:
            return super().encode_images(images)
        return image_features(self.model, self.image_processor, images, self.device)

    def release_image_tower(self) -> None:
        self.model.vision_model = self.model.visual_projection = None


@torch.no_grad()
def image_features(vision, image_processor, images: Sequence[Image.Image], device: torch.device) -> torch.Tensor:
    """Unit-norm features of `images` under `vision` (a CLIPModel or a CLIPVisionModelWithProjection)."""
    pixels = image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    pooled = vision.vision_model(pixel_values=pixels.to(device, vision.dtype)).pooler_output
    return F.normalize(vision.visual_projection(pooled).float(), dim=-1)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """A tower loaded from a whole CLIPModel checkpoint leaves the other tower's weights unused: no report on that."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)


def _tower_config(location: str, tower: str):
    """The text or vision config of the CLIP at `location`, with the projection size of the whole model."""
    from transformers import CLIPConfig

    config = CLIPConfig.from_pretrained(location)
    tower_config = getattr(config, f"{tower}_config")
    tower_config.projection_dim = config.projection_dim
    return tower_config


def _image_processor(location: str):
    from transformers import CLIPImageProcessorPil

    try:
        return CLIPImageProcessorPil.from_pretrained(location)
    except OSError:
        return None


def load_clip(location: str, tokenizer, name: str, device: torch.device, dtype: torch.dtype, image_tower: bool):
    """The CLIP at `location` (hub id or folder); without `image_tower`, only its text tower's weights are read."""
    from transformers import CLIPModel, CLIPTextModelWithProjection

    if image_tower:
        return CLIPEncoder(
            CLIPModel.from_pretrained(location, dtype=dtype), tokenizer, _image_processor(location), name, device
        )
    with _quiet_transformers():
        config = _tower_config(location, "text")
        model = text_tower_from_blocks(location, config, device, dtype)
        if model is None:
            model = CLIPTextModelWithProjection.from_pretrained(location, config=config, dtype=dtype)
    return CLIPEncoder(model, tokenizer, None, name=name, device=device)


def _on_meta_with_checkpoint(
    location: str, model_class: type[PreTrainedModel], config: PretrainedConfig
) -> tuple[PreTrainedModel, SafetensorsCheckpoint] | None:
    """`model_class(config)` with every parameter and buffer on the meta device (no memory), and the
    safetensors checkpoint at `location` that holds all its weights; None without one."""
    checkpoint = SafetensorsCheckpoint.find(location)
    if checkpoint is None:
        return None
    with torch.device("meta"):
        model = model_class(config)
    return (model, checkpoint) if checkpoint.has(model.state_dict()) else None


def _restore_position_ids(embeddings: nn.Module) -> None:
    """CLIP's embeddings keep their position ids in a buffer that checkpoints leave out: rebuild it."""
    count = embeddings.position_embedding.num_embeddings
    device = embeddings.position_embedding.weight.device
    embeddings.register_buffer("position_ids", torch.arange(count, device=device).expand((1, -1)), persistent=False)


def text_tower_from_blocks(
    location: str, config: CLIPTextConfig, device: torch.device, dtype: torch.dtype
) -> CLIPTextModelWithProjection | None:
    """CLIP's text tower read from the safetensors at `location` one block at a time, each into memory
    of its own (see models.streaming), so loading peaks at the tower plus one block, also when
    casting. None unless `location` is a folder holding all its weights."""
    from transformers import CLIPTextModelWithProjection

    found = _on_meta_with_checkpoint(location, CLIPTextModelWithProjection, config)
    if found is None:
        return None
    text, checkpoint = found
    tower = text.text_model
    blocks = {
        "text_model.embeddings": tower.embeddings,
        **{f"text_model.encoder.layers.{index}": layer for index, layer in enumerate(tower.encoder.layers)},
        "text_model.final_layer_norm": tower.final_layer_norm,
        "text_projection": text.text_projection,
    }
    load_eagerly(blocks, checkpoint, device, dtype)
    _restore_position_ids(tower.embeddings)
    return text


def clip_image_features(
    location: str, images: Sequence[Image.Image], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Features of `images` under the CLIP at `location`, reading only its image tower's weights (freed on return)."""
    from transformers import CLIPVisionModelWithProjection

    processor = _image_processor(location)
    if processor is None:
        raise HardpromptError(f"the CLIP at {location} has no image processor (preprocessor_config.json)")
    with _quiet_transformers():
        config = _tower_config(location, "vision")
        vision = streamed_vision_tower(location, config, device, dtype)
        if vision is None:
            vision = freeze(CLIPVisionModelWithProjection.from_pretrained(location, config=config, dtype=dtype), device)
    return image_features(vision, processor, images, device)


def streamed_vision_tower(
    location: str, config: CLIPVisionConfig, device: torch.device, dtype: torch.dtype
) -> CLIPVisionModelWithProjection | None:
    """CLIP's image tower whose blocks are read from the safetensors at `location` as they run (see
    models.streaming): the peak is one block. None unless `location` is a folder holding them all."""
    from transformers import CLIPVisionModelWithProjection

    found = _on_meta_with_checkpoint(location, CLIPVisionModelWithProjection, config)
    if found is None:
        return None
    vision, checkpoint = found
    tower = vision.vision_model
    load_eagerly({"vision_model.embeddings": tower.embeddings}, checkpoint, device, dtype)
    _restore_position_ids(tower.embeddings)
    blocks = {
        "vision_model.pre_layrnorm": tower.pre_layrnorm,
        **{f"vision_model.encoder.layers.{index}": layer for index, layer in enumerate(tower.encoder.layers)},
        "vision_model.post_layernorm": tower.post_layernorm,
        "visual_projection": vision.visual_projection,
    }
    stream_blocks(blocks, checkpoint, device, dtype)
    return vision.eval()
