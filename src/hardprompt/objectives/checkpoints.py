"""Early stopping by holdout checkpoints, for any objective and any optimizer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from .base import Evaluation, Objective
from .lm_sequences import NearestTokens


class HoldoutCheckpoints:
    """Wraps an objective; every `every` steps, scores the optimizer's current prompt on a holdout set.

    The current prompt is the first one evaluated after `new_step()` (the iterate every method
    evaluates first), read back as the nearest tokens (exact for hard prompts). The best
    checkpoint is kept in `best_ids` / `best_score`; `score_token_ids` is the holdout score, so
    the optimizer's final choice among its candidates is by holdout too.

    For a soft prompt (never projected), pass `score_embeds`: checkpoints then score the
    continuous prompt itself and keep it in `best_embeds`. Other attributes of the wrapped
    objective (e.g. `fluency_loss`) are passed through.
    """

    def __init__(
        self,
        objective: Objective,
        holdout_score: Callable[[Sequence[int]], float],
        every: int,
        score_embeds: Callable[[torch.Tensor], float] | None = None,
    ) -> None:
        self.objective = objective
        self.holdout_score = holdout_score
        self.score_embeds = score_embeds
        self.best_embeds: torch.Tensor | None = None
        self.every = max(1, every)
        self.step = 0
        self.best_ids: list[int] | None = None
        self.best_score = -float("inf")
        self.history: list[tuple[int, float]] = []
        self.seconds = 0.0
        """Time spent scoring checkpoints (not optimization time)."""
        self.cpu_seconds = 0.0
        """CPU time of this process spent scoring checkpoints."""
        self._nearest = NearestTokens(objective.embedding_table)
        self._pending = False

    @property
    def embedding_table(self) -> torch.Tensor:
        return self.objective.embedding_table

    def new_step(self) -> None:
        self.objective.new_step()
        self.step += 1
        self._pending = self.step % self.every == 0

    def evaluate(self, prompt_embeds: torch.Tensor) -> Evaluation:
        evaluation = self.objective.evaluate(prompt_embeds)
        if self._pending:
            self._pending = False
            if self.score_embeds is None:
                self.checkpoint(self._nearest(prompt_embeds[:1])[0].tolist())
            else:
                self._checkpoint_embeds(prompt_embeds[0].detach().clone())
        return evaluation

    def __getattr__(self, name: str):
        if name == "objective":
            raise AttributeError(name)
        return getattr(self.objective, name)

    def _timed(self, score: Callable[[], float]) -> float:
        """`score()`, its wall-clock and CPU time added to `seconds` and `cpu_seconds`."""
        start, cpu_start = time.perf_counter(), time.process_time()
        value = score()
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu_start
        return value

    def _checkpoint_embeds(self, embeds: torch.Tensor) -> None:
        score = self._timed(lambda: self.score_embeds(embeds))
        self.history.append((self.step, score))
        if score >= self.best_score:
            self.best_embeds, self.best_score = embeds, score

    def checkpoint(self, token_ids: Sequence[int]) -> float:
        """Score `token_ids` on the holdout set; keep them if they are the best so far (ties: the later)."""
        score = self._timed(lambda: self.holdout_score(token_ids))
        self.history.append((self.step, score))
        if score >= self.best_score:
            self.best_ids, self.best_score = list(token_ids), score
        return score

    def score_token_ids(self, token_ids: Sequence[int]) -> float:
        return self.holdout_score(token_ids)
