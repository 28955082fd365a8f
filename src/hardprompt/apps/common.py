"""Pieces shared by the applications: model and vocabulary set-up, and running PEZ."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import HardpromptError
from ..io import load_image, looks_like_image_path, read_lines, upright_rgb
from ..models import TextEncoder, load_text_encoder
from ..models.causal_lm import CausalLM
from ..models.loading import encode_images_once, expand_model_names
from ..objectives import FeatureSimilarity
from ..objectives.base import Objective
from ..objectives.multi_encoder import MultiEncoderObjective, check_model_weights
from ..optim.registry import MethodConfig, run_method
from ..optim.result import Result
from ..optim.tracking import Progress as Progress
from ..optim.tracking import ProgressCallback as ProgressCallback
from ..optim.tracking import reporting_progress
from ..vocab import Vocabulary, VocabularyRules
from ..words import require_english_words

ModelLike = str | TextEncoder
ModelsLike = ModelLike | Sequence[ModelLike]
"""One model, or several that read one prompt together (a name may be a group alias such as sdxl)."""
BankLike = str | Path | Sequence[str] | None
ImageLike = str | Path | Image.Image


def as_image(value: ImageLike) -> Image.Image:
    """An upright RGB image (EXIF orientation applied) from a PIL image or a path."""
    return upright_rgb(value) if isinstance(value, Image.Image) else load_image(value)


def is_image_input(value: object) -> bool:
    """True for an image, a Path, or a string naming an image file by its suffix; other strings are texts."""
    return isinstance(value, (Image.Image, Path)) or looks_like_image_path(str(value))


def split_negatives(negatives: Sequence[ImageLike]) -> tuple[list[Image.Image], list[str]]:
    """The negative targets that are images (image files, or images) and those that are texts."""
    images: list[Image.Image] = []
    texts: list[str] = []
    for value in negatives:
        if is_image_input(value):
            images.append(as_image(value))
        elif str(value).strip():
            texts.append(str(value))
        else:
            raise HardpromptError("a negative target is empty")
    return images, texts


def encode_negatives(encoder: TextEncoder, negatives: Sequence[ImageLike]) -> torch.Tensor | None:
    """Features of the negative targets: image files (or images) as images, the rest as texts."""
    images, texts = split_negatives(negatives)
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


def as_encoder(model: ModelLike, device: str = "auto", dtype: str = "float32", image_tower: bool = True) -> TextEncoder:
    """Accept a loaded adapter as is; load a name or path (without its image tower unless `image_tower`)."""
    if isinstance(model, TextEncoder):
        return model
    return load_text_encoder(model, device=device, dtype=dtype, image_tower=image_tower)


def model_list(models: ModelsLike) -> list[ModelLike]:
    """The models `models` stands for, group aliases (sdxl) expanded."""
    items = [models] if isinstance(models, (str, TextEncoder)) else list(models)
    if not items:
        raise HardpromptError("give at least one model")
    return [name for item in items for name in (expand_model_names(item) if isinstance(item, str) else [item])]


def load_encoders(
    models: ModelsLike, device: str, dtype: str, need_images: bool, weights: Sequence[float] | None = None
) -> list[TextEncoder]:
    """The adapters of `models`, loaded once for several runs; without image towers unless `need_images`.

    `weights`, when given, are checked against the models before anything loads.
    """
    items = model_list(models)
    if weights is not None:
        check_model_weights(weights, len(items))
    encoders: list[TextEncoder] = []
    for item in items:
        encoder = as_encoder(item, device, dtype, image_tower=need_images)
        if encoders:
            check_shared_vocabulary(encoders[0], encoder)
        encoders.append(encoder)
    return encoders


def check_shared_vocabulary(first: TextEncoder, other: TextEncoder) -> None:
    """Raise unless `other` has the token vocabulary of `first` (one prompt, read by both)."""
    same_size = len(first.embedding_table) == len(other.embedding_table)
    if not same_size or first.tokenizer.get_vocab() != other.tokenizer.get_vocab():
        raise HardpromptError(
            f"models {first.name} and {other.name} do not share a token vocabulary; "
            "one prompt for several models needs the same tokenizer"
        )


def similarity_objective(
    models: ModelsLike,
    *,
    images: Sequence[Image.Image] = (),
    texts: Sequence[str] = (),
    weights: Sequence[float] | None = None,
    negatives: Sequence[ImageLike] = (),
    negative_weight: float = 1.0,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
) -> tuple[Objective, list[TextEncoder]]:
    """A FeatureSimilarity per model to the target `images` or `texts` (several: their `MultiEncoderObjective`).

    A model given by name is read tower by tower, one model after another: its image tower encodes
    the target and negative images and is freed before its text tower loads, which is all that the
    optimization needs (`encode_images_once`). An adapter given loaded is used as it is.
    """
    items = model_list(models)
    weights = [1.0] * len(items) if weights is None else list(weights)
    check_model_weights(weights, len(items))
    negative_images, negative_texts = split_negatives(negatives)
    all_images = [*images, *negative_images]
    encoders: list[TextEncoder] = []
    objectives: list[FeatureSimilarity] = []
    for item in items:
        if isinstance(item, TextEncoder):
            encoder = item
            image_features = encoder.encode_images(all_images) if all_images else None
        else:
            image_features = encode_images_once(item, all_images, device, dtype) if all_images else None
            encoder = load_text_encoder(item, device, dtype, image_tower=False)
        if encoders:
            check_shared_vocabulary(encoders[0], encoder)
        targets = image_features[: len(images)] if images else encoder.encode_texts(list(texts))
        negative_features = [image_features[len(images) :]] if negative_images else []
        if negative_texts:
            negative_features.append(encoder.encode_texts(negative_texts))
        objectives.append(
            FeatureSimilarity(
                encoder,
                targets,
                negatives=torch.cat(negative_features) if negative_features else None,
                negative_weight=negative_weight,
                batch_size=batch_size,
                seed=seed,
                target_token_ids=[] if images else [i for text in texts for i in readable_tokens(encoder, text)],
            )
        )
        encoders.append(encoder)
    if len(objectives) == 1:
        return objectives[0], encoders
    return MultiEncoderObjective([encoder.name for encoder in encoders], objectives, weights), encoders


def readable_tokens(encoder: TextEncoder, text: str) -> list[int]:
    """The token ids of `text` that `encoder` reads: those within its context (the rest it truncates)."""
    return encoder.tokenize(text)[: encoder.max_prompt_len]


def encoders_label(encoders: Sequence[TextEncoder]) -> tuple[str, int]:
    """The result's model name (several joined by " + ") and the longest prompt all of them fit."""
    return " + ".join(encoder.name for encoder in encoders), min(encoder.max_prompt_len for encoder in encoders)


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
    on_progress: ProgressCallback | None = None,
) -> Result:
    """Validate `config` against the model's longest prompt, run its method (PEZ, GCG, ...), and label the result.

    `on_progress` is called after every step (see optim.tracking.Progress); raising KeyboardInterrupt in it
    stops the run early, and the result keeps the best prompt so far.
    """
    config.validate(max_prompt_len)
    with reporting_progress(on_progress):
        result = run_method(objective, vocab, config)
    result = label_result(result, vocab, options, model_name)
    if isinstance(objective, MultiEncoderObjective):
        result.scores_by_model = objective.scores_by_model(result.token_ids)
        result.config["model_weights"] = list(objective.weights)
    return result


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
