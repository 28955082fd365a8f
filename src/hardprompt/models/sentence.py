"""Sentence encoders (BERT family, mean pooling), such as all-MiniLM-L6-v2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import TextEncoder
from .frozen import freeze


class SentenceEncoder(TextEncoder):
    """A bidirectional encoder whose sentence feature is the mean of its last hidden states.

    This is sentence-transformers' "mean pooling + normalize" recipe: every position, the
    [CLS] and [SEP] tokens included, is averaged under the attention mask.
    """

    def __init__(self, model, tokenizer, name: str, device: torch.device, max_length: int = 256) -> None:
        self.model = freeze(model, device)
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.max_length = min(max_length, int(model.config.max_position_embeddings))
        self.cls_id = int(tokenizer.cls_token_id)
        self.sep_id = int(tokenizer.sep_token_id)
        self._table = self.model.get_input_embeddings().weight

    @property
    def embedding_table(self) -> torch.Tensor:
        return self._table

    @property
    def max_prompt_len(self) -> int:
        return self.max_length - 2

    def encode_prompt_embeddings(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        batch = prompt_embeds.shape[0]
        cls = self._table[self.cls_id].expand(batch, 1, -1)
        sep = self._table[self.sep_id].expand(batch, 1, -1)
        inputs = torch.cat([cls, prompt_embeds.to(self._table.dtype), sep], dim=1)
        mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=inputs.device)
        hidden = self.model(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        return F.normalize(hidden.mean(dim=1).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return F.normalize(pooled.float(), dim=-1)
