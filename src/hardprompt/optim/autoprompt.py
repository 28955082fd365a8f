"""AutoPrompt (Shin et al. 2020): HotFlip candidates from the gradient, exact evaluation, keep the best.

Also `run_sgd`, the projected-SGD variant ("AutoPrompt_SGD") used as a baseline by FluentPrompt
and the PEZ paper: the prompt is always hard, each step moves its embeddings along the negative
gradient and projects them back onto the nearest allowed tokens (no continuous state is kept,
unlike PEZ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..errors import HardpromptError
from ..objectives.base import Evaluation, Objective, table_blocks
from ..vocab import Vocabulary
from .pez import NearestTokenProjection, random_allowed_ids
from .result import Result
from .search import (
    SearchConfig,
    TokenGradient,
    affordable,
    evaluate_ids,
    evaluate_with_gradient,
    make_tracker,
    single_swaps,
)
from .tracking import SearchTracker


@dataclass
class AutoPromptConfig(SearchConfig):
    """HotFlip search: each step one random position, its `top_k` best tokens by gradient, all evaluated."""

    steps: int = 1000
    top_k: int = 64

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if self.top_k < 1:
            raise HardpromptError(f"top-k must be at least 1 (got {self.top_k})")


def run(objective: Objective, vocab: Vocabulary, config: AutoPromptConfig | None = None) -> Result:
    """Optimize a hard prompt with AutoPrompt's gradient-guided token swaps; best by round-trip score."""
    config = config or AutoPromptConfig()
    config.validate()
    generator = torch.Generator().manual_seed(config.seed)
    table = objective.embedding_table.detach()
    token_gradient = TokenGradient(table, vocab.allowed_ids)
    allowed = vocab.allowed_ids.cpu()
    top_k = min(config.top_k, len(allowed))
    current = random_allowed_ids(vocab.allowed_ids, (config.prompt_len,), config.seed)
    tracker = make_tracker(vocab, config, "autoprompt", [objective])
    try:
        for _ in tracker.steps():
            objective.new_step()
            evaluation, gradient = token_gradient(objective, current.unsqueeze(0), tracker)
            current_loss = float(evaluation.loss.detach()[0])
            position = int(torch.randint(config.prompt_len, (1,), generator=generator))
            new_tokens = allowed[(-gradient[0, position]).topk(top_k).indices.cpu()]
            new_tokens = new_tokens[new_tokens != current[position]][: affordable(tracker, top_k)]
            best_ids, best_score = current, evaluation.score.detach().cpu()
            if len(new_tokens):
                candidates = single_swaps(current, torch.full_like(new_tokens, position), new_tokens)
                losses, scores = evaluate_ids(objective, table, candidates, tracker, config.eval_batch_size)
                winner = int(losses.argmin())
                if float(losses[winner]) < current_loss:
                    best_ids, best_score = candidates[winner], scores[winner : winner + 1]
            current = best_ids
            tracker.record(current.unsqueeze(0), best_score)
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, asdict(config))


@dataclass
class AutoPromptSGDConfig(SearchConfig):
    """Projected SGD: ids ← nearest(embed(ids) − lr · gradient), `restarts` prompts in one batch."""

    steps: int = 3000
    lr: float = 20.0
    """Plain SGD steps must be large enough to reach another token; 20 suits MiniLM (row norm ~1)."""
    restarts: int = 1


def projected_descent(
    objective: Objective,
    vocab: Vocabulary,
    config: AutoPromptSGDConfig,
    method: str,
    update: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    gradient_of: Callable[[Objective, torch.Tensor, SearchTracker], tuple[Evaluation, torch.Tensor]] = (
        evaluate_with_gradient
    ),
    passes_per_step: int | None = None,
) -> Result:
    """The loop of the always-hard projected methods: evaluate, `update(embeds, gradient, step)`, project.

    `update` returns the new continuous point, which is projected onto the nearest allowed tokens.
    `gradient_of(objective, embeds, tracker)` evaluates with gradient (it counts its forward passes on the tracker).
    """
    restarts = config.restarts
    passes_per_step = passes_per_step or restarts
    table = objective.embedding_table.detach()
    project = NearestTokenProjection(table, vocab.allowed_ids, blocks=table_blocks(objective))
    current = random_allowed_ids(vocab.allowed_ids, (restarts, config.prompt_len), config.seed).to(table.device)
    tracker = make_tracker(vocab, config, method, [objective])
    try:
        for step in tracker.steps():
            if affordable(tracker, passes_per_step) < passes_per_step:
                break
            objective.new_step()
            embeds = table[current].float()
            evaluation, gradient = gradient_of(objective, embeds, tracker)
            tracker.record(current, evaluation.score)
            current = project(update(embeds, gradient.float(), step))
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, asdict(config))


def run_sgd(objective: Objective, vocab: Vocabulary, config: AutoPromptSGDConfig | None = None) -> Result:
    """Optimize a hard prompt with projected SGD (AutoPrompt_SGD); best by round-trip score."""
    config = config or AutoPromptSGDConfig()
    config.validate()
    torch.manual_seed(config.seed)
    return projected_descent(
        objective, vocab, config, "autoprompt-sgd", lambda embeds, gradient, _: embeds - config.lr * gradient
    )
