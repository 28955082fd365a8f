"""Hybrid: start from the target's own words or from a token scan, PEZ explores, then GCG polishes.

PEZ moves fast through embedding space (one forward pass per step and restart) but its
nearest-token projection leaves gains on the table; GCG and AutoPrompt improve a prompt one swap
at a time but spend most of a budget climbing out of a random start. The hybrid runs up to three
phases, each on what the budget (wall-clock, forward passes or steps, whichever are set) has left:

1. a start, one step:
   - pick, when the objective's target is a text (see `SupportsTargetTokens`): grow a prompt
     from the target's own allowed tokens one at a time, keeping their order, taking at each round
     the token whose addition scores best (exact scores); a pick shorter than `prompt_len` is
     padded with random allowed tokens;
   - else a token scan, when the objective suits one (image targets, see `SupportsTokenScan` and
     `optim.scan`): the best single tokens, a prompt grown from them, a coordinate sweep; under
     a clock too short to rank the tokens (`RANK_SHARE`), no scan: that step is a random prompt;
2. PEZ for the `explore` share of the budget (none after a pick or a scan);
3. GCG from the best round-trip prompt so far, with the rest.

The result is the best phase's by round-trip score, with every phase's steps, forward passes and
history.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import torch

from ..errors import HardpromptError
from ..objectives.base import Objective, target_token_ids, token_scan
from ..vocab import Vocabulary
from . import gcg, pez, scan
from .result import Result
from .search import SearchConfig, evaluate_ids, evaluate_until, make_tracker
from .tracking import Progress, ProgressCallback, progress_callback, reporting_progress

RANK_SHARE = 0.5
"""With `max_seconds`, the share of it a scan's ranking may take; one that would take longer, timed on
its first call, is skipped and PEZ explores instead."""
SKIPPED_SCAN = "hybrid-scan-skipped"
"""The method of `scan_start`'s result when its ranking would not fit `RANK_SHARE` of the clock."""

DEFAULT_EXPLORE = 0.75
"""PEZ's share without a start (neither pick nor scan). Chosen on distill before the pick existed (0.842
at 0.25 and 0.5, 0.863 at 0.75; 3 prompts, 20 s)."""


@dataclass
class HybridConfig(SearchConfig):
    """A start (pick from a text target's words, or a token scan), PEZ for the `explore` share, then GCG."""

    steps: int = 1000
    explore: float | None = None
    """Share of the budget (seconds, forward passes, steps) given to PEZ, the rest going to GCG (0: no PEZ).
    None: 0.75, or 0 after a pick or a scan (measured: PEZ after either added nothing)."""
    pick: bool = True
    """Start from the target's own words when its target is a text (phase 1)."""
    scan_tokens: int = 64
    """Tokens a token scan keeps (phase 1 for objectives that suit one; 0: no scan)."""
    scan_top_k: int = 32
    """GCG's `top_k` after a scan: its swaps come from each position's top `scan_top_k` tokens by
    gradient (a scan's start is already good, so fewer, likelier swaps)."""
    scan_sample: int = 2000
    """Single tokens the scan scores exactly to fit its ranking, and again among the fit's best."""
    scan_share: float = 0.7
    """With `max_seconds`, the share of it by which a scan's build and sweep stop, leaving GCG the rest
    (its ranking must fit in `RANK_SHARE` of it, see `scan_start`)."""
    lr: float = 0.1
    weight_decay: float = 0.1
    restarts: int = 1
    optimizer: str = "adamw"
    top_k: int = 256
    search_width: int = 128

    def validate(self, max_prompt_len: int | None = None) -> None:
        super().validate(max_prompt_len)
        if self.explore is not None and not 0 <= self.explore < 1:
            raise HardpromptError(f"explore must be at least 0 and below 1 (got {self.explore})")
        pez.validate_optimizer(self.optimizer)
        if min(self.top_k, self.scan_top_k, self.search_width) < 1:
            raise HardpromptError("top-k, scan top-k and search width must be at least 1")
        if self.scan_tokens < 0 or self.scan_sample < 1:
            raise HardpromptError("scan tokens must not be negative, and the scan sample must be at least 1")
        if not 0 < self.scan_share <= 1:
            raise HardpromptError(f"the scan share must be above 0 and at most 1 (got {self.scan_share})")


def pick_target_tokens(objective: Objective, vocab: Vocabulary, config: SearchConfig) -> Result | None:
    """Phase 1: the best in-order pick of `prompt_len` of the target's allowed tokens, grown greedily.

    Round r scores every distinct way to add one more target token to the r already picked (order
    kept), exactly, `eval_batch_size` rows per call, and keeps the best. A pick shorter than
    `prompt_len` (a short text, or a budget spent) is padded with random allowed tokens. One tracker
    step. None when the target has no allowed tokens, or when the forward-pass budget cannot pay
    for one round, the padded prompt and its round-trip check. `max_seconds` is checked before each
    call; a round cut short by it is dropped.
    """
    words = [token for token in target_token_ids(objective) if vocab.allows(token)]
    if not words or (config.max_forward_passes is not None and config.max_forward_passes < len(words) + 2):
        return None
    table = objective.embedding_table.detach()
    tracker = make_tracker(vocab, replace(config, steps=1, patience=None), "hybrid-pick", [objective])

    def out_of_time() -> bool:
        return config.max_seconds is not None and tracker.seconds >= config.max_seconds

    try:
        for _ in tracker.steps():
            objective.new_step()
            picked: list[int] = []
            while len(picked) < min(config.prompt_len, len(words)) and not out_of_time():
                options: dict[tuple[int, ...], list[int]] = {}
                for position in range(len(words)):
                    if position not in picked:
                        option = sorted([*picked, position])
                        options.setdefault(tuple(words[index] for index in option), option)
                left = tracker.forward_passes_left
                if left is not None and left - 2 < len(options):
                    break  # a whole round or none; two passes stay for the padded prompt and its check
                rows = torch.tensor(list(options))
                evaluated = evaluate_until(objective, table, rows, tracker, config.eval_batch_size, out_of_time)
                if evaluated is None:
                    break
                picked = list(options.values())[int(evaluated[0].argmin())]
            chosen = torch.tensor([words[position] for position in picked], dtype=torch.long)
            padding = pez.random_allowed_ids(vocab.allowed_ids, (config.prompt_len - len(chosen),), config.seed)
            prompt = torch.cat([chosen, padding]).unsqueeze(0)
            _, scores = evaluate_ids(objective, table, prompt, tracker, 1)
            tracker.record(prompt, scores)
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, {})


def scan_start(
    objective: Objective, vocab: Vocabulary, config: SearchConfig, tokens: int, sample: int, share: float = 1.0
) -> Result | None:
    """Phase 1 when the objective suits a token scan: the best `tokens` single tokens, a prompt built of them, a sweep.

    One tracker step (see `optim.scan`); a prompt cut short by the budget is padded with random
    allowed tokens. None when the forward-pass budget could not pay twice for the scan and its build.
    With `max_seconds`: a ranking that would take over `RANK_SHARE` of it (timed on its first call)
    is skipped (a random prompt, method `SKIPPED_SCAN`); one cut there ranks what it scored; the
    build and sweep stop at `share` of it. Each checks before every call.
    """
    needed = scan.scan_rows(len(vocab.allowed_ids), sample, tokens, config.prompt_len)
    if config.max_forward_passes is not None and config.max_forward_passes < 2 * needed:
        return None
    table = objective.embedding_table.detach()
    tracker = make_tracker(vocab, replace(config, steps=1, patience=None), "hybrid-scan", [objective])
    limit = None if config.max_seconds is None else share * config.max_seconds
    ranking = None if config.max_seconds is None else min(share, RANK_SHARE) * config.max_seconds

    def out_of_time() -> bool:
        return limit is not None and tracker.seconds >= limit

    def ranking_over() -> bool:
        return ranking is not None and tracker.seconds >= ranking

    chunk = config.eval_batch_size
    skipped = False
    try:
        for _ in tracker.steps():
            objective.new_step()
            try:
                candidates = scan.rank_tokens(
                    objective, vocab, tracker, ranking_over, tokens, sample, chunk, config.seed, ranking
                )
            except scan.TooSlow:
                candidates, skipped = None, True
            built = (
                []
                if candidates is None
                else scan.build(objective, candidates, config.prompt_len, tracker, out_of_time, chunk)
            )
            padding = pez.random_allowed_ids(vocab.allowed_ids, (config.prompt_len - len(built),), config.seed)
            prompt = torch.cat([torch.tensor(built, dtype=torch.long), padding])
            _, scores = evaluate_ids(objective, table, prompt.unsqueeze(0), tracker, 1)
            if candidates is not None and not out_of_time():
                generator = torch.Generator().manual_seed(config.seed)
                prompt, _ = scan.sweep(
                    objective, vocab, prompt, float(scores[0]), candidates, tracker, out_of_time, chunk, generator
                )
                _, scores = evaluate_ids(objective, table, prompt.unsqueeze(0), tracker, 1)
            tracker.record(prompt.unsqueeze(0), scores)
    except KeyboardInterrupt:
        tracker.interrupted = True
    result = tracker.result(objective, {})
    return replace(result, method=SKIPPED_SCAN) if skipped else result


def _continued(report: ProgressCallback | None, steps: int, before: Result | None = None) -> ProgressCallback | None:
    """`report` as one search of `steps` steps: a later phase continues the earlier ones' steps, time and history."""
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


def _joined(before: Result | None, after: Result, start: float) -> Result:
    """One result for two consecutive phases: the better prompt by round-trip score, both phases' counts."""
    if before is None:
        return after
    best = after if after.score >= before.score else before
    offset = before.seconds
    return replace(
        best,
        steps=before.steps + after.steps,
        seconds=round(time.perf_counter() - start, 3),
        forward_passes=before.forward_passes + after.forward_passes,
        history=before.history + [max(before.history[-1], h) for h in after.history],
        history_seconds=before.history_seconds + [round(offset + s, 4) for s in after.history_seconds],
        interrupted=after.interrupted,
        stopped_early=after.stopped_early,
    )


class _Budget:
    """What is left of a config's budgets after earlier phases."""

    def __init__(self, config: HybridConfig) -> None:
        self.config = config
        self.start = time.perf_counter()

    def seconds(self, share: float = 1.0) -> float | None:
        if self.config.max_seconds is None:
            return None
        return (self.config.max_seconds - (time.perf_counter() - self.start)) * share

    def passes(self, done: Result | None, share: float = 1.0) -> int | None:
        if self.config.max_forward_passes is None:
            return None
        return int((self.config.max_forward_passes - (done.forward_passes if done else 0)) * share)

    def steps(self, done: Result | None) -> int:
        return self.config.steps - (done.steps if done else 0)

    def left(self, done: Result | None) -> bool:
        """Whether another phase can take a step."""
        seconds, passes = self.seconds(), self.passes(done)
        return self.steps(done) >= 1 and (seconds is None or seconds > 0) and (passes is None or passes > 1)


def run(objective: Objective, vocab: Vocabulary, config: HybridConfig | None = None) -> Result:
    """Optimize a hard prompt: a start (pick or scan), PEZ, then GCG from the best; best by round trip.

    A Ctrl-C in a later phase keeps the earlier phases' best (the result says `interrupted`).
    """
    config = config or HybridConfig()
    config.validate()
    budget = _Budget(config)
    common = dict(
        prompt_len=config.prompt_len,
        batch_size=config.batch_size,
        seed=config.seed,
        candidates=config.candidates,
        progress=config.progress,
        patience=config.patience,
    )
    report = progress_callback()

    def start_config() -> SearchConfig:
        """Phase 1's one step, on the whole budget left."""
        return SearchConfig(
            **common,
            steps=1,
            max_seconds=budget.seconds(),
            max_forward_passes=budget.passes(None),
            eval_batch_size=config.eval_batch_size,
        )

    result: Result | None = None
    if config.pick:
        with reporting_progress(_continued(report, config.steps)):
            result = pick_target_tokens(objective, vocab, start_config())
    if result is None and config.scan_tokens and token_scan(objective):
        with reporting_progress(_continued(report, config.steps)):
            result = scan_start(
                objective, vocab, start_config(), config.scan_tokens, config.scan_sample, config.scan_share
            )
    started = result is not None and result.method != SKIPPED_SCAN  # a pick, or a scan
    scanned = started and result.method == "hybrid-scan"
    explore = config.explore if config.explore is not None else (0.0 if started else DEFAULT_EXPLORE)
    steps_left = budget.steps(result)
    explore_steps = min(round(steps_left * explore), max(1, steps_left - 1))  # GCG keeps a step if any
    try:
        if explore_steps > 0 and (result is None or (not result.interrupted and budget.left(result))):
            passes = budget.passes(result, explore)
            with reporting_progress(_continued(report, config.steps, result)):
                explored = pez.run(
                    objective,
                    vocab,
                    pez.PEZConfig(
                        **common,
                        steps=explore_steps,
                        lr=config.lr,
                        weight_decay=config.weight_decay,
                        restarts=config.restarts,
                        optimizer=config.optimizer,
                        max_seconds=budget.seconds(explore),
                        max_forward_passes=None if passes is None else max(config.restarts, passes),
                    ),
                )
            result = _joined(result, explored, budget.start)
        if result is None or (not result.interrupted and budget.left(result)):
            with reporting_progress(_continued(report, config.steps, result)):
                polished = gcg.run(
                    objective,
                    vocab,
                    gcg.GCGConfig(
                        **common,
                        steps=budget.steps(result),
                        top_k=config.scan_top_k if scanned else config.top_k,
                        search_width=config.search_width,
                        eval_batch_size=config.eval_batch_size,
                        max_seconds=budget.seconds(),
                        max_forward_passes=budget.passes(result),
                        start_ids=tuple(result.token_ids) if result else None,
                    ),
                )
            result = _joined(result, polished, budget.start)
    except KeyboardInterrupt:
        if result is None:
            raise
        result = replace(result, interrupted=True)
    return replace(result, method="hybrid", config=asdict(config))
