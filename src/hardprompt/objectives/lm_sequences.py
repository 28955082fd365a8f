"""Building causal-LM inputs around a prompt: right-padded token lists, batched prompt × text sequences."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.causal_lm import CausalLM


def right_pad(token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (N, T) right-padded with 0 (never read: causal attention), and the lengths (N,)."""
    lengths = torch.tensor([len(ids) for ids in token_lists], dtype=torch.long)
    padded = torch.zeros(len(token_lists), int(lengths.max()) if len(token_lists) else 0, dtype=torch.long)
    for row, ids in enumerate(token_lists):
        padded[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
    return padded, lengths


def prompted_hidden_states(
    lm: CausalLM, head_embeds: torch.Tensor, prompt_embeds: torch.Tensor, tail_embeds: torch.Tensor
) -> torch.Tensor:
    """Hidden states (B, N, S, dim) of the sequences head + prompt[b] + tail[n] for every b, n.

    head_embeds (H, dim) is shared (special tokens, a fixed instruction), prompt_embeds is
    (B, L, dim), tail_embeds is (N, T, dim) right-padded; S = H + L + T. One forward pass.
    """
    batch, _, dim = prompt_embeds.shape
    count = tail_embeds.shape[0]
    dtype = lm.embedding_table.dtype
    parts = [
        head_embeds.to(dtype).expand(batch, count, -1, -1),
        prompt_embeds.to(dtype)[:, None].expand(-1, count, -1, -1),
        tail_embeds.to(dtype)[None].expand(batch, -1, -1, -1),
    ]
    sequences = torch.cat(parts, dim=2).reshape(batch * count, -1, dim)
    return lm.hidden_states(sequences).reshape(batch, count, sequences.shape[1], dim)


class NearestTokens:
    """Token ids of embedding rows: exact for hard prompts, the nearest (L2) token for soft ones."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.detach()
        self.squared_norms = self.table.float().pow(2).sum(-1)

    @torch.no_grad()
    def __call__(self, embeds: torch.Tensor) -> torch.Tensor:
        """Ids (..., L) of embeddings (..., L, dim)."""
        queries = embeds.detach().float()
        distances = self.squared_norms - 2 * queries @ self.table.float().T
        return distances.argmin(dim=-1)


def prompt_fluency(lm: CausalLM, prompt_hidden: torch.Tensor, prompt_ids: torch.Tensor, head_len: int) -> torch.Tensor:
    """Mean next-token NLL (B,) of each prompt's own tokens, from the hidden states (B, S, dim) of one sequence.

    Position p predicts token p + 1; the first prompt token is predicted only when a head
    (BOS, an instruction) precedes it. A prompt with nothing to predict has fluency 0.
    """
    batch, prompt_len = prompt_ids.shape
    first = 0 if head_len > 0 else 1
    if prompt_len - first <= 0:
        return prompt_hidden.new_zeros(batch)
    positions = torch.arange(head_len - 1 + first, head_len + prompt_len - 1, device=prompt_hidden.device)
    logits = lm.logits(prompt_hidden[:, positions])
    targets = prompt_ids[:, first:].to(logits.device)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(batch, -1).mean(1)
