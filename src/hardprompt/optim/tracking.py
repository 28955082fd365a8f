"""What every optimizer loop shares: budget, progress bar, best-so-far, and the final result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import HardpromptError
from ..objectives.base import Objective
from ..vocab import Vocabulary
from ..words import readability
from .candidates import CandidatePool, best_round_trip
from .result import Result


@dataclass(frozen=True)
class Progress:
    """A search after one step, as a progress callback sees it (with several problems, the first one's)."""

    step: int
    """Steps done."""
    steps: int
    """The step budget."""
    seconds: float
    best_score: float
    """The best projected score so far."""
    best_prompt: str
    history: tuple[float, ...]
    """The best projected score after each step."""


ProgressCallback = Callable[[Progress], None]
"""Called after every step. Raising KeyboardInterrupt stops the search, which keeps its best prompt (as Ctrl-C)."""

_progress_callback: ContextVar[ProgressCallback | None] = ContextVar("hardprompt_progress_callback", default=None)


def progress_callback() -> ProgressCallback | None:
    """The callback that searches started here (this thread, this block) report to, if any."""
    return _progress_callback.get()


@contextmanager
def reporting_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Within the block (in this thread), every search calls `callback` after each step."""
    token = _progress_callback.set(callback)
    try:
        yield
    finally:
        _progress_callback.reset(token)


class SearchTracker:
    """Counts steps, seconds and forward passes within the budget, keeps the best prompts, builds the `Result`.

    A forward pass is one prompt row evaluated by the objective (a batch of 64 candidates is 64);
    optimizers report them with `count_forward_passes`. The search stops when any budget is spent.
    A tracker made inside `reporting_progress(callback)` calls `callback` after each step.

    With several `objectives` the tracker serves a batched search over independent problems (one
    image each, say): every recorded batch holds the same number of rows per problem, problem-major,
    and each problem has its own candidate pool, history and `Result` (`results`).

    With `patience`, the search stops (`stopped_early`) once no problem's best round-trip score has
    improved for that many steps: whenever a problem's best projected prompt changes, its string is
    scored under its objective (one forward pass, counted).

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
        objectives: list[Objective] | None = None,
        patience: int | None = None,
    ) -> None:
        self.vocab = vocab
        self.max_steps = steps
        self.max_seconds = max_seconds
        self.max_forward_passes = max_forward_passes
        self.method = method or description
        problems = len(objectives) if objectives else 1
        self.pools = [CandidatePool(pool_size) for _ in range(problems)]
        self.histories: list[list[float]] = [[] for _ in range(problems)]
        self.objectives = objectives
        self.patience = patience
        self.stopped_early = False
        self._round_trip_best = [-float("inf")] * problems
        self._checked = [None] * problems
        self._improved_at = [0] * problems
        self.history_seconds: list[float] = []
        self.interrupted = False
        self.steps_done = 0
        self.forward_passes = 0
        self._start = time.perf_counter()
        self._bar = tqdm(
            total=steps, desc=description, disable=None if progress else True, dynamic_ncols=True, leave=False
        )
        self._shown_best = -float("inf")
        self._on_progress = _progress_callback.get()

    @property
    def pool(self) -> CandidatePool:
        """The candidate pool of the first (for a single search, the only) problem."""
        return self.pools[0]

    @property
    def history(self) -> list[float]:
        """The best score after each step of the first (for a single search, the only) problem."""
        return self.histories[0]

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
            if self.patience is not None and step - max(self._improved_at) > self.patience:
                self.stopped_early = True
                return
            yield step

    def record(self, token_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Record one step's prompts (rows, prompt_len) and their scores (rows,), rows split evenly among problems."""
        token_ids = token_ids.detach().cpu()
        scores = scores.detach().float().cpu()
        rows = len(token_ids) // len(self.pools)
        for index, (pool, history) in enumerate(zip(self.pools, self.histories, strict=True)):
            part = slice(index * rows, (index + 1) * rows)
            pool.offer(token_ids[part], scores[part])
            history.append(pool.best_score)
            if self.patience is not None:
                self._check_round_trip(index)
        self.steps_done += 1
        self.history_seconds.append(round(self.seconds, 4))
        self._bar.update(1)
        best = sum(history[-1] for history in self.histories) / len(self.histories)
        if best > self._shown_best:
            self._shown_best = best
            if len(self.pools) == 1:
                self._bar.set_postfix_str(f"best={best:.4f} {self.vocab.decode(self.pool.best)[:60]!r}")
            else:
                self._bar.set_postfix_str(f"mean best={best:.4f} over {len(self.pools)} problems")
        if self._on_progress is not None:
            prompt, history = self.vocab.decode(self.pool.best), tuple(self.history)
            self._on_progress(Progress(self.steps_done, self.max_steps, self.seconds, history[-1], prompt, history))

    def _check_round_trip(self, index: int) -> None:
        """Score problem `index`'s best prompt as a string when it changed; note the step it improved at."""
        best = self.pools[index].best
        if best == self._checked[index]:
            return
        self._checked[index] = best
        objective = self.objectives[index] if self.objectives else None
        if objective is None:
            raise HardpromptError("patience needs the tracker's objectives")
        score = objective.score_token_ids(self.vocab.encode(self.vocab.acceptable_text(best)))
        self.count_forward_passes(1)
        if score > self._round_trip_best[index]:
            self._round_trip_best[index] = score
            self._improved_at[index] = self.steps_done

    def result(self, objective: Objective, config: dict[str, Any]) -> Result:
        """Close the progress bar and pick the best candidate by its round-trip score."""
        (result,) = self.results([objective], config)
        return result

    def results(self, objectives: list[Objective], config: dict[str, Any]) -> list[Result]:
        """One `Result` per problem, each chosen by its round-trip score under its own objective."""
        self._bar.close()
        if not all(pool.ranked() for pool in self.pools):
            if self.interrupted:
                raise KeyboardInterrupt  # nothing to keep: the caller reports the interruption
            raise HardpromptError("stopped before the first step: no prompt to report")
        results = []
        for pool, history, objective in zip(self.pools, self.histories, objectives, strict=True):
            chosen = best_round_trip(pool, objective, self.vocab)
            round_trip_passes = len(pool.ranked())
            results.append(
                Result(
                    prompt=chosen.prompt,
                    score=chosen.score,
                    projected_score=chosen.projected_score,
                    token_ids=chosen.token_ids,
                    tokens=self.vocab.tokens(chosen.token_ids),
                    steps=self.steps_done,
                    seconds=round(self.seconds, 3),
                    forward_passes=self.forward_passes // len(self.pools) + round_trip_passes,
                    history=history,
                    history_seconds=list(self.history_seconds),
                    interrupted=self.interrupted,
                    method=self.method,
                    config=dict(config),
                    readability=readability(chosen.prompt),
                    stopped_early=self.stopped_early,
                )
            )
        return results
