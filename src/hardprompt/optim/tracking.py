"""What every optimizer loop shares: budget, progress bar, best-so-far, and the final result."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import HardpromptError
from ..objectives.base import Objective
from ..vocab import Vocabulary
from .candidates import CandidatePool, best_round_trip
from .result import Result


class SearchTracker:
    """Counts steps within the budget, keeps the best prompts, and builds the `Result`.

    Usage::

        tracker = SearchTracker(vocab, steps=..., max_seconds=..., progress=True)
        try:
            for step in tracker.steps():
                ...
                tracker.record(token_ids, scores)
        except KeyboardInterrupt:
            tracker.interrupted = True
        return tracker.result(objective, config)
    """

    def __init__(
        self,
        vocab: Vocabulary,
        steps: int,
        max_seconds: float | None = None,
        pool_size: int = 8,
        progress: bool = True,
        description: str = "optimizing",
    ) -> None:
        self.vocab = vocab
        self.max_steps = steps
        self.max_seconds = max_seconds
        self.pool = CandidatePool(pool_size)
        self.history: list[float] = []
        self.interrupted = False
        self.steps_done = 0
        self._start = time.perf_counter()
        self._bar = tqdm(
            total=steps, desc=description, disable=None if progress else True, dynamic_ncols=True, leave=False
        )
        self._shown_best = -float("inf")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start

    def steps(self) -> Iterator[int]:
        """Step indices until the step or wall-clock budget runs out."""
        self._start = time.perf_counter()
        for step in range(self.max_steps):
            if self.max_seconds is not None and self.seconds >= self.max_seconds:
                return
            yield step

    def record(self, token_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Record one step's prompts (restarts, prompt_len) and their scores (restarts,)."""
        self.pool.offer(token_ids.detach().cpu(), scores.detach().float().cpu())
        self.steps_done += 1
        best = self.pool.best_score
        self.history.append(best)
        self._bar.update(1)
        if best > self._shown_best:
            self._shown_best = best
            self._bar.set_postfix_str(f"best={best:.4f} {self.vocab.decode(self.pool.best)[:60]!r}")

    def result(self, objective: Objective, config: dict[str, Any]) -> Result:
        """Close the progress bar and pick the best candidate by its round-trip score."""
        self._bar.close()
        if not self.pool.ranked():
            raise HardpromptError("stopped before the first step: no prompt to report")
        chosen = best_round_trip(self.pool, objective, self.vocab)
        return Result(
            prompt=chosen.prompt,
            score=chosen.score,
            projected_score=chosen.projected_score,
            token_ids=chosen.token_ids,
            tokens=self.vocab.tokens(chosen.token_ids),
            steps=self.steps_done,
            seconds=round(self.seconds, 3),
            history=self.history,
            interrupted=self.interrupted,
            config=config,
        )
