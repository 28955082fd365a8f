"""A feature-based prompt screen (paper §6's proposed defense): flag prompts whose text features match a concept.

A word filter checks the prompt's letters; this screen checks its meaning. A prompt is flagged when
the cosine of its text features to some concept's text features is above a threshold, set by hand
or calibrated to flag a chosen share of a benign prompt set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import HardpromptError
from ..models import TextEncoder
from .common import ModelLike, as_encoder
from .distill import DEFAULT_TEXT_MODEL

ENCODE_BATCH = 64
"""Prompts encoded per forward pass."""


@dataclass
class Screening:
    """The screen's verdict on one prompt."""

    prompt: str
    concept: str
    """The concept whose features are nearest to the prompt's."""
    similarity: float
    """Cosine of the prompt's text features to that concept's."""
    flagged: bool
    """similarity > threshold."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Calibration:
    """A threshold chosen on a benign set, and the share of that set it flags."""

    threshold: float
    fpr: float
    """The false-positive rate asked for."""
    benign: int
    """Prompts in the benign set."""
    benign_flagged: int
    """Benign prompts the threshold flags: at most fpr × benign."""


def _validate_threshold(threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise HardpromptError(f"the threshold is a cosine similarity: it must be in [-1, 1] (got {threshold})")


def _validate_prompts(prompts: Sequence[str], what: str) -> list[str]:
    texts = [str(prompt) for prompt in prompts]
    if not texts:
        raise HardpromptError(f"there are no {what} to screen")
    if any(not text.strip() for text in texts):
        raise HardpromptError(f"one of the {what} is empty")
    return texts


def encode_in_batches(encoder: TextEncoder, texts: Sequence[str]) -> torch.Tensor:
    """Text features (len(texts), dim) of many texts, `ENCODE_BATCH` per forward pass."""
    return torch.cat([encoder.encode_texts(texts[i : i + ENCODE_BATCH]) for i in range(0, len(texts), ENCODE_BATCH)])


class ConceptScreen:
    """Flags prompts whose text features are closer than `threshold` (cosine) to any of `concepts`."""

    def __init__(self, model: ModelLike, concepts: Sequence[str], threshold: float = 0.5, device: str = "auto") -> None:
        concepts = [str(concept) for concept in concepts]
        if not concepts:
            raise HardpromptError("give at least one concept to screen for")
        if any(not concept.strip() for concept in concepts):
            raise HardpromptError("a concept is empty")
        _validate_threshold(threshold)
        self.encoder: TextEncoder = as_encoder(model, device)
        self.concepts = concepts
        self.threshold = threshold
        self._concept_features = self.encoder.encode_texts(concepts)

    def similarities(self, prompts: Sequence[str]) -> torch.Tensor:
        """Cosine of each prompt to each concept, shape (len(prompts), len(concepts))."""
        return encode_in_batches(self.encoder, _validate_prompts(prompts, "prompts")) @ self._concept_features.T

    def check(self, prompts: Sequence[str]) -> list[Screening]:
        """The verdict on each prompt: its nearest concept, that similarity, and whether it is flagged."""
        nearest, index = self.similarities(prompts).max(dim=1)
        return [
            Screening(prompt, self.concepts[i], round(float(similarity), 6), float(similarity) > self.threshold)
            for prompt, similarity, i in zip(prompts, nearest.tolist(), index.tolist(), strict=True)
        ]

    def calibrate(self, benign: Sequence[str], fpr: float = 0.01) -> Calibration:
        """Set the threshold to the lowest that flags at most `fpr` of `benign`, and return it.

        With the benign prompts' nearest-concept similarities s₁ ≥ s₂ ≥ … ≥ sₙ, the threshold is
        s_{m+1} with m = ⌊fpr · n⌋: exactly m benign prompts lie above it when no similarities tie.
        """
        if not 0 < fpr < 1:
            raise HardpromptError(f"the false-positive rate must be in (0, 1) (got {fpr})")
        texts = _validate_prompts(benign, "benign prompts")
        allowed = math.floor(fpr * len(texts))
        if allowed < 1:
            raise HardpromptError(
                f"{len(texts)} benign prompts cannot resolve a false-positive rate of {fpr:g}; "
                f"give at least {math.ceil(1 / fpr)}"
            )
        nearest = self.similarities(texts).max(dim=1).values.sort(descending=True).values
        self.threshold = float(nearest[allowed])
        flagged = int((nearest > self.threshold).sum())
        return Calibration(threshold=self.threshold, fpr=fpr, benign=len(texts), benign_flagged=flagged)


def screen(
    prompts: Sequence[str],
    concepts: Sequence[str],
    model: ModelLike = DEFAULT_TEXT_MODEL,
    *,
    threshold: float | None = None,
    benign: Sequence[str] | None = None,
    fpr: float = 0.01,
    device: str = "auto",
) -> tuple[list[Screening], Calibration | None]:
    """Screen `prompts` against `concepts` with a given `threshold`, or one calibrated on `benign` at `fpr`."""
    if (threshold is None) == (benign is None):
        raise HardpromptError("give either a threshold or a benign set to calibrate one, not both")
    checker = ConceptScreen(model, concepts, threshold if threshold is not None else 0.0, device)
    calibration = checker.calibrate(benign, fpr) if benign is not None else None
    return checker.check(prompts), calibration
