"""Uploaded images, checked before anything decodes them: how many, how large, how many pixels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import HardpromptError


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload. Pixels are checked from the header, before the image is decoded."""

    max_images: int = 16
    max_bytes: int = 20 * 1024 * 1024
    """Per file; the server also refuses larger uploads before they are stored."""
    max_pixels: int = 4096 * 4096

    def validate(self) -> None:
        """Raise HardpromptError on limits that make no sense."""
        for name in ("max_images", "max_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise HardpromptError(f"{name.replace('_', ' ')} must be at least 1 (got {getattr(self, name)})")


def read_image(path: str | Path, limits: UploadLimits, name: str) -> Image.Image:
    """One uploaded file as an RGB image, or a HardpromptError naming it (`name`: the file's name in the page)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise HardpromptError(f"{name}: {size:,} bytes is over the limit of {limits.max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise HardpromptError(
                        f"{name}: {width}×{height} pixels is over the limit of {limits.max_pixels:,} pixels"
                    )
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HardpromptError(f"{name}: too many pixels (refused as a decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise HardpromptError(f"{name}: not an image that can be read") from None


def read_images(paths: Sequence[str | Path] | None, limits: UploadLimits, required: bool = True) -> list[Image.Image]:
    """The uploaded files as images, within `limits`; none is an error when `required`."""
    paths = list(paths or [])
    if not paths and required:
        raise HardpromptError("upload at least one image")
    if len(paths) > limits.max_images:
        raise HardpromptError(f"{len(paths)} images is over the limit of {limits.max_images}")
    return [read_image(path, limits, Path(path).name) for path in paths]
