"""CLIP (any Hugging Face `CLIPModel`) as a text and image encoder."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from PIL import Image

from .base import TextEncoder
from .frozen import freeze


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
    """

    def __init__(self, model, tokenizer, image_processor, name: str, device: torch.device) -> None:
        self.model = freeze(model, device)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.name = name
        self.device = device
        text_config = model.config.text_config
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
        features = self.model.get_text_features(**batch)
        features = getattr(features, "pooler_output", features)
        return F.normalize(features.float(), dim=-1)

    def tokenize(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [i for i in ids if i not in (self.bos_id, self.eos_id)]

    @property
    def supports_images(self) -> bool:
        return self.image_processor is not None and self.model.vision_model is not None

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not self.supports_images:
            return super().encode_images(images)
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.model.dtype)
        features = self.model.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)
        return F.normalize(features.float(), dim=-1)

    def release_image_tower(self) -> None:
        self.model.vision_model = self.model.visual_projection = None
