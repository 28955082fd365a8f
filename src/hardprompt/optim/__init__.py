"""Optimizers: they see an objective and a vocabulary, never a specific model."""

from .pez import PEZConfig
from .result import Result

__all__ = ["PEZConfig", "Result"]
