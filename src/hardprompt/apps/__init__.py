"""Applications: each turns a user's goal into an objective and runs an optimizer."""

from .distill import distill
from .invert import invert
from .invert_each import EachInversion, FailedImage, invert_each
from .target import target_string

__all__ = ["EachInversion", "FailedImage", "distill", "invert", "invert_each", "target_string"]
