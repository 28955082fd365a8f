"""Measuring image → prompt in the shapes world: many scenes inverted at once, and word recovery.

`invert_each` runs PEZ (`hardprompt.optim.pez.ProjectedGradientStep` and the same round-trip choice
as `hardprompt.optim.pez.run`) on many independent targets in one batched pass: restart i is optimized
against image i only. It serves the tests and the benchmark, where 20 separate runs would cost
about 5× more on a CPU.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

import torch

from ..models.base import TextEncoder
from ..objectives import Evaluation, FeatureSimilarity
from ..optim.candidates import CandidatePool, RoundTrip, best_round_trip
from ..optim.pez import PEZConfig, ProjectedGradientStep
from ..vocab import Vocabulary
from .render import Scene, random_scene

EVALUATION_SEED = 2026
"""Seed of the fixed evaluation scenes (the towers were trained on seeds 0 and 1, held out on 999999)."""


def evaluation_scenes(count: int, seed: int = EVALUATION_SEED) -> list[Scene]:
    """The fixed set of `count` held-out scenes used by the tests and the benchmark."""
    rng = random.Random(seed)
    return [random_scene(rng) for _ in range(count)]


class PairedSimilarity:
    """Objective with one target per prompt row: loss_i = 1 − cos(prompt_i, target_i)."""

    def __init__(self, encoder: TextEncoder, targets: torch.Tensor) -> None:
        self.encoder = encoder
        self.targets = targets.to(encoder.device)

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.encoder.embedding_table

    def new_step(self) -> None:
        """All targets are used at every step."""

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        similarity = (self.encoder.encode_prompt_embeddings(prompt_embeds) * self.targets).sum(dim=1)
        return Evaluation(loss=1 - similarity, score=similarity.detach())

    def row(self, index: int) -> FeatureSimilarity:
        """The ordinary objective of target `index` alone (for the round-trip score)."""
        return FeatureSimilarity(self.encoder, self.targets[index : index + 1])


def invert_each(objective: PairedSimilarity, vocab: Vocabulary, config: PEZConfig) -> list[RoundTrip]:
    """One prompt per target of `objective`, optimized together; `config.restarts` is ignored."""
    config.validate()
    torch.manual_seed(config.seed)
    rows = len(objective.targets)
    step = ProjectedGradientStep(objective, vocab, replace(config, restarts=rows))
    pools = [CandidatePool(config.candidates) for _ in range(rows)]
    for _ in range(config.steps):
        hard_ids, evaluation = step()
        for pool, ids, score in zip(pools, hard_ids.cpu(), evaluation.score.cpu(), strict=True):
            pool.offer(ids.unsqueeze(0), score.unsqueeze(0))
    return [best_round_trip(pool, objective.row(i), vocab) for i, pool in enumerate(pools)]


def prompt_words(prompt: str) -> set[str]:
    """The lower-case words of a prompt."""
    return set(re.findall(r"[a-z]+", prompt.lower()))


def word_recovery(prompt: str, scene: Scene) -> float:
    """Fraction of the scene's color and shape words that appear as words in `prompt`."""
    content = scene.content_words()
    return len(content & prompt_words(prompt)) / len(content)
