"""Pieces shared by the applications: model and vocabulary set-up, and running PEZ."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import HardpromptError
from ..io import load_image, looks_like_image_path, read_lines
from ..models import TextEncoder, load_text_encoder
from ..models.causal_lm import CausalLM
from ..objectives.base import Objective
from ..optim.registry import MethodConfig, run_method
from ..optim.result import Result
from ..vocab import Vocabulary, VocabularyRules
from ..words import require_english_words

ModelLike = str | TextEncoder
BankLike = str | Path | Sequence[str] | None
ImageLike = str | Path | Image.Image


def as_image(value: ImageLike) -> Image.Image:
    """An RGB image from a PIL image or a path."""
    return value.convert("RGB") if isinstance(value, Image.Image) else load_image(value)


def encode_negatives(encoder: TextEncoder, negatives: Sequence[ImageLike]) -> torch.Tensor | None:
    """Features of the negative targets: image files (or images) as images, the rest as texts."""
    images: list[Image.Image] = []
    texts: list[str] = []
    for value in negatives:
        if isinstance(value, (Image.Image, Path)) or looks_like_image_path(str(value)):
            images.append(as_image(value))
        elif str(value).strip():
            texts.append(str(value))
        else:
            raise HardpromptError("a negative target is empty")
    features = []
    if images:
        features.append(encoder.encode_images(images))
    if texts:
        features.append(encoder.encode_texts(texts))
    return torch.cat(features) if features else None


def describe(value: object) -> object:
    """A JSON-friendly description of an input for the result's config."""
    if isinstance(value, Image.Image):
        return "<image>"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return value


def describe_bank(bank: BankLike) -> object:
    """The bank as the result's config records it: its path, or "<phrases>" for phrases given directly."""
    return "<phrases>" if isinstance(bank, (list, tuple)) else describe(bank)


def as_encoder(model: ModelLike, device: str = "auto", dtype: str = "float32") -> TextEncoder:
    """Accept a loaded adapter as is; load a name or path."""
    return model if isinstance(model, TextEncoder) else load_text_encoder(model, device=device, dtype=dtype)


def bank_phrases(bank: BankLike) -> tuple[str, ...] | None:
    """Phrases from a bank file (one per line), or the given phrases."""
    if bank is None:
        return None
    if isinstance(bank, (str, Path)):
        return tuple(read_lines(bank))
    return tuple(bank)


def build_vocabulary(
    encoder: TextEncoder | CausalLM,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    words_only: bool = False,
) -> Vocabulary:
    """The allowed tokens of a model (text encoder or causal LM) under the user's vocabulary rules."""
    rules = VocabularyRules(
        blocklist=tuple(blocklist),
        bank_phrases=bank_phrases(bank),
        ascii_only=ascii_only,
        words=require_english_words() if words_only else None,
    )
    return Vocabulary(encoder.tokenizer, len(encoder.embedding_table), encoder.tokenize, rules)


def run_optimizer(
    objective: Objective,
    vocab: Vocabulary,
    config: MethodConfig,
    options: dict[str, Any],
    model_name: str,
    max_prompt_len: int | None,
) -> Result:
    """Validate `config` against the model's longest prompt, run its method (PEZ, GCG, ...), and label the result."""
    config.validate(max_prompt_len)
    return label_result(run_method(objective, vocab, config), vocab, options, model_name)


def label_result(result: Result, vocab: Vocabulary, options: dict[str, Any], model_name: str) -> Result:
    """`result` with its model's name and the application's and vocabulary's options in its config."""
    result.model = model_name
    vocabulary_options = {
        "blocklist": list(vocab.rules.blocklist),
        "ascii_only": vocab.rules.ascii_only,
        "words_only": vocab.rules.words is not None,
        "allowed_tokens": len(vocab),
    }
    result.config = {**result.config, **vocabulary_options, **options}
    return result
