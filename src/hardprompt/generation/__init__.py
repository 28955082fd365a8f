"""Image generation from prompts (diffusers, optional) and contact sheets.

Importing this package does not import diffusers; only `ImageGenerator` needs it. Loading a generator
by name, the built-in "shapes" one included, is `hardprompt.apps.generators.load_generator`.
"""

from .diffusion import (
    DEFAULT_PIPELINE,
    GenerationConfig,
    ImageGenerator,
    TextToImage,
    compose_prompt,
    require_diffusers,
)
from .sheet import contact_sheet, stack_sheets

__all__ = [
    "DEFAULT_PIPELINE",
    "GenerationConfig",
    "ImageGenerator",
    "TextToImage",
    "compose_prompt",
    "contact_sheet",
    "require_diffusers",
    "stack_sheets",
]
