"""The model adapter interface: what the objectives need from a text (and image) encoder.

An adapter owns a frozen model and its tokenizer. The optimizers never see it: they see an
objective (which calls the adapter) and a `Vocabulary` (built from the adapter's tokenizer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from PIL import Image

from ..errors import HardpromptError


class TextEncoder(ABC):
    """A frozen text encoder that maps prompt embeddings to unit-norm feature vectors."""

    name: str
    tokenizer: object
    device: torch.device

    @property
    @abstractmethod
    def embedding_table(self) -> torch.Tensor:
        """The input token embedding matrix, shape (vocab_size, dim); never modified."""

    @property
    @abstractmethod
    def max_prompt_len(self) -> int:
        """The longest prompt, in tokens, that fits the context next to the special tokens."""

    @abstractmethod
    def encode_prompt_embeddings(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Features (batch, feature_dim), unit norm, of prompts given as embeddings (batch, len, dim).

        Differentiable with respect to `prompt_embeds`; the special tokens are added here.
        """

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm features (len(texts), feature_dim) of plain strings, without gradient."""

    def encode_token_ids(self, token_ids: Sequence[int]) -> torch.Tensor:
        """Features (1, feature_dim) of one prompt given as token ids (no special tokens)."""
        ids = torch.tensor([list(token_ids)], dtype=torch.long, device=self.device)
        return self.encode_prompt_embeddings(self.embedding_table[ids])

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the model would see them, without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Number of tokens in `text`, without special tokens."""
        return len(self.tokenize(text))

    @property
    def supports_images(self) -> bool:
        """True when the adapter also embeds images in the same feature space."""
        return False

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Unit-norm features (len(images), feature_dim) of RGB images, without gradient."""
        raise HardpromptError(f"model {self.name} has no image encoder; use a CLIP model or 'shapes'")

    def release_image_tower(self) -> None:
        """Free the image tower (text features are unaffected); afterwards `supports_images` is False.

        Text-only adapters have nothing to free.
        """
        return None
