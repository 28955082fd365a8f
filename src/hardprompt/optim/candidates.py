"""Keeping the best prompts seen, and choosing among them by their round-trip score."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from ..objectives.base import Objective, SupportsBatchScoring
from ..vocab import Vocabulary


class CandidatePool:
    """The `size` best distinct token sequences seen so far, by score (higher is better)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._scores: dict[tuple[int, ...], float] = {}

    def offer(self, token_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Offer a batch of prompts (rows of `token_ids`) with their scores."""
        worst = min(self._scores.values()) if len(self._scores) >= self.size else -float("inf")
        for row, score in zip(token_ids.tolist(), scores.tolist(), strict=True):
            key = tuple(row)
            if score <= worst or self._scores.get(key, -float("inf")) >= score:
                continue
            self._scores[key] = score
            if len(self._scores) > self.size:
                del self._scores[min(self._scores, key=self._scores.__getitem__)]
                worst = min(self._scores.values())

    @property
    def best_score(self) -> float:
        return max(self._scores.values()) if self._scores else -float("inf")

    @property
    def best(self) -> tuple[int, ...]:
        return max(self._scores, key=self._scores.__getitem__)

    def ranked(self) -> list[tuple[tuple[int, ...], float]]:
        """Candidates, best first."""
        return sorted(self._scores.items(), key=lambda item: -item[1])


@dataclass
class RoundTrip:
    """A candidate after decode → (repair) → re-tokenize → score."""

    prompt: str
    token_ids: list[int]
    score: float
    projected_score: float


@torch.no_grad()
def best_round_trip(pool: CandidatePool, objective: Objective, vocab: Vocabulary) -> RoundTrip:
    """Score each candidate as the string a user would copy; return the best by that score.

    A candidate whose text breaks the vocabulary rules (a blocked word formed across token
    boundaries, tokens outside the bank after re-tokenization) is repaired by dropping tokens.
    """
    best: RoundTrip | None = None
    texts, rows, projected = [], [], []
    for token_ids, projected_score in pool.ranked():
        text = vocab.acceptable_text(token_ids)
        texts.append(text)
        rows.append(vocab.encode(text))
        projected.append(projected_score)
    for text, ids, score, projected_score in zip(texts, rows, score_rows(objective, rows), projected, strict=True):
        if best is None or score > best.score:
            best = RoundTrip(prompt=text, token_ids=ids, score=score, projected_score=projected_score)
    assert best is not None, "the candidate pool is empty"
    return best


def score_rows(objective: Objective, rows: list[list[int]]) -> list[float]:
    """The scores of prompts given as token ids; same-length rows in one call where the objective can."""
    if not isinstance(objective, SupportsBatchScoring):
        return [objective.score_token_ids(row) for row in rows]
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_length[len(row)].append(index)
    scores = [0.0] * len(rows)
    for indices in by_length.values():
        for index, score in zip(indices, objective.score_token_ids_batch([rows[i] for i in indices]), strict=True):
            scores[index] = score
    return scores
