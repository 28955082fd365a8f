"""Image → prompt: a prompt whose text features match one or many images (paper §4)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HardpromptError
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .common import (
    BankLike,
    ImageLike,
    ModelsLike,
    ProgressCallback,
    as_image,
    build_vocabulary,
    describe,
    describe_bank,
    encoders_label,
    run_optimizer,
    similarity_objective,
)

DEFAULT_IMAGE_MODEL = "openai/clip-vit-large-patch14"


def invert(
    images: Sequence[ImageLike],
    model: ModelsLike = DEFAULT_IMAGE_MODEL,
    config: MethodConfig | None = None,
    *,
    model_weights: Sequence[float] | None = None,
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
    """Learn a hard prompt whose features match `images` (several images give a shared-style prompt).

    The config's type picks the optimizer (PEZConfig, GCGConfig, ...; see optim.registry). Several
    models (or `sdxl`) learn one prompt for all of them, weighted by `model_weights`; each encodes
    the images with its own image tower.
    """
    config = config or PEZConfig()
    if not images:
        raise HardpromptError("give at least one image")
    targets = [as_image(image) for image in images]
    objective, encoders = similarity_objective(
        model,
        images=targets,
        weights=model_weights,
        negatives=negatives,
        negative_weight=negative_weight,
        batch_size=config.batch_size,
        seed=config.seed,
        device=device,
        dtype=dtype,
    )
    vocab = build_vocabulary(encoders[0], blocklist, bank, ascii_only, words_only)
    options = {
        "images": describe(list(images)),
        "negatives": describe(list(negatives)),
        "negative_weight": negative_weight,
        "bank": describe_bank(bank),
    }
    return run_optimizer(objective, vocab, config, options, *encoders_label(encoders), on_progress)
