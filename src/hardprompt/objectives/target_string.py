"""Make a causal LM continue with a given target text: loss = the target's NLL after the prompt.

The model reads `[specials] instruction PROMPT suffix target` (token lists joined; instruction and
suffix are optional, and the target is tokenized as given, so start it with a space to begin a new
word). A chat model's template fits this layout: the instruction is the template up to the user's
text, the suffix what closes the user's turn and opens the assistant's (as nanoGCG lays it out).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import HardpromptError
from ..models.causal_lm import CausalLM
from .base import Evaluation
from .lm_sequences import NearestTokens, prompt_fluency, prompted_hidden_states


class LMTargetString:
    """loss = mean NLL (B,) of the target's tokens; score = −loss. Logits only at the target positions."""

    def __init__(self, lm: CausalLM, target: str, instruction: str = "", suffix: str = "", max_rows: int = 256) -> None:
        self.lm = lm
        self.target_ids = lm.tokenize(target)
        if not self.target_ids:
            raise HardpromptError("the target text is empty")
        self.head_ids = list(lm.prefix_ids) + (lm.tokenize(instruction) if instruction else [])
        self.suffix_ids = lm.tokenize(suffix) if suffix else []
        self.max_rows = max_rows
        self._head = lm.embed(self.head_ids).detach()
        self._tail = lm.embed(self.suffix_ids + self.target_ids)[None].detach()
        self._targets = torch.tensor(self.target_ids, device=lm.device)
        self._nearest = NearestTokens(lm.embedding_table)

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.lm.embedding_table

    def new_step(self) -> None:
        """One fixed target: nothing to draw."""

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        """NLL of the target after each prompt row; score = −NLL."""
        if not torch.is_grad_enabled() and len(prompt_embeds) > self.max_rows:
            parts = [self.evaluate(chunk) for chunk in prompt_embeds.split(self.max_rows)]
            return Evaluation(loss=torch.cat([p.loss for p in parts]), score=torch.cat([p.score for p in parts]))
        hidden = prompted_hidden_states(self.lm, self._head, prompt_embeds, self._tail)[:, 0]
        start = len(self.head_ids) + prompt_embeds.shape[1] + len(self.suffix_ids) - 1
        if start < 0:
            raise HardpromptError("an empty prompt with no instruction and no start token cannot predict a target")
        logits = self.lm.logits(hidden[:, start : start + len(self.target_ids)])
        rows = logits.shape[0]
        nll = F.cross_entropy(logits.flatten(0, 1), self._targets.repeat(rows), reduction="none").view(rows, -1)
        loss = nll.mean(1)
        return Evaluation(loss=loss, score=-loss.detach())

    def fluency_loss(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Mean next-token NLL (B,) of each prompt's own (nearest) tokens after the instruction: for FluentPrompt."""
        hidden = prompted_hidden_states(self.lm, self._head, prompt_embeds, self._tail[:, :0])[:, 0]
        return prompt_fluency(self.lm, hidden, self._nearest(prompt_embeds), len(self.head_ids))

    @torch.no_grad()
    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        """−NLL of the target after this prompt."""
        embeds = self.lm.embed(list(token_ids))[None]
        return self.evaluate(embeds).score.item()

    @torch.no_grad()
    def says_target(self, token_ids: Sequence[int]) -> bool:
        """Whether greedy decoding after this prompt (and the suffix) produces exactly the target's tokens."""
        ids = self.head_ids + list(token_ids) + self.suffix_ids
        inputs = torch.tensor([ids], device=self.lm.device)
        tokenizer = self.lm.tokenizer
        output = self.lm.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=len(self.target_ids),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        return output[0, len(ids) :].tolist() == self.target_ids
