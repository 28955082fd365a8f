"""Image generation from prompts (diffusers, optional) and contact sheets.

Importing this package does not import diffusers; only `ImageGenerator` needs it. `load_generator`
also knows the built-in "shapes" generator (hardprompt.shapes.generator).
"""

from .diffusion import (
    DEFAULT_PIPELINE,
    GenerationConfig,
    ImageGenerator,
    TextToImage,
    compose_prompt,
    require_diffusers,
)
from .loading import BUILT_IN_GENERATORS, load_generator
from .sheet import contact_sheet, stack_sheets

__all__ = [
    "BUILT_IN_GENERATORS",
    "DEFAULT_PIPELINE",
    "GenerationConfig",
    "ImageGenerator",
    "TextToImage",
    "compose_prompt",
    "contact_sheet",
    "load_generator",
    "require_diffusers",
    "stack_sheets",
]
