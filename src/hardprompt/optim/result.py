"""The result every optimizer returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """The best prompt found, scored as the string the user copies.

    `score` is the round-trip score (decode → re-tokenize → score); `projected_score` is the
    score of the token ids the optimizer held before that round trip.
    """

    prompt: str
    score: float
    projected_score: float
    token_ids: list[int]
    tokens: list[str]
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)
    interrupted: bool = False
    model: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary with the documented field names."""
        return asdict(self)
