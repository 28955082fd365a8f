"""One loader for text-to-image generators (diffusers pipelines and the shapes world's), for `generate`,
`reproduce` and the web app. It lives in apps/ because it composes `generation` and `shapes`, which
therefore do not import each other both ways."""

from __future__ import annotations

from collections.abc import Callable

from ..generation import ImageGenerator, TextToImage


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
