"""Few-shot classification with a causal LM: template + verbalizer, prompt prepended (paper §5).

The model reads `[specials] PROMPT + " " + template(input)` and the class score is the logit of
each verbalizer word's first token at the next-token position where the template says {mask}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import Example
from ..errors import HardpromptError
from ..models.causal_lm import CausalLM
from .base import Evaluation
from .lm_sequences import NearestTokens, prompt_fluency, prompted_hidden_states, right_pad


def parse_verbalizer(spec: str) -> dict[str, str]:
    """'0:negative,1:positive' → {'0': 'negative', '1': 'positive'} (label before the last colon)."""
    verbalizer: dict[str, str] = {}
    for item in spec.split(","):
        label, colon, word = item.strip().rpartition(":")
        if not colon or not label.strip() or not word.strip():
            raise HardpromptError(f"verbalizer entry {item.strip()!r} is not LABEL:WORD")
        if label.strip() in verbalizer:
            raise HardpromptError(f"label {label.strip()!r} appears twice in the verbalizer")
        verbalizer[label.strip()] = word.strip()
    if len(verbalizer) < 2:
        raise HardpromptError("the verbalizer needs at least two labels")
    return verbalizer


@dataclass(frozen=True)
class TaskFormat:
    """A template with {input} and {mask}, and a verbalizer label → word."""

    template: str
    verbalizer: dict[str, str]

    def __post_init__(self) -> None:
        if self.template.count("{mask}") != 1:
            raise HardpromptError(f"the template must contain {{mask}} exactly once: {self.template!r}")
        if "{input}" not in self.template.split("{mask}")[0]:
            raise HardpromptError(f"the template must contain {{input}} before {{mask}}: {self.template!r}")

    @property
    def labels(self) -> list[str]:
        return list(self.verbalizer)

    def fill(self, text: str) -> str:
        """The template up to {mask}, with the input filled in (no trailing space)."""
        return self.template.split("{mask}")[0].replace("{input}", text).rstrip()

    @property
    def word_prefix(self) -> str:
        """' ' when the template has a space before {mask}: the verbalizer words start a new word."""
        before = self.template.split("{mask}")[0]
        return " " if before != before.rstrip() else ""

    def check_labels(self, examples: Sequence[Example], source: str = "the data") -> None:
        """Raise when an example's label is missing from the verbalizer."""
        for example in examples:
            if example.label not in self.verbalizer:
                known = ", ".join(self.verbalizer)
                raise HardpromptError(
                    f"label {example.label!r} in {source} is missing from the verbalizer (labels: {known})"
                )


def length_groups(
    lengths: torch.Tensor, max_rows: int, slack: float = 1.25, min_padding: int = 64
) -> list[torch.Tensor]:
    """Indices of sequences grouped by length, at most `max_rows` per group, shortest first.

    A group closes when the next sequence would make its padded tokens exceed both `slack` × its
    real tokens and its real tokens + `min_padding`: each extra model call re-reads all weights, so
    a few padded tokens are cheaper than another call.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index in lengths.argsort(stable=True).tolist():
        length = int(lengths[index])
        real = total + length
        padded = (len(current) + 1) * length
        if current and (len(current) >= max_rows or padded > max(slack * real, real + min_padding)):
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += length
    groups.append(current)
    return [torch.tensor(group, dtype=torch.long) for group in groups]


class LMClassification:
    """loss = γ·fluency + (1 − γ)·cross-entropy over the verbalizer logits; see the module docstring.

    - `evaluate`: loss and score on this step's minibatch of training examples; score = −loss.
    - `score_token_ids`: accuracy of a prompt on the scoring set (the holdout set; the training set if none).
    - `accuracy`: accuracy of a prompt (token ids or embeddings) on any labelled examples.
    """

    def __init__(
        self,
        lm: CausalLM,
        task: TaskFormat,
        train: Sequence[Example],
        holdout: Sequence[Example] | None = None,
        fluency: float = 0.0,
        batch_size: int = 32,
        seed: int = 0,
        max_rows: int = 256,
        share_prefix_above: int = 64,
    ) -> None:
        if not 0.0 <= fluency <= 1.0:
            raise HardpromptError(f"the fluency weight must be in [0, 1] (got {fluency})")
        if batch_size < 1:
            raise HardpromptError(f"batch size must be at least 1 (got {batch_size})")
        if not train:
            raise HardpromptError("no training examples")
        task.check_labels(train, "the training data")
        if holdout:
            task.check_labels(holdout, "the holdout data")
        self.lm = lm
        self.task = task
        self.fluency = fluency
        self.batch_size = batch_size
        self.max_rows = max_rows
        self.share_prefix_above = share_prefix_above
        self.holdout = list(holdout) if holdout else list(train)
        self.train_size = len(train)
        self.head_ids = list(lm.prefix_ids)
        self._head = lm.embed(self.head_ids).detach()
        self.word_ids = self._first_tokens(task)
        self._nearest = NearestTokens(lm.embedding_table)
        self._generator = torch.Generator().manual_seed(seed)
        self._train_ids, self._train_lengths = self._tokenize(train, after_prompt=True)
        self._train_labels = self._label_ids(train)
        self._order = torch.empty(0, dtype=torch.long)
        self._batch = torch.arange(min(batch_size, len(train)))
        self._cache: dict[tuple[tuple[Example, ...], bool], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _first_tokens(self, task: TaskFormat) -> torch.Tensor:
        ids = []
        for label, word in task.verbalizer.items():
            tokens = self.lm.tokenize(task.word_prefix + word)
            if not tokens:
                raise HardpromptError(f"the verbalizer word for label {label!r} is empty")
            ids.append(tokens[0])
        if len(set(ids)) < len(ids):
            raise HardpromptError("two verbalizer words start with the same token; choose distinct words")
        return torch.tensor(ids, device=self.lm.device)

    def _tokenize(self, examples: Sequence[Example], after_prompt: bool) -> tuple[torch.Tensor, torch.Tensor]:
        separator = " " if after_prompt else ""
        return right_pad([self.lm.tokenize(separator + self.task.fill(e.text)) for e in examples])

    def _label_ids(self, examples: Sequence[Example]) -> torch.Tensor:
        index = {label: i for i, label in enumerate(self.task.labels)}
        return torch.tensor([index[e.label] for e in examples], device=self.lm.device)

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.lm.embedding_table

    def new_step(self) -> None:
        """Next minibatch of training examples: epochs of a seeded random order."""
        count = len(self._train_labels)
        if count <= self.batch_size:
            return
        if len(self._order) < self.batch_size:
            self._order = torch.cat([self._order, torch.randperm(count, generator=self._generator)])
        self._batch, self._order = self._order[: self.batch_size], self._order[self.batch_size :]

    def _class_logits(self, prompt_embeds: torch.Tensor, tail_ids: torch.Tensor, lengths: torch.Tensor):
        """Verbalizer logits (B, N, C) and the hidden states (B, P, dim) of each prompt's prefix.

        The N inputs (token ids right-padded, and their lengths) go in groups of similar length
        (`length_groups`), each padded only to its own longest member; the logits come back in the
        inputs' order. The prefix (start tokens + prompt, P positions) is the same for every input:
        when that spares more than `share_prefix_above` token positions, it is encoded once per
        prompt and the inputs continue it from its keys and values (one more model call).
        """
        batch, dim = len(prompt_embeds), prompt_embeds.shape[-1]
        dtype = self.lm.embedding_table.dtype
        prefix = torch.cat([self._head.to(dtype).expand(batch, -1, -1), prompt_embeds.to(dtype)], dim=1)
        prefix_len = prefix.shape[1]
        shared = prefix_len > 0 and (len(lengths) - 1) * prefix_len > self.share_prefix_above
        prefix_hidden, past = self.lm.encode_prefix(prefix) if shared else (None, None)
        offset = 0 if shared else prefix_len
        groups = length_groups(lengths + prefix_len, max(1, self.max_rows // batch))
        parts = []
        for group in groups:
            count, group_lengths = len(group), lengths[group]
            tails = self.lm.embed(tail_ids[group, : int(group_lengths.max())])[None].expand(batch, -1, -1, -1)
            if past is None:
                sequences = torch.cat([prefix[:, None].expand(-1, count, -1, -1), tails], dim=2)
                hidden = self.lm.hidden_states(sequences.reshape(batch * count, -1, dim))
            else:
                group_past = [(k.repeat_interleave(count, 0), v.repeat_interleave(count, 0)) for k, v in past]
                hidden = self.lm.hidden_states(tails.reshape(batch * count, -1, dim), group_past)
            hidden = hidden.view(batch, count, -1, dim)
            if prefix_hidden is None:
                prefix_hidden = hidden[:, 0, :prefix_len]
            mask_positions = (offset + group_lengths - 1).to(hidden.device)
            selected = hidden[:, torch.arange(count, device=hidden.device), mask_positions]
            parts.append(self.lm.logits(selected, self.word_ids))
        inverse = torch.cat(groups).argsort().to(parts[0].device)
        return torch.cat(parts, dim=1)[:, inverse], prefix_hidden

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        """Loss and score (−loss) on this step's minibatch, per prompt row.

        Without gradients (candidate scoring), prompt rows go through the model in chunks of
        at most `max_rows` sequences.
        """
        rows_per_chunk = max(1, self.max_rows // len(self._batch))
        if torch.is_grad_enabled() or len(prompt_embeds) <= rows_per_chunk:
            return self._evaluate(prompt_embeds)
        parts = [self._evaluate(chunk) for chunk in prompt_embeds.split(rows_per_chunk)]
        return Evaluation(loss=torch.cat([p.loss for p in parts]), score=torch.cat([p.score for p in parts]))

    def _evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        batch = self._batch
        logits, first_hidden = self._class_logits(prompt_embeds, self._train_ids[batch], self._train_lengths[batch])
        labels = self._train_labels[batch.to(self._train_labels.device)]
        rows = logits.shape[0]
        task_loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat(rows), reduction="none").view(rows, -1)
        loss = (1 - self.fluency) * task_loss.mean(1)
        if self.fluency > 0:
            ids = self._nearest(prompt_embeds)
            loss = loss + self.fluency * prompt_fluency(self.lm, first_hidden, ids, len(self.head_ids))
        return Evaluation(loss=loss, score=-loss.detach())

    def fluency_loss(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Mean next-token NLL (B,) of each prompt's own (nearest) tokens, read alone: for FluentPrompt."""
        empty = prompt_embeds.new_zeros(1, 0, prompt_embeds.shape[-1])
        hidden = prompted_hidden_states(self.lm, self._head, prompt_embeds, empty)[:, 0]
        return prompt_fluency(self.lm, hidden, self._nearest(prompt_embeds), len(self.head_ids))

    def _scoring_set(self, examples: Sequence[Example], after_prompt: bool):
        key = (tuple(examples), after_prompt)
        if key not in self._cache:
            self.task.check_labels(examples)
            ids, lengths = self._tokenize(examples, after_prompt)
            self._cache[key] = (ids, lengths, self._label_ids(examples))
        return self._cache[key]

    @torch.no_grad()
    def predictions(self, prompt_embeds: torch.Tensor, examples: Sequence[Example]) -> torch.Tensor:
        """Predicted class indices (N,) for one prompt given as embeddings (L, dim)."""
        ids, lengths, _ = self._scoring_set(examples, after_prompt=prompt_embeds.shape[0] > 0)
        logits, _ = self._class_logits(prompt_embeds[None], ids, lengths)
        return logits[0].argmax(-1)

    def accuracy(self, prompt: Sequence[int] | torch.Tensor, examples: Sequence[Example]) -> float:
        """Accuracy on `examples` of a prompt: token ids, or embeddings (L, dim) for a soft prompt."""
        if isinstance(prompt, torch.Tensor) and prompt.is_floating_point():
            embeds = prompt.detach()
        else:
            embeds = self.lm.embed(list(prompt))
        _, _, labels = self._scoring_set(examples, after_prompt=embeds.shape[0] > 0)
        return (self.predictions(embeds, examples) == labels).float().mean().item()

    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        """Accuracy on the holdout set (the training set when there is none)."""
        return self.accuracy(token_ids, self.holdout)
