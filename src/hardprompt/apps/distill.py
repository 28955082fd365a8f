"""Text → shorter prompt: distill a long prompt into a few tokens with the same meaning (paper §4.5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import HardpromptError
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .common import (
    BankLike,
    ImageLike,
    ModelsLike,
    ProgressCallback,
    build_vocabulary,
    describe,
    describe_bank,
    encoders_label,
    run_optimizer,
    similarity_objective,
)

DEFAULT_TEXT_MODEL = "minilm"


def distilled_length(token_count: int, ratio: float) -> int:
    """The prompt length for a distillation ratio (distilled / original), at least one token."""
    if not 0 < ratio <= 1:
        raise HardpromptError(f"ratio must be in (0, 1] (got {ratio})")
    return max(1, round(token_count * ratio))


def distill(
    text: str,
    model: ModelsLike = DEFAULT_TEXT_MODEL,
    config: MethodConfig | None = None,
    *,
    model_weights: Sequence[float] | None = None,
    ratio: float | None = None,
    negatives: Sequence[ImageLike] = (),
    negative_weight: float = 1.0,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    words_only: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    on_progress: ProgressCallback | None = None,
) -> Result:
    """Learn a short hard prompt whose features match those of the longer `text`.

    With `ratio`, the prompt length is that fraction of `text`'s token count.
    The config's type picks the optimizer (PEZConfig, GCGConfig, ...; see optim.registry).
    Several models (or `sdxl`) learn one prompt for all of them, weighted by `model_weights`.
    """
    config = config or PEZConfig()
    if not text or not text.strip():
        raise HardpromptError("the text to distill is empty")
    objective, encoders = similarity_objective(
        model,
        texts=[text],
        weights=model_weights,
        negatives=negatives,
        negative_weight=negative_weight,
        seed=config.seed,
        device=device,
        dtype=dtype,
    )
    original_tokens = encoders[0].count_tokens(text)
    if ratio is not None:
        config = replace(config, prompt_len=distilled_length(original_tokens, ratio))
    vocab = build_vocabulary(encoders[0], blocklist, bank, ascii_only, words_only)
    options = {
        "text": text,
        "original_tokens": original_tokens,
        "ratio": ratio,
        "negatives": describe(list(negatives)),
        "negative_weight": negative_weight,
        "bank": describe_bank(bank),
    }
    return run_optimizer(objective, vocab, config, options, *encoders_label(encoders), on_progress)
