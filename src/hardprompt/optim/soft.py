"""Soft prompt: a continuous prompt optimized directly and never projected — an upper bound, NOT a hard prompt.

The result has `hard` False; its `score` is the continuous prompt's, and its `prompt` is the
nearest-token decode of the best continuous prompt, for reference only (its round-trip score
is `projected_score`, usually far below).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from ..objectives.base import Objective, table_blocks
from ..vocab import Vocabulary
from .pez import NearestTokenProjection, continuous_prompt, validate_optimizer
from .result import Result
from .search import SearchConfig, affordable, make_tracker


@dataclass
class SoftConfig(SearchConfig):
    """AdamW or Adafactor on a continuous prompt (started at random allowed tokens); `restarts` prompts in one batch."""

    steps: int = 3000
    lr: float = 0.1
    weight_decay: float = 0.0
    restarts: int = 1
    optimizer: str = "adamw"
    """"adamw" or "adafactor" (see pez.make_optimizer)."""

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        validate_optimizer(self.optimizer)


def run(objective: Objective, vocab: Vocabulary, config: SoftConfig | None = None) -> Result:
    """Optimize a continuous prompt; the result is an upper bound with a nearest-token decode for reference."""
    config = config or SoftConfig()
    config.validate()
    torch.manual_seed(config.seed)
    table = objective.embedding_table.detach()
    project = NearestTokenProjection(table, vocab.allowed_ids, blocks=table_blocks(objective))
    soft_prompt, optimizer = continuous_prompt(table, vocab.allowed_ids, config)
    tracker = make_tracker(vocab, config, "soft", [objective])
    best_soft_score = -float("inf")
    try:
        for _ in tracker.steps():
            if affordable(tracker, config.restarts) < config.restarts:
                break
            objective.new_step()
            evaluation = objective.evaluate(soft_prompt)
            tracker.count_forward_passes(config.restarts)
            optimizer.zero_grad(set_to_none=True)
            evaluation.loss.sum().backward()
            best_soft_score = max(best_soft_score, float(evaluation.score.max()))
            tracker.record(project(soft_prompt), evaluation.score)
            optimizer.step()
    except KeyboardInterrupt:
        tracker.interrupted = True
    reference = tracker.result(objective, asdict(config))
    return replace(reference, score=best_soft_score, projected_score=reference.score, hard=False)
