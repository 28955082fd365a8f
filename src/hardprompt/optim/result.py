"""The result every optimizer returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """The best prompt found, scored as the string the user copies.

    `score` is the round-trip score (decode → re-tokenize → score); `projected_score` is the
    score of the token ids the optimizer held before that round trip. `forward_passes` counts
    every prompt row the objective evaluated (candidates and the final round-trip checks included).
    `history` is the best score after each step and `history_seconds` the time of that step.

    With `hard` False (method `soft`), the result is NOT a hard prompt: `score` is that of the
    continuous prompt (an upper bound for hard prompts), and `prompt`/`token_ids` are its
    nearest-token decode, for reference only, whose round-trip score is `projected_score`.

    With several text encoders (`MultiEncoderObjective`), `score` is their weighted mean and
    `scores_by_model` each one's round-trip score; it is empty for one model.
    """

    prompt: str
    score: float
    projected_score: float
    token_ids: list[int]
    tokens: list[str]
    steps: int
    seconds: float
    forward_passes: int = 0
    history: list[float] = field(default_factory=list)
    history_seconds: list[float] = field(default_factory=list)
    interrupted: bool = False
    method: str = "pez"
    hard: bool = True
    model: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    scores_by_model: dict[str, float] = field(default_factory=dict)
    readability: float | None = None
    """Share of the prompt's words found in an English word list (`hardprompt.words`); None without a list."""
    stopped_early: bool = False
    """True when `patience` steps passed without a better round-trip score and the search stopped."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary with the documented field names."""
        return asdict(self)
