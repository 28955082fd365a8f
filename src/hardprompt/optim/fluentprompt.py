"""FluentPrompt (Shi et al. 2022): projected Langevin dynamics with a fluency term.

Each step: e ← nearest(e − lr · ∇[loss + fluency_weight · fluency] + sqrt(2 · lr · β_t) · z), with
z standard normal and the temperature β_t decaying geometrically from `noise_start` to `noise_end`
over `steps`. The fluency term is the prompt's NLL under a language model; it is used only when
the objective provides one (`SupportsFluency`, e.g. causal-LM objectives). Otherwise the method is
Langevin-noised projected SGD, and the result's config says `fluency_term: false`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import HardpromptError
from ..objectives.base import Evaluation, Objective, SupportsFluency
from ..vocab import Vocabulary
from .autoprompt import AutoPromptSGDConfig, projected_descent
from .result import Result
from .search import evaluate_with_gradient
from .tracking import SearchTracker


@dataclass
class FluentPromptConfig(AutoPromptSGDConfig):
    """Projected Langevin dynamics; `restarts` prompts in one batch."""

    fluency_weight: float = 0.1
    noise_start: float = 1e-5
    """Langevin temperature β at the first step."""
    noise_end: float = 1e-7
    """Temperature at step `steps` (geometric decay in between)."""

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if self.fluency_weight < 0:
            raise HardpromptError(f"fluency weight must not be negative (got {self.fluency_weight})")
        if not 0 < self.noise_end <= self.noise_start:
            raise HardpromptError("the noise temperatures need 0 < noise_end <= noise_start")

    def temperature(self, step: int) -> float:
        """β at `step`."""
        fraction = min(1.0, step / max(1, self.steps - 1))
        return self.noise_start * (self.noise_end / self.noise_start) ** fraction


def run(objective: Objective, vocab: Vocabulary, config: FluentPromptConfig | None = None) -> Result:
    """Optimize a hard prompt with FluentPrompt; best by round-trip score (the task score, not fluency)."""
    config = config or FluentPromptConfig()
    config.validate()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    fluent = isinstance(objective, SupportsFluency) and config.fluency_weight > 0

    def with_fluency(
        objective: SupportsFluency, embeds: torch.Tensor, tracker: SearchTracker
    ) -> tuple[Evaluation, torch.Tensor]:
        evaluation, gradient = evaluate_with_gradient(objective, embeds, tracker)
        embeds = embeds.detach().requires_grad_(True)
        fluency = objective.fluency_loss(embeds)
        tracker.count_forward_passes(len(embeds))
        (fluency_gradient,) = torch.autograd.grad(config.fluency_weight * fluency.sum(), embeds)
        return evaluation, gradient + fluency_gradient

    def update(embeds: torch.Tensor, gradient: torch.Tensor, step: int) -> torch.Tensor:
        noise = torch.randn(embeds.shape, generator=generator).to(embeds.device)
        return embeds - config.lr * gradient + math.sqrt(2 * config.lr * config.temperature(step)) * noise

    result = projected_descent(
        objective,
        vocab,
        config,
        "fluentprompt",
        update,
        with_fluency if fluent else evaluate_with_gradient,
        passes_per_step=config.restarts * (2 if fluent else 1),
    )
    result.config["fluency_term"] = fluent
    return result
