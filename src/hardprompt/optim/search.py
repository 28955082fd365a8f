"""Building blocks shared by the optimizers: common settings, chunked exact evaluation, token gradients.

Everything here sees an `Objective` and a `Vocabulary`, never a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import HardpromptError, require_finite_fields, require_seed
from ..objectives.base import Evaluation, Objective
from ..vocab import Vocabulary
from .tracking import SearchTracker


@dataclass
class SearchConfig:
    """Settings every method shares: prompt length, budgets, seed, and the final candidate pool."""

    prompt_len: int = 16
    steps: int = 500
    batch_size: int | None = None
    """Targets per step for objectives with many targets."""
    seed: int = 0
    max_seconds: float | None = None
    """Stop after this much wall-clock time, whatever `steps` says."""
    max_forward_passes: int | None = None
    """Stop before evaluating more prompt rows than this (candidates included)."""
    candidates: int = 8
    """Best distinct prompts kept for the final round-trip check."""
    patience: int | None = None
    """Stop when the best round-trip score has not improved for this many steps."""
    eval_batch_size: int = 128
    """Prompt rows per objective call when evaluating candidates (memory, not results)."""
    progress: bool = True

    def validate(self, max_prompt_len: int | None = None) -> None:
        """Raise HardpromptError on settings that cannot run."""
        validate_common(self, max_prompt_len)
        if self.eval_batch_size < 1:
            raise HardpromptError(f"eval batch size must be at least 1 (got {self.eval_batch_size})")


def validate_common(config, max_prompt_len: int | None = None) -> None:
    """Checks of the settings method configs share (prompt length, steps, budgets, batch size, lr, restarts).

    Every float setting must be finite (nan and inf are refused), and the seed must fit torch's generators.
    """
    require_finite_fields(config)
    require_seed(config.seed)
    if config.prompt_len < 1:
        raise HardpromptError(f"prompt length must be at least 1 (got {config.prompt_len})")
    if max_prompt_len is not None and config.prompt_len > max_prompt_len:
        raise HardpromptError(
            f"prompt length {config.prompt_len} does not fit the model's context (at most {max_prompt_len})"
        )
    if config.steps < 1:
        raise HardpromptError(f"steps must be at least 1 (got {config.steps})")
    if config.batch_size is not None and config.batch_size < 1:
        raise HardpromptError(f"batch size must be at least 1 (got {config.batch_size})")
    if config.max_seconds is not None and config.max_seconds <= 0:
        raise HardpromptError(f"max seconds must be positive (got {config.max_seconds})")
    if config.max_forward_passes is not None and config.max_forward_passes < 1:
        raise HardpromptError(f"max forward passes must be at least 1 (got {config.max_forward_passes})")
    if getattr(config, "lr", 1.0) <= 0:
        raise HardpromptError(f"learning rate must be positive (got {config.lr})")
    if config.patience is not None and config.patience < 1:
        raise HardpromptError(f"patience must be at least 1 step (got {config.patience})")
    if getattr(config, "weight_decay", 0.0) < 0:
        raise HardpromptError(f"weight decay must not be negative (got {config.weight_decay})")
    if getattr(config, "restarts", 1) < 1:
        raise HardpromptError(f"restarts must be at least 1 (got {config.restarts})")


def make_tracker(vocab: Vocabulary, config, method: str, objectives: list[Objective]) -> SearchTracker:
    """A SearchTracker with the budgets of `config`, for one problem per objective (searched together)."""
    return SearchTracker(
        vocab,
        steps=config.steps,
        max_seconds=config.max_seconds,
        max_forward_passes=config.max_forward_passes,
        pool_size=config.candidates,
        progress=config.progress,
        description=method,
        method=method,
        objectives=objectives,
        patience=config.patience,
    )


def affordable(tracker: SearchTracker, rows: int) -> int:
    """How many of `rows` prompt rows the forward-pass budget still allows."""
    left = tracker.forward_passes_left
    return rows if left is None else min(rows, left)


@torch.no_grad()
def evaluate_ids(
    objective: Objective, table: torch.Tensor, token_ids: torch.Tensor, tracker: SearchTracker, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and score (both (N,), on CPU) of prompts given as token ids (N, L), `chunk` rows per call."""
    losses, scores = [], []
    for start in range(0, len(token_ids), chunk):
        rows = token_ids[start : start + chunk].to(table.device)
        evaluation = objective.evaluate(table[rows])
        tracker.count_forward_passes(len(rows))
        losses.append(evaluation.loss.detach().float().cpu())
        scores.append(evaluation.score.detach().float().cpu())
    return torch.cat(losses), torch.cat(scores)


def evaluate_until(
    objective: Objective,
    table: torch.Tensor,
    token_ids: torch.Tensor,
    tracker: SearchTracker,
    chunk: int,
    stop: Callable[[], bool],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`evaluate_ids`, asking `stop` before each call of `chunk` rows; None when it stopped before the last."""
    losses, scores = evaluate_prefix(objective, table, token_ids, tracker, chunk, stop)
    return (losses, scores) if len(scores) == len(token_ids) else None


def evaluate_prefix(
    objective: Objective,
    table: torch.Tensor,
    token_ids: torch.Tensor,
    tracker: SearchTracker,
    chunk: int,
    stop: Callable[[], bool],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`evaluate_ids` on the rows evaluated before `stop` said so (asked before each call of `chunk` rows)."""
    losses, scores = [torch.empty(0)], [torch.empty(0)]
    for start in range(0, len(token_ids), chunk):
        if stop():
            break
        loss, score = evaluate_ids(objective, table, token_ids[start : start + chunk], tracker, chunk)
        losses.append(loss)
        scores.append(score)
    return torch.cat(losses), torch.cat(scores)


def evaluate_with_gradient(
    objective: Objective, embeds: torch.Tensor, tracker: SearchTracker
) -> tuple[Evaluation, torch.Tensor]:
    """The evaluation of prompts (B, L, d) and the gradient of their summed loss w.r.t. the embeddings."""
    embeds = embeds.detach().requires_grad_(True)
    evaluation = objective.evaluate(embeds)
    tracker.count_forward_passes(len(embeds))
    (gradient,) = torch.autograd.grad(evaluation.loss.sum(), embeds)
    return evaluation, gradient


class TokenGradient:
    """The gradient of the loss w.r.t. a one-hot encoding of each prompt token, over the allowed tokens.

    With embeddings e = onehot @ table, d loss / d onehot = (d loss / d e) @ table.T; only the
    allowed rows are computed, so no one-hot tensor goes through the model.
    """

    def __init__(self, table: torch.Tensor, allowed_ids: torch.Tensor) -> None:
        self.table = table.detach()
        self.allowed_ids = allowed_ids.to(table.device)
        self.allowed_table = self.table[self.allowed_ids].float()

    def __call__(
        self, objective: Objective, token_ids: torch.Tensor, tracker: SearchTracker
    ) -> tuple[Evaluation, torch.Tensor]:
        """Evaluation of `token_ids` (B, L) and the one-hot gradient (B, L, allowed)."""
        evaluation, gradient = evaluate_with_gradient(objective, self.table[token_ids.to(self.table.device)], tracker)
        return evaluation, gradient.float() @ self.allowed_table.T


def single_swaps(token_ids: torch.Tensor, positions: torch.Tensor, new_tokens: torch.Tensor) -> torch.Tensor:
    """Copies of one prompt (L,) with one token replaced each: row i has new_tokens[i] at positions[i]."""
    candidates = token_ids.unsqueeze(0).repeat(len(positions), 1)
    candidates[torch.arange(len(positions)), positions] = new_tokens
    return candidates


def round_trips(vocab: Vocabulary, candidates: torch.Tensor) -> torch.Tensor:
    """Mask (N,) of the prompts whose decoded text re-tokenizes into exactly the same ids."""
    rows = candidates.tolist()
    texts = vocab.tokenizer.batch_decode(rows, skip_special_tokens=True)
    return torch.tensor([vocab.encode(text.strip()) == row for text, row in zip(texts, rows, strict=True)])


def deduplicate(candidates: torch.Tensor) -> torch.Tensor:
    """The distinct rows of `candidates`, in their first-seen order."""
    seen: set[tuple[int, ...]] = set()
    keep = []
    for index, row in enumerate(candidates.tolist()):
        key = tuple(row)
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return candidates[keep]
