"""Reference scoring: how close generated images are to the target, judged by a CLIP not used to optimize."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import HardpromptError
from ..io import image_files, looks_like_image_path
from ..models import TextEncoder
from .common import ImageLike, as_encoder, as_image

#: The paper's reference scorer (Table 1): OpenCLIP ViT-bigG/14 in transformers format.
DEFAULT_SCORER = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"


@dataclass
class ReferenceScore:
    """Mean cosine similarity between generated images and targets under a reference image encoder."""

    mean: float
    """Mean over generated images of `per_image`."""
    per_image: list[float]
    """For each generated image, its mean cosine similarity to the targets."""
    scorer: str

    def to_dict(self) -> dict:
        return asdict(self)


def load_scorer(scorer: str | TextEncoder, device: str = "auto") -> TextEncoder:
    """A scorer that embeds images: a loaded adapter, an alias, a hub CLIP id or a local directory."""
    encoder = as_encoder(scorer, device)
    if not encoder.supports_images:
        raise HardpromptError(f"scorer {encoder.name} has no image encoder; use a CLIP model")
    return encoder


@torch.no_grad()
def reference_score(
    targets: Sequence[ImageLike], generated: Sequence[ImageLike], scorer: TextEncoder
) -> ReferenceScore:
    """Cosine similarity of each generated image to the targets (mean over targets), and its mean."""
    if not targets:
        raise HardpromptError("give at least one target image")
    if not generated:
        raise HardpromptError("give at least one generated image")
    target_features = scorer.encode_images([as_image(t) for t in targets])
    generated_features = scorer.encode_images([as_image(g) for g in generated])
    per_image = (generated_features @ target_features.T).mean(dim=1)
    return ReferenceScore(mean=float(per_image.mean()), per_image=per_image.tolist(), scorer=scorer.name)


def expand_image_paths(values: Sequence[str | Path]) -> list[Path]:
    """Image files named directly, and the images inside named folders (sorted)."""
    paths: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise HardpromptError(f"no images in {path}")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        elif looks_like_image_path(str(path)):
            raise HardpromptError(f"image not found: {path}")
        else:
            raise HardpromptError(f"not an image file or folder: {path}")
    return paths
