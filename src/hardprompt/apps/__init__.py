"""Applications: each turns a user's goal into an objective and runs an optimizer."""

from .distill import distill
from .invert import invert

__all__ = ["distill", "invert"]
