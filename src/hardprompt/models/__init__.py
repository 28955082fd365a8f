"""Model adapters: everything that knows about a specific model family lives here."""

from .base import TextEncoder
from .loading import load_text_encoder
from .resolve import EMBEDDED_MODELS, resolve_device

__all__ = ["EMBEDDED_MODELS", "TextEncoder", "load_text_encoder", "resolve_device"]
