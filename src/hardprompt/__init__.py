"""hardprompt: short, human-readable hard prompts by gradient-based discrete optimization."""

from .apps import distill, invert
from .errors import HardpromptError
from .models import TextEncoder, load_text_encoder
from .optim import PEZConfig, Result

__all__ = ["HardpromptError", "PEZConfig", "Result", "TextEncoder", "distill", "invert", "load_text_encoder"]
__version__ = "0.1.0"
