"""One prompt for several text encoders that share a vocabulary (SDXL reads a prompt with two CLIPs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import HardpromptError
from .base import Evaluation, Objective, TableBlock, target_token_ids, token_scan


def check_model_weights(weights: Sequence[float], models: int) -> None:
    """Raise unless there is one non-negative weight per model and their sum is positive."""
    if len(weights) != models:
        raise HardpromptError(f"{len(weights)} model weights for {models} models: give one weight per model")
    if any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise HardpromptError(f"model weights must be non-negative with a positive sum (got {list(weights)})")


class MultiEncoderObjective:
    """The weighted sum of per-encoder objectives, over the encoders' embedding tables side by side.

    The embedding table is (vocab, d1 + d2 + ...): a prompt row is one continuous prompt per encoder,
    each encoder reading its own block, so PEZ's update is that of one prompt per encoder. The loss
    is Σ wᵢ lossᵢ, hence a token gradient (gradient @ tableᵀ over the whole row) is the weighted sum
    of the per-encoder token gradients, which is what GCG and AutoPrompt rank candidates by. The
    score is the weighted mean Σ wᵢ scoreᵢ / Σ wᵢ; `scores_by_model` gives each encoder's own.
    `table_blocks` tells the nearest-token projection to sum per-encoder cosines, weighted alike.
    """

    def __init__(self, names: Sequence[str], objectives: Sequence[Objective], weights: Sequence[float]) -> None:
        if len(names) != len(objectives) or not objectives:
            raise HardpromptError("give one name per objective")
        check_model_weights(weights, len(objectives))
        tables = [objective.embedding_table.detach() for objective in objectives]
        if len({len(table) for table in tables}) > 1:
            raise HardpromptError("the models' embedding tables have different numbers of tokens")
        self.names = list(names)
        self.objectives = list(objectives)
        self.weights = [float(weight) for weight in weights]
        self.widths = [table.shape[1] for table in tables]
        self._table = torch.cat(tables, dim=1)

    @property
    def embedding_table(self) -> torch.Tensor:
        return self._table

    @property
    def target_token_ids(self) -> tuple[int, ...]:
        """The first encoder's target token ids (the encoders share one vocabulary)."""
        return target_token_ids(self.objectives[0])

    @property
    def token_scan(self) -> bool:
        """Whether every encoder's objective suits a token scan."""
        return all(token_scan(objective) for objective in self.objectives)

    @property
    def table_blocks(self) -> tuple[TableBlock, ...]:
        return tuple(TableBlock(width, weight) for width, weight in zip(self.widths, self.weights, strict=True))

    def new_step(self) -> None:
        for objective in self.objectives:
            objective.new_step()

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        parts = prompt_embeds.split(self.widths, dim=-1)
        evaluations = [objective.evaluate(part) for objective, part in zip(self.objectives, parts, strict=True)]
        loss = sum(weight * e.loss for weight, e in zip(self.weights, evaluations, strict=True))
        score = sum(weight * e.score for weight, e in zip(self.weights, evaluations, strict=True))
        return Evaluation(loss=loss, score=score / sum(self.weights))

    def _scores(self, token_ids: Sequence[int]) -> list[float]:
        return [objective.score_token_ids(token_ids) for objective in self.objectives]

    def scores_by_model(self, token_ids: Sequence[int]) -> dict[str, float]:
        """Each encoder's own score of the prompt given as token ids, by model name."""
        return dict(zip(self.names, self._scores(token_ids), strict=True))

    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        scores = self._scores(token_ids)
        return sum(weight * score for weight, score in zip(self.weights, scores, strict=True)) / sum(self.weights)
