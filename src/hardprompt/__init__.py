"""hardprompt: short, human-readable hard prompts by gradient-based discrete optimization."""

from .apps import distill, invert, invert_each, target_string
from .errors import HardpromptError
from .models import TextEncoder, load_text_encoder
from .models.frozen import low_memory
from .optim import PEZConfig, Result

__all__ = [
    "HardpromptError",
    "PEZConfig",
    "Result",
    "TextEncoder",
    "distill",
    "invert",
    "invert_each",
    "load_text_encoder",
    "low_memory",
    "target_string",
]
__version__ = "0.1.0"
