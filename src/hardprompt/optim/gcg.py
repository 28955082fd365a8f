"""GCG, greedy coordinate gradient (Zou et al. 2023).

Each step: the one-hot gradient gives the `top_k` most promising tokens per position; a random
batch of `search_width` single-token swaps (uniform position, uniform among its top-k) is drawn,
candidates whose decoded text does not re-tokenize to the same ids are dropped (retokenization
filter), the rest are evaluated exactly, and the best one becomes the prompt, even if it is worse
(as in GCG; the best prompt ever seen is kept by the tracker).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import HardpromptError
from ..objectives.base import Objective
from ..vocab import Vocabulary
from .pez import random_allowed_ids
from .result import Result
from .search import (
    SearchConfig,
    TokenGradient,
    affordable,
    deduplicate,
    evaluate_ids,
    make_tracker,
    round_trips,
    single_swaps,
)


@dataclass
class GCGConfig(SearchConfig):
    """GCG search; nanoGCG uses search_width 512 and top_k 256 (128 here: CPU-sized)."""

    steps: int = 500
    top_k: int = 256
    search_width: int = 128
    filter_retokenization: bool = True
    start_ids: tuple[int, ...] | None = None
    """Start from these tokens (any length) instead of `prompt_len` random allowed ones."""

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if self.top_k < 1 or self.search_width < 1:
            raise HardpromptError("top-k and search width must be at least 1")


def sample_swaps(
    current: torch.Tensor, top_tokens: torch.Tensor, count: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` copies of `current` (L,), each with one position replaced by one of its top tokens (L, k)."""
    length, k = top_tokens.shape
    positions = torch.randint(length, (count,), generator=generator)
    choices = torch.randint(k, (count,), generator=generator)
    return single_swaps(current, positions, top_tokens[positions, choices])


def run(objective: Objective, vocab: Vocabulary, config: GCGConfig | None = None) -> Result:
    """Optimize a hard prompt with GCG; best by round-trip score."""
    config = config or GCGConfig()
    config.validate()
    generator = torch.Generator().manual_seed(config.seed)
    table = objective.embedding_table.detach()
    token_gradient = TokenGradient(table, vocab.allowed_ids)
    allowed = vocab.allowed_ids.cpu()
    top_k = min(config.top_k, len(allowed))
    if config.start_ids:
        current = torch.tensor(config.start_ids, dtype=torch.long)
    else:
        current = random_allowed_ids(vocab.allowed_ids, (config.prompt_len,), config.seed)
    tracker = make_tracker(vocab, config, "gcg", [objective])
    try:
        for _ in tracker.steps():
            objective.new_step()
            evaluation, gradient = token_gradient(objective, current.unsqueeze(0), tracker)
            tracker.record(current.unsqueeze(0), evaluation.score)
            top_tokens = allowed[(-gradient[0]).topk(top_k, dim=-1).indices.cpu()]
            candidates = deduplicate(sample_swaps(current, top_tokens, config.search_width, generator))
            candidates = candidates[(candidates != current).any(dim=1)]
            if config.filter_retokenization and len(candidates):
                candidates = candidates[round_trips(vocab, candidates)]
            candidates = candidates[: affordable(tracker, len(candidates))]
            if len(candidates) == 0:
                continue
            losses, scores = evaluate_ids(objective, table, candidates, tracker, config.eval_batch_size)
            winner = int(losses.argmin())
            current = candidates[winner]
            tracker.pool.offer(candidates[winner : winner + 1], scores[winner : winner + 1])
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, asdict(config))
