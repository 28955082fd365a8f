"""PEZ: projected gradient descent on a continuous prompt (Wen et al. 2023, Algorithm 1)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import HardpromptError
from ..objectives.base import (
    BatchedObjective,
    Evaluation,
    Objective,
    SupportsCudaGraph,
    TableBlock,
    table_blocks,
)
from ..vocab import Vocabulary
from .result import Result
from .search import affordable, make_tracker, validate_common
from .tracking import SearchTracker


@dataclass
class PEZConfig:
    """Settings of one PEZ run; the defaults are the paper's."""

    prompt_len: int = 16
    steps: int = 3000
    lr: float = 0.1
    weight_decay: float = 0.1
    restarts: int = 1
    """Independent prompts optimized together in one batched forward pass ("prompt_bs")."""
    batch_size: int | None = None
    """Targets per step for objectives with many targets (the paper uses 1 for many images)."""
    seed: int = 0
    max_seconds: float | None = None
    """Stop after this much wall-clock time, whatever `steps` says."""
    candidates: int = 8
    """Best distinct prompts kept for the final round-trip check."""
    progress: bool = True
    max_forward_passes: int | None = None
    """Stop before evaluating more prompt rows than this (each step evaluates `restarts` rows)."""
    patience: int | None = None
    """Stop when the best round-trip score has not improved for this many steps."""
    optimizer: str = "adamw"
    """Update rule of the continuous prompt: "adamw" or "adafactor" (the paper's, with this explicit lr)."""
    cuda_graph: bool = False
    """On a GPU, capture the whole step in a CUDA graph (AdamW, objectives with fixed shapes); else eager."""

    def validate(self, max_prompt_len: int | None = None) -> None:
        """Raise HardpromptError on settings that cannot run."""
        validate_common(self, max_prompt_len)
        validate_optimizer(self.optimizer)


TABLE_CHUNK = 4096
"""Rows of an embedding table processed at a time where a full-size temporary would raise the peak memory."""


def unit_rows(table: torch.Tensor, ids: torch.Tensor, chunk: int = TABLE_CHUNK) -> torch.Tensor:
    """`F.normalize(table[ids].float(), dim=-1)`, built `chunk` rows at a time: no full-size temporary
    besides the result (see benchmarks/results/memory.md)."""
    unit = torch.empty(len(ids), table.shape[1], dtype=torch.float32, device=table.device)
    for start in range(0, len(ids), chunk):
        unit[start : start + chunk] = F.normalize(table[ids[start : start + chunk]].float(), dim=-1)
    return unit


class NearestTokenProjection:
    """Projects rows of a continuous prompt onto the nearest allowed token (cosine), exactly.

    The allowed part of the embedding table is normalized once, here, not at every step. Scanning
    the whole table is a large share of a PEZ step (16 rows against ~49k tokens). Where bfloat16
    matrix products are fast (a GPU, or a CPU with AVX512-BF16/AMX), the scan runs on a bfloat16
    copy and only the `shortlist` best tokens per row are re-scored in float32. A token left off a
    row's shortlist has a coarse score at most the shortlist's last one, so its true cosine is
    bounded by that score plus the rounding error of bfloat16 (measured per query and per table, not
    assumed); a row whose best re-scored token does not beat that bound is re-scanned in float32.
    Elsewhere (AVX2 CPUs, where bfloat16 products are slower than float32) the scan is float32.
    Either way the result is the float32 argmax.

    A table of several encoders' tables side by side (`blocks`, from the objective) is projected
    block-wise: each block of a row and of the table is normalized on its own, and the nearest token
    is the one with the highest weighted sum of per-block cosines (a float32 scan, block by block).
    """

    def __init__(
        self,
        embedding_table: torch.Tensor,
        allowed_ids: torch.Tensor,
        shortlist: int = 64,
        bfloat16_scan: bool | None = None,
        blocks: Sequence[TableBlock] = (),
    ) -> None:
        """`bfloat16_scan`: force the bfloat16 shortlist scan on or off (default: where it is fast).

        `blocks`: the table's column blocks and their weights (several encoders); () for one table.
        """
        self.allowed_ids = allowed_ids.to(embedding_table.device)
        table = embedding_table.detach()
        self.blocks: list[tuple[float, torch.Tensor]] = []
        self.unit_table = None
        if len(blocks) > 1:
            parts = table.split([block.width for block in blocks], dim=-1)
            self.blocks = [(b.weight, unit_rows(p, self.allowed_ids)) for b, p in zip(blocks, parts, strict=True)]
        else:
            self.unit_table = unit_rows(table, self.allowed_ids)
        self.shortlist = min(shortlist, len(self.allowed_ids))
        if bfloat16_scan is None:
            bfloat16_scan = fast_bfloat16(embedding_table.device)
        self.coarse_table = self.unit_table.bfloat16() if bfloat16_scan and self.unit_table is not None else None
        if self.coarse_table is not None:
            self.table_rounding = max(
                (unit - unit.bfloat16().float()).norm(dim=-1).max().item()
                for unit in self.unit_table.split(TABLE_CHUNK)
            )

    @torch.no_grad()
    def __call__(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """Token ids (restarts, prompt_len) nearest to `prompt_embeds` (restarts, prompt_len, dim)."""
        if self.blocks:
            return self._nearest_by_blocks(prompt_embeds)
        queries = F.normalize(prompt_embeds.float(), dim=-1).reshape(-1, prompt_embeds.shape[-1])
        if self.coarse_table is None:
            nearest = (self.unit_table @ queries.T).argmax(dim=0)
            return self.allowed_ids[nearest].reshape(prompt_embeds.shape[:-1])
        coarse_queries = queries.bfloat16()
        coarse, shortlist = (coarse_queries @ self.coarse_table.T).topk(self.shortlist, dim=-1)
        shortlist = shortlist.sort(dim=-1).values  # ties go to the lowest index, as in a full argmax
        exact = torch.einsum("nd,nkd->nk", queries, self.unit_table[shortlist])
        best_exact, best_position = exact.max(dim=-1)
        nearest = shortlist.gather(1, best_position[:, None]).squeeze(1)
        # |coarse - true| <= |q - q~| |u| + |q~| |u - u~| (rounded inputs) + 2**-8 |coarse| (rounded
        # output, bfloat16 keeps 8 significant bits) + float32 accumulation (under 1e-4 for any width).
        query_rounding = (queries - coarse_queries.float()).norm(dim=-1)
        input_error = query_rounding + coarse_queries.float().norm(dim=-1) * self.table_rounding + 1e-4
        left_off_bound = coarse[:, -1].float().clamp(min=0) * (1 + 2.0**-8) + input_error
        uncertain = best_exact <= left_off_bound
        if uncertain.any():
            nearest[uncertain] = (queries[uncertain] @ self.unit_table.T).argmax(dim=-1)
        return self.allowed_ids[nearest].reshape(prompt_embeds.shape[:-1])

    def _nearest_by_blocks(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """The token with the highest Σ weight · cos over blocks, one product per block (a zero weight adds zeros)."""
        queries = prompt_embeds.float().reshape(-1, prompt_embeds.shape[-1])
        parts = queries.split([unit_table.shape[1] for _, unit_table in self.blocks], dim=-1)
        scores = None
        for (weight, unit_table), part in zip(self.blocks, parts, strict=True):
            block_scores = unit_table @ (weight * F.normalize(part, dim=-1)).T
            scores = block_scores if scores is None else scores + block_scores
        return self.allowed_ids[scores.argmax(dim=0)].reshape(prompt_embeds.shape[:-1])


def fast_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products beat float32 ones on `device` (GPU, or AVX512-BF16/AMX CPU)."""
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def random_allowed_ids(allowed_ids: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Token ids drawn uniformly from the allowed ones, reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(allowed_ids), shape, generator=generator)
    return allowed_ids.cpu()[picks]


OPTIMIZERS = ("adamw", "adafactor")
"""Update rules for a continuous prompt (PEZ, soft)."""


def validate_optimizer(name: str) -> None:
    """Raise HardpromptError unless `name` is one of OPTIMIZERS."""
    if name not in OPTIMIZERS:
        raise HardpromptError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def make_optimizer(parameters: list[torch.Tensor], name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, or transformers' Adafactor with a fixed lr (no relative step, no parameter scaling, no warmup)."""
    validate_optimizer(name)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            parameters,
            lr=lr,
            weight_decay=weight_decay,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def continuous_prompt(
    table: torch.Tensor, allowed_ids: torch.Tensor, config: Any
) -> tuple[torch.Tensor, torch.optim.Optimizer]:
    """A continuous prompt (restarts, prompt_len, dim) at random allowed tokens, and its optimizer.

    `config` is any method config with prompt_len, restarts, seed, lr, weight_decay and optimizer (PEZ, soft).
    """
    soft_prompt = starting_prompt(table, allowed_ids, config, config.seed)
    return soft_prompt, make_optimizer([soft_prompt], config.optimizer, config.lr, config.weight_decay)


def starting_prompt(table: torch.Tensor, allowed_ids: torch.Tensor, config: Any, seed: int) -> torch.Tensor:
    """A continuous prompt (config.restarts, config.prompt_len, dim) at random allowed tokens drawn from `seed`."""
    init_ids = random_allowed_ids(allowed_ids, (config.restarts, config.prompt_len), seed)
    return table[init_ids.to(table.device)].clone().float().requires_grad_(True)


class ProjectedGradientStep:
    """PEZ's update, one call per step, for independent problems with `config.restarts` prompt rows each.

    A call draws the objective's minibatch, projects the continuous prompt onto the nearest allowed
    tokens, evaluates the objective on that hard prompt, and applies the gradient taken at the hard
    prompt to the continuous one. It returns the hard token ids and their evaluation.

    With several `seeds`, the objective is batched (`BatchedObjective`): problem i owns rows
    i·restarts … (i+1)·restarts − 1, starts from its own seed and has its own optimizer state (one
    parameter tensor per problem; AdamW and Adafactor update parameters separately), so a problem's
    prompts do not depend on which other problems share its batch.

    With `config.cuda_graph` on a GPU, an objective that declares fixed shapes (`SupportsCudaGraph`)
    and AdamW, the whole step (projection, forward, input-gradient backward, update) is captured in
    a CUDA graph after `WARMUP_STEPS` eager steps and replayed from then on: one launch per step
    instead of hundreds. The projection is then the plain float32 scan (no data-dependent
    re-scan). Where capture fails, the step stays eager, with a warning.
    """

    WARMUP_STEPS = 3

    def __init__(
        self, objective: Objective, vocab: Vocabulary, config: PEZConfig, seeds: Sequence[int] | None = None
    ) -> None:
        self.objective = objective
        self.table = objective.embedding_table.detach()
        self.graphed = (
            config.cuda_graph
            and self.table.device.type == "cuda"
            and config.optimizer == "adamw"
            and isinstance(objective, SupportsCudaGraph)
            and objective.fixed_shapes
        )
        exact_scan = False if self.graphed else None  # the shortlist's re-scan is data-dependent: not capturable
        self.project = NearestTokenProjection(
            self.table, vocab.allowed_ids, bfloat16_scan=exact_scan, blocks=table_blocks(objective)
        )
        seeds = [config.seed] if seeds is None else list(seeds)
        self.soft_prompts = [starting_prompt(self.table, vocab.allowed_ids, config, seed) for seed in seeds]
        if self.graphed:
            self.optimizer = torch.optim.AdamW(
                self.soft_prompts, lr=config.lr, weight_decay=config.weight_decay, capturable=True
            )
        else:
            self.optimizer = make_optimizer(self.soft_prompts, config.optimizer, config.lr, config.weight_decay)
        self.restarts = config.restarts
        self._steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One eager step: hard ids, loss and score."""
        self.objective.new_step()
        soft_prompt = self.soft_prompts[0] if len(self.soft_prompts) == 1 else torch.cat(self.soft_prompts)
        hard_ids = self.project(soft_prompt)
        hard_prompt = self.table[hard_ids].requires_grad_(True)
        evaluation = self.objective.evaluate(hard_prompt)
        (gradient,) = torch.autograd.grad(evaluation.loss.sum(), hard_prompt)
        for parameter, part in zip(self.soft_prompts, gradient.split(self.restarts), strict=True):
            parameter.grad = part.to(parameter.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return hard_ids, evaluation.loss.detach(), evaluation.score

    def __call__(self) -> tuple[torch.Tensor, Evaluation]:
        self._steps += 1
        if self._graph is None and self.graphed:
            outputs = self._graph_step()
        elif self._graph is not None:
            self._graph.replay()
            outputs = tuple(output.clone() for output in self._outputs)
        else:
            outputs = self._step()
        hard_ids, loss, score = outputs
        return hard_ids, Evaluation(loss=loss, score=score)

    def _graph_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Warm-up steps on a side stream (as CUDA graph capture requires), then capture and replay."""
        if self._steps <= self.WARMUP_STEPS:
            side = torch.cuda.Stream(self.table.device)
            side.wait_stream(torch.cuda.current_stream(self.table.device))
            with torch.cuda.stream(side):
                outputs = self._step()
            torch.cuda.current_stream(self.table.device).wait_stream(side)
            return outputs
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._outputs = self._step()
        except RuntimeError as error:
            self.graphed = False
            self._outputs = None
            torch.cuda.synchronize(self.table.device)
            warnings.warn(f"PEZ step not captured in a CUDA graph, running eagerly ({error})", stacklevel=3)
            return self._step()
        self._graph = graph
        graph.replay()
        return tuple(output.clone() for output in self._outputs)


def run(objective: Objective, vocab: Vocabulary, config: PEZConfig | None = None) -> Result:
    """Optimize a hard prompt with PEZ and return the best one by its round-trip score.

    Each step projects the continuous prompt onto the nearest allowed tokens, evaluates the
    objective on the projected (hard) prompt, and applies the gradient taken at the hard prompt
    to the continuous one. Ctrl-C stops early and still returns the best prompt so far.
    """
    config = config or PEZConfig()
    config.validate()
    torch.manual_seed(config.seed)
    step = ProjectedGradientStep(objective, vocab, config)
    tracker = make_tracker(vocab, config, "pez", [objective])
    _search(step, tracker, config.restarts)
    return tracker.result(objective, asdict(config))


def _search(step: ProjectedGradientStep, tracker: SearchTracker, rows: int) -> None:
    """Step until a budget is spent; Ctrl-C marks the search interrupted (its best prompts are kept)."""
    try:
        for _ in tracker.steps():
            if affordable(tracker, rows) < rows:
                break
            hard_ids, evaluation = step()
            tracker.count_forward_passes(rows)
            tracker.record(hard_ids, evaluation.score)
    except KeyboardInterrupt:
        tracker.interrupted = True


def run_each(objective: BatchedObjective, vocab: Vocabulary, config: PEZConfig, seeds: Sequence[int]) -> list[Result]:
    """PEZ on the independent problems of a batched objective at once: one `Result` per problem.

    Problem i starts from `seeds[i]` and is chosen by its round-trip score under `objective.problem(i)`;
    with float32 weights its result equals `run(objective.problem(i), vocab, replace(config, seed=seeds[i]))`
    up to the rounding of batched products. Budgets count every problem's rows together; Ctrl-C stops
    all of them and still returns each one's best prompt so far (`interrupted` True).
    """
    config.validate()
    if len(seeds) != objective.problems:
        raise HardpromptError(f"{len(seeds)} seeds for {objective.problems} problems")
    rows = config.restarts * objective.problems
    step = ProjectedGradientStep(objective, vocab, config, seeds)
    problems = [objective.problem(index) for index in range(objective.problems)]
    tracker = make_tracker(vocab, config, "pez", problems)
    _search(step, tracker, rows)
    return [
        replace(result, config={**result.config, "seed": seed})
        for result, seed in zip(tracker.results(problems, asdict(config)), seeds, strict=True)
    ]
