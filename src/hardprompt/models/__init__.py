"""Model adapters: everything that knows about a specific model family lives here."""

from .base import TextEncoder
from .loading import EMBEDDED_MODELS, load_text_encoder, resolve_device

__all__ = ["EMBEDDED_MODELS", "TextEncoder", "load_text_encoder", "resolve_device"]
