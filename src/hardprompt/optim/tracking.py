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
    """Counts steps, seconds and forward passes within the budget, keeps the best prompts, builds the `Result`.

    A forward pass is one prompt row evaluated by the objective (a batch of 64 candidates is 64);
    optimizers report them with `count_forward_passes`. The search stops when any budget is spent.

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
        max_forward_passes: int | None = None,
        method: str = "",
    ) -> None:
        self.vocab = vocab
        self.max_steps = steps
        self.max_seconds = max_seconds
        self.max_forward_passes = max_forward_passes
        self.method = method or description
        self.pool = CandidatePool(pool_size)
        self.history: list[float] = []
        self.history_seconds: list[float] = []
        self.interrupted = False
        self.steps_done = 0
        self.forward_passes = 0
        self._start = time.perf_counter()
        self._bar = tqdm(
            total=steps, desc=description, disable=None if progress else True, dynamic_ncols=True, leave=False
        )
        self._shown_best = -float("inf")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start

    @property
    def forward_passes_left(self) -> int | None:
        """Forward passes left in the budget (None: unbounded)."""
        if self.max_forward_passes is None:
            return None
        return max(0, self.max_forward_passes - self.forward_passes)

    def count_forward_passes(self, rows: int) -> None:
        """Count `rows` prompt rows evaluated by the objective."""
        self.forward_passes += rows

    def steps(self) -> Iterator[int]:
        """Step indices until the step, wall-clock or forward-pass budget runs out."""
        self._start = time.perf_counter()
        for step in range(self.max_steps):
            if self.max_seconds is not None and self.seconds >= self.max_seconds:
                return
            if self.forward_passes_left == 0:
                return
            yield step

    def record(self, token_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Record one step's prompts (restarts, prompt_len) and their scores (restarts,)."""
        self.pool.offer(token_ids.detach().cpu(), scores.detach().float().cpu())
        self.steps_done += 1
        best = self.pool.best_score
        self.history.append(best)
        self.history_seconds.append(round(self.seconds, 4))
        self._bar.update(1)
        if best > self._shown_best:
            self._shown_best = best
            self._bar.set_postfix_str(f"best={best:.4f} {self.vocab.decode(self.pool.best)[:60]!r}")

    def result(self, objective: Objective, config: dict[str, Any]) -> Result:
        """Close the progress bar and pick the best candidate by its round-trip score."""
        self._bar.close()
        if not self.pool.ranked():
            if self.interrupted:
                raise KeyboardInterrupt  # nothing to keep: the caller reports the interruption
            raise HardpromptError("stopped before the first step: no prompt to report")
        chosen = best_round_trip(self.pool, objective, self.vocab)
        round_trip_passes = len(self.pool.ranked())
        return Result(
            prompt=chosen.prompt,
            score=chosen.score,
            projected_score=chosen.projected_score,
            token_ids=chosen.token_ids,
            tokens=self.vocab.tokens(chosen.token_ids),
            steps=self.steps_done,
            seconds=round(self.seconds, 3),
            forward_passes=self.forward_passes + round_trip_passes,
            history=self.history,
            history_seconds=self.history_seconds,
            interrupted=self.interrupted,
            method=self.method,
            config=config,
        )
