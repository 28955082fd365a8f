"""PEZ: projected gradient descent on a continuous prompt (Wen et al. 2023, Algorithm 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import HardpromptError
from ..objectives.base import Evaluation, Objective, TableBlock, table_blocks
from ..vocab import Vocabulary
from .result import Result
from .search import affordable, make_tracker, validate_common


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
    optimizer: str = "adamw"
    """Update rule of the continuous prompt: "adamw" or "adafactor" (the paper's, with this explicit lr)."""

    def validate(self, max_prompt_len: int | None = None) -> None:
        """Raise HardpromptError on settings that cannot run."""
        validate_common(self, max_prompt_len)
        validate_optimizer(self.optimizer)


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
        allowed_table = embedding_table.detach()[self.allowed_ids].float()
        self.blocks: list[tuple[float, torch.Tensor]] = []
        if len(blocks) > 1:
            parts = allowed_table.split([block.width for block in blocks], dim=-1)
            self.blocks = [(b.weight, F.normalize(p, dim=-1)) for b, p in zip(blocks, parts, strict=True)]
            allowed_table = None
        self.unit_table = None if allowed_table is None else F.normalize(allowed_table, dim=-1)
        self.shortlist = min(shortlist, len(self.allowed_ids))
        if bfloat16_scan is None:
            bfloat16_scan = fast_bfloat16(embedding_table.device)
        self.coarse_table = self.unit_table.bfloat16() if bfloat16_scan and self.unit_table is not None else None
        if self.coarse_table is not None:
            self.table_rounding = (self.unit_table - self.coarse_table.float()).norm(dim=-1).max().item()

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


def make_optimizer(parameter: torch.Tensor, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, or transformers' Adafactor with a fixed lr (no relative step, no parameter scaling, no warmup)."""
    validate_optimizer(name)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            [parameter],
            lr=lr,
            weight_decay=weight_decay,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    return torch.optim.AdamW([parameter], lr=lr, weight_decay=weight_decay)


def continuous_prompt(
    table: torch.Tensor, allowed_ids: torch.Tensor, config: Any
) -> tuple[torch.Tensor, torch.optim.Optimizer]:
    """A continuous prompt (restarts, prompt_len, dim) at random allowed tokens, and its optimizer.

    `config` is any method config with prompt_len, restarts, seed, lr, weight_decay and optimizer (PEZ, soft).
    """
    init_ids = random_allowed_ids(allowed_ids, (config.restarts, config.prompt_len), config.seed)
    soft_prompt = table[init_ids.to(table.device)].clone().float().requires_grad_(True)
    return soft_prompt, make_optimizer(soft_prompt, config.optimizer, config.lr, config.weight_decay)


class ProjectedGradientStep:
    """PEZ's update, one call per step, for `config.restarts` prompt rows optimized together.

    A call draws the objective's minibatch, projects the continuous prompt onto the nearest allowed
    tokens, evaluates the objective on that hard prompt, and applies the gradient taken at the hard
    prompt to the continuous one. It returns the hard token ids and their evaluation.
    """

    def __init__(self, objective: Objective, vocab: Vocabulary, config: PEZConfig) -> None:
        self.objective = objective
        self.table = objective.embedding_table.detach()
        self.project = NearestTokenProjection(self.table, vocab.allowed_ids, blocks=table_blocks(objective))
        self.soft_prompt, self.optimizer = continuous_prompt(self.table, vocab.allowed_ids, config)

    def __call__(self) -> tuple[torch.Tensor, Evaluation]:
        self.objective.new_step()
        hard_ids = self.project(self.soft_prompt)
        hard_prompt = self.table[hard_ids].requires_grad_(True)
        evaluation = self.objective.evaluate(hard_prompt)
        (gradient,) = torch.autograd.grad(evaluation.loss.sum(), hard_prompt)
        self.soft_prompt.grad = gradient.to(self.soft_prompt.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return hard_ids, evaluation


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
    tracker = make_tracker(vocab, config, "pez")
    try:
        for _ in tracker.steps():
            if affordable(tracker, config.restarts) < config.restarts:
                break
            hard_ids, evaluation = step()
            tracker.count_forward_passes(config.restarts)
            tracker.record(hard_ids, evaluation.score)
    except KeyboardInterrupt:
        tracker.interrupted = True
    return tracker.result(objective, asdict(config))
