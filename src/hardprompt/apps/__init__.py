"""Applications: each turns a user's goal into an objective and runs an optimizer."""

from .distill import distill
from .invert import invert
from .target import target_string

__all__ = ["distill", "invert", "target_string"]
