"""Hybrid: PEZ explores, then GCG polishes PEZ's best string token by token.

PEZ moves fast through embedding space (one forward pass per step and restart) but its
nearest-token projection leaves gains on the table; GCG and AutoPrompt improve a prompt one swap
at a time but spend most of a budget climbing out of a random start. The hybrid gives PEZ the
`explore` share of the budget (wall-clock, forward passes or steps, whichever are set), then
starts GCG from PEZ's best round-trip prompt with what is left. The result is the better of the two
by round-trip score, with both phases' history.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from ..errors import HardpromptError
from ..objectives.base import Objective
from ..vocab import Vocabulary
from . import gcg, pez
from .result import Result
from .search import SearchConfig
from .tracking import Progress, ProgressCallback, progress_callback, reporting_progress


@dataclass
class HybridConfig(SearchConfig):
    """PEZ for the `explore` share of each budget, then GCG from its best string."""

    steps: int = 1000
    explore: float = 0.75
    """Share of the budget (seconds, forward passes, steps) given to PEZ; the rest goes to GCG."""
    lr: float = 0.1
    weight_decay: float = 0.1
    restarts: int = 1
    optimizer: str = "adamw"
    top_k: int = 256
    search_width: int = 128

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if not 0 < self.explore < 1:
            raise HardpromptError(f"explore must be between 0 and 1 (got {self.explore})")
        pez.validate_optimizer(self.optimizer)
        if self.top_k < 1 or self.search_width < 1:
            raise HardpromptError("top-k and search width must be at least 1")


def _share(budget: float | None, fraction: float) -> float | None:
    return None if budget is None else budget * fraction


def _continued(report: ProgressCallback | None, steps: int, before: Result | None = None) -> ProgressCallback | None:
    """`report` as one search of `steps` steps: a second phase continues the first's steps, time and history."""
    if report is None:
        return None

    def forward(progress: Progress) -> None:
        if before is None:
            report(replace(progress, steps=steps))
            return
        best = max(before.history[-1], progress.best_score)
        report(
            Progress(
                step=before.steps + progress.step,
                steps=steps,
                seconds=before.seconds + progress.seconds,
                best_score=best,
                best_prompt=progress.best_prompt if progress.best_score >= before.history[-1] else before.prompt,
                history=tuple(before.history) + tuple(max(before.history[-1], h) for h in progress.history),
            )
        )

    return forward


def run(objective: Objective, vocab: Vocabulary, config: HybridConfig | None = None) -> Result:
    """Optimize a hard prompt with PEZ, then GCG from PEZ's best; best by round-trip score."""
    config = config or HybridConfig()
    config.validate()
    start = time.perf_counter()
    common = dict(
        prompt_len=config.prompt_len,
        batch_size=config.batch_size,
        seed=config.seed,
        candidates=config.candidates,
        progress=config.progress,
        patience=config.patience,
    )
    report = progress_callback()
    explore_passes = _share(config.max_forward_passes, config.explore)
    with reporting_progress(_continued(report, config.steps)):
        explored = pez.run(
            objective,
            vocab,
            pez.PEZConfig(
                **common,
                steps=max(1, round(config.steps * config.explore)),
                lr=config.lr,
                weight_decay=config.weight_decay,
                restarts=config.restarts,
                optimizer=config.optimizer,
                max_seconds=_share(config.max_seconds, config.explore),
                max_forward_passes=None if explore_passes is None else max(config.restarts, int(explore_passes)),
            ),
        )
    result = explored
    passes_left = None if config.max_forward_passes is None else config.max_forward_passes - explored.forward_passes
    seconds_left = None if config.max_seconds is None else config.max_seconds - (time.perf_counter() - start)
    budget_left = (passes_left is None or passes_left > 1) and (seconds_left is None or seconds_left > 0)
    if not explored.interrupted and budget_left:
        with reporting_progress(_continued(report, config.steps, explored)):
            polished = gcg.run(
                objective,
                vocab,
                gcg.GCGConfig(
                    **common,
                    steps=max(1, config.steps - explored.steps),
                    top_k=config.top_k,
                    search_width=config.search_width,
                    eval_batch_size=config.eval_batch_size,
                    max_seconds=seconds_left,
                    max_forward_passes=passes_left,
                    start_ids=tuple(explored.token_ids) or None,
                ),
            )
        best = polished if polished.score >= explored.score else explored
        offset = explored.seconds
        result = replace(
            best,
            steps=explored.steps + polished.steps,
            seconds=round(time.perf_counter() - start, 3),
            forward_passes=explored.forward_passes + polished.forward_passes,
            history=explored.history + [max(explored.history[-1], h) for h in polished.history],
            history_seconds=explored.history_seconds + [round(offset + s, 4) for s in polished.history_seconds],
            interrupted=polished.interrupted,
            stopped_early=polished.stopped_early,
        )
    return replace(result, method="hybrid", config=asdict(config))
