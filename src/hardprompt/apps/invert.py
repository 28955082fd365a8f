"""Image → prompt: a prompt whose text features match one or many images (paper §4)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HardpromptError
from ..objectives import FeatureSimilarity
from ..optim.pez import PEZConfig
from ..optim.registry import MethodConfig
from ..optim.result import Result
from .common import (
    BankLike,
    ImageLike,
    ModelLike,
    as_encoder,
    as_image,
    build_vocabulary,
    describe,
    describe_bank,
    encode_negatives,
    run_optimizer,
)

DEFAULT_IMAGE_MODEL = "openai/clip-vit-large-patch14"


def invert(
    images: Sequence[ImageLike],
    model: ModelLike = DEFAULT_IMAGE_MODEL,
    config: MethodConfig | None = None,
    *,
    negatives: Sequence[ImageLike] = (),
    negative_weight: float = 1.0,
    blocklist: Sequence[str] = (),
    bank: BankLike = None,
    ascii_only: bool = False,
    words_only: bool = False,
    device: str = "auto",
    dtype: str = "float32",
) -> Result:
    """Learn a hard prompt whose features match `images` (several images give a shared-style prompt).

    The config's type picks the optimizer (PEZConfig, GCGConfig, ...; see optim.registry).
    """
    config = config or PEZConfig()
    if not images:
        raise HardpromptError("give at least one image")
    targets = [as_image(image) for image in images]
    encoder = as_encoder(model, device, dtype)
    if not encoder.supports_images:
        raise HardpromptError(f"model {encoder.name} has no image encoder; use a CLIP model or 'shapes'")
    vocab = build_vocabulary(encoder, blocklist, bank, ascii_only, words_only)
    objective = FeatureSimilarity(
        encoder,
        encoder.encode_images(targets),
        negatives=encode_negatives(encoder, negatives),
        negative_weight=negative_weight,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    options = {
        "images": describe(list(images)),
        "negatives": describe(list(negatives)),
        "negative_weight": negative_weight,
        "bank": describe_bank(bank),
    }
    return run_optimizer(objective, vocab, config, options, encoder.name, encoder.max_prompt_len)
