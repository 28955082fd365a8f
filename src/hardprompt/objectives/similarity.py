"""Feature similarity: match the prompt's features to target images or texts (CLIP-style loss)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import HardpromptError
from ..models.base import TextEncoder
from .base import Evaluation


class FeatureSimilarity:
    """loss = 1 − mean cos(prompt, targets) + negative_weight · mean cos(prompt, negatives).

    The targets are unit feature vectors (images for inversion, a long prompt for distillation).
    With `batch_size`, each step's loss uses a random subset of the targets (the paper's
    minibatch for many images), while the score always uses all of them, from the same
    forward pass.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        targets: torch.Tensor,
        negatives: torch.Tensor | None = None,
        negative_weight: float = 1.0,
        batch_size: int | None = None,
        seed: int = 0,
        target_token_ids: Sequence[int] = (),
    ) -> None:
        if targets.ndim != 2 or len(targets) == 0:
            raise HardpromptError("there are no targets to match")
        if not math.isfinite(negative_weight):
            raise HardpromptError(f"the negative weight must be a finite number (got {negative_weight})")
        self.encoder = encoder
        self.targets = targets.to(encoder.device)
        self.negatives = negatives.to(encoder.device) if negatives is not None and len(negatives) else None
        self.negative_weight = negative_weight
        self.batch_size = batch_size if batch_size and batch_size < len(targets) else None
        self._generator = torch.Generator().manual_seed(seed)
        self._minibatch: torch.Tensor | None = None
        self.target_token_ids = tuple(target_token_ids)
        """The target text's token ids when the targets are a text's features (see SupportsTargetTokens)."""

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.encoder.embedding_table

    @property
    def token_scan(self) -> bool:
        """A prompt's features blend its tokens': single tokens rank the ones to build from (SupportsTokenScan)."""
        return True

    @property
    def fixed_shapes(self) -> bool:
        """Without a minibatch every step is the same computation (see SupportsCudaGraph)."""
        return self.batch_size is None

    def new_step(self) -> None:
        if self.batch_size:
            chosen = torch.randperm(len(self.targets), generator=self._generator)[: self.batch_size]
            self._minibatch = chosen.to(self.targets.device)

    def _loss_and_score(self, features: torch.Tensor, minibatch: bool) -> tuple[torch.Tensor, torch.Tensor]:
        similarity = features @ self.targets.T
        score = similarity.mean(dim=1)
        if minibatch and self._minibatch is not None:
            loss = 1 - similarity[:, self._minibatch].mean(dim=1)
        else:
            loss = 1 - score
        if self.negatives is not None:
            penalty = self.negative_weight * (features @ self.negatives.T).mean(dim=1)
            loss = loss + penalty
            score = score - penalty
        return loss, score.detach()

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        features = self.encoder.encode_prompt_embeddings(prompt_embeds)
        loss, score = self._loss_and_score(features, minibatch=True)
        return Evaluation(loss=loss, score=score)

    @torch.no_grad()
    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        features = self.encoder.encode_token_ids(token_ids)
        return float(self._loss_and_score(features, minibatch=False)[1][0])

    @torch.no_grad()
    def score_token_ids_batch(self, rows: Sequence[Sequence[int]]) -> list[float]:
        ids = torch.tensor([list(row) for row in rows], dtype=torch.long, device=self.encoder.device)
        features = self.encoder.encode_prompt_embeddings(self.encoder.embedding_table[ids])
        return self._loss_and_score(features, minibatch=False)[1].tolist()


class PerTargetSimilarity:
    """One independent problem per target, batched: the rows of problem i are matched to target i only.

    For a batch of problems × k rows, row r's loss is 1 − cos(prompt_r, target_{r // k}) plus
    `negative_weight` · mean cos(prompt_r, negatives); its score is the negated same. This is
    `FeatureSimilarity` of each target alone (`problem(i)`), for many targets in one forward pass.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        targets: torch.Tensor,
        negatives: torch.Tensor | None = None,
        negative_weight: float = 1.0,
    ) -> None:
        if targets.ndim != 2 or len(targets) == 0:
            raise HardpromptError("there are no targets to match")
        self.encoder = encoder
        self.targets = targets.to(encoder.device)
        self.negatives = negatives.to(encoder.device) if negatives is not None and len(negatives) else None
        self.negative_weight = negative_weight
        self.problems = len(targets)
        self.fixed_shapes = True
        """Every step is the same computation (see SupportsCudaGraph)."""

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.encoder.embedding_table

    def new_step(self) -> None:
        """Every problem has one target, used at every step."""

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        features = self.encoder.encode_prompt_embeddings(prompt_embeds)
        targets = self.targets.repeat_interleave(len(features) // self.problems, dim=0)
        score = (features * targets).sum(dim=1)
        if self.negatives is not None:
            score = score - self.negative_weight * (features @ self.negatives.T).mean(dim=1)
        return Evaluation(loss=1 - score, score=score.detach())

    def problem(self, index: int) -> FeatureSimilarity:
        """The ordinary objective of target `index` alone (with the same negatives)."""
        return FeatureSimilarity(
            self.encoder, self.targets[index : index + 1], self.negatives, negative_weight=self.negative_weight
        )
