"""Random search, the floor: random single-token swaps, evaluated exactly, the best kept if it is better."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import HardpromptError
from ..objectives.base import Objective
from ..vocab import Vocabulary
from .pez import random_allowed_ids
from .result import Result
from .search import SearchConfig, affordable, evaluate_ids, make_tracker, single_swaps


@dataclass
class RandomSearchConfig(SearchConfig):
    """Each step evaluates the current prompt and `search_width` random single-token swaps of it."""

    steps: int = 1000
    search_width: int = 32

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if self.search_width < 1:
            raise HardpromptError(f"search width must be at least 1 (got {self.search_width})")


def run(objective: Objective, vocab: Vocabulary, config: RandomSearchConfig | None = None) -> Result:
    """Optimize a hard prompt by random search; best by round-trip score."""
    config = config or RandomSearchConfig()
    config.validate()
    generator = torch.Generator().manual_seed(config.seed)
    table = objective.embedding_table.detach()
    allowed = vocab.allowed_ids.cpu()
    current = random_allowed_ids(vocab.allowed_ids, (config.prompt_len,), config.seed)
    tracker = make_tracker(vocab, config, "random", [objective])
    try:
        for _ in tracker.steps():
            objective.new_step()
            count = affordable(tracker, config.search_width + 1) - 1
            positions = torch.randint(config.prompt_len, (max(count, 0),), generator=generator)
            new_tokens = allowed[torch.randint(len(allowed), (max(count, 0),), generator=generator)]
            rows = torch.cat([current.unsqueeze(0), single_swaps(current, positions, new_tokens)])
            losses, scores = evaluate_ids(objective, table, rows, tracker, config.eval_batch_size)
            winner = int(losses.argmin())
            current = rows[winner]
            tracker.record(current.unsqueeze(0), scores[winner : winner + 1])
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, asdict(config))
