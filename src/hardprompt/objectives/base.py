"""The objective interface: what every optimizer calls, and nothing model-specific."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class Evaluation:
    """One evaluation of a batch of prompts (one row per restart)."""

    loss: torch.Tensor
    """Shape (restarts,); differentiable; what the optimizer minimizes (may use a minibatch)."""
    score: torch.Tensor
    """Shape (restarts,); detached; higher is better; on all targets. Used to keep the best prompt."""


class Objective(Protocol):
    """A differentiable function of prompt embeddings, plus exact scoring of token ids."""

    @property
    def embedding_table(self) -> torch.Tensor:
        """The frozen token embedding matrix (vocab_size, dim) that prompts are built from."""
        ...

    def new_step(self) -> None:
        """Draw this step's minibatch of targets; evaluations until the next call share it."""
        ...

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        """Loss (on this step's minibatch) and score (on all targets) of prompts (batch, prompt_len, dim)."""
        ...

    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        """The score of one prompt given as token ids (any length, no special tokens)."""
        ...


@dataclass(frozen=True)
class TableBlock:
    """Columns of an embedding table that belong to one encoder, and that encoder's weight."""

    width: int
    weight: float = 1.0


@runtime_checkable
class SupportsTableBlocks(Protocol):
    """An objective whose embedding table is several encoders' tables side by side (vocab, d1 + d2 + ...).

    A prompt row then spans every encoder; the nearest token of a row is the one with the highest
    weighted sum of per-block cosines (`optim.pez.NearestTokenProjection`).
    """

    @property
    def table_blocks(self) -> tuple[TableBlock, ...]:
        """The blocks from left to right; their widths add up to the table's dim."""
        ...


def table_blocks(objective: Objective) -> tuple[TableBlock, ...]:
    """The objective's table blocks; () for one plain table."""
    return tuple(objective.table_blocks) if isinstance(objective, SupportsTableBlocks) else ()


@runtime_checkable
class SupportsFluency(Protocol):
    """An objective that can also say how fluent a prompt is (used by FluentPrompt when present)."""

    def fluency_loss(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Differentiable (batch,) mean negative log-likelihood per token of the prompts under a language model."""
        ...


@runtime_checkable
class SupportsBatchScoring(Protocol):
    """An objective that scores several prompts of one length in one call (the round trip uses it)."""

    def score_token_ids_batch(self, rows: Sequence[Sequence[int]]) -> list[float]:
        """Scores of prompts given as token ids, all of the same length; each as `score_token_ids` gives it."""
        ...


@runtime_checkable
class SupportsTargetTokens(Protocol):
    """An objective whose target is text: the target's own token ids, in order (distill's long prompt).

    A search may start from a pick of them (the hybrid does); () when the target is not text.
    """

    @property
    def target_token_ids(self) -> tuple[int, ...]: ...


def target_token_ids(objective: Objective) -> tuple[int, ...]:
    """The objective's target token ids; () for an objective whose target is not text."""
    return tuple(objective.target_token_ids) if isinstance(objective, SupportsTargetTokens) else ()


@runtime_checkable
class SupportsTokenScan(Protocol):
    """An objective whose single-token prompts rank the tokens worth building a prompt from.

    True for feature similarity, where a prompt's features blend its tokens' (an image's
    "orange", "heart" and "background" each score well alone); the hybrid then starts from a
    token scan (`optim.scan`). Measured on shapes-world images only, so other objectives say nothing.
    """

    @property
    def token_scan(self) -> bool: ...


def token_scan(objective: Objective) -> bool:
    """Whether the objective says a token scan suits it (False when it says nothing)."""
    return bool(objective.token_scan) if isinstance(objective, SupportsTokenScan) else False


@runtime_checkable
class SupportsCudaGraph(Protocol):
    """An objective that may say its evaluation has fixed shapes and no host round trips (graph-capturable).

    `fixed_shapes` True promises that every step evaluates the same computation on the same
    tensors (no minibatch drawn on the host, no data-dependent shapes), so a captured step can be
    replayed.
    """

    @property
    def fixed_shapes(self) -> bool: ...


@runtime_checkable
class BatchedObjective(Protocol):
    """Independent problems evaluated in one batch: rows i·k … (i+1)·k − 1 of a batch of problems·k rows
    belong to problem i (k rows per problem, the same k for all), and a row's loss and score depend
    on that row alone. `problem(i)` is the ordinary objective of problem i, for scoring its strings."""

    problems: int

    @property
    def embedding_table(self) -> torch.Tensor: ...

    def new_step(self) -> None: ...

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation: ...

    def problem(self, index: int) -> Objective:
        """The single-problem objective of problem `index`."""
        ...
