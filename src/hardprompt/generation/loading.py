"""One loader for text-to-image generators, used by `generate` and `reproduce`."""

from __future__ import annotations

from collections.abc import Callable

from .diffusion import ImageGenerator, TextToImage


def _shapes_generator() -> TextToImage:
    from ..shapes.generator import ShapesGenerator

    return ShapesGenerator()


#: Generators built by the package itself: name → constructor. Every other name is a diffusers pipeline.
BUILT_IN_GENERATORS: dict[str, Callable[[], TextToImage]] = {"shapes": _shapes_generator}


def load_generator(name: str, device: str = "auto", progress: bool = True) -> TextToImage:
    """The generator `name`: a built-in one ("shapes"), else a diffusers pipeline (hub id or folder).

    diffusers is imported only for a diffusers pipeline.
    """
    if name in BUILT_IN_GENERATORS:
        return BUILT_IN_GENERATORS[name]()
    return ImageGenerator(name, device=device, progress=progress)
