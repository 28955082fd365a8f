"""Optimizers: they see an objective and a vocabulary, never a specific model."""

from .autoprompt import AutoPromptConfig, AutoPromptSGDConfig
from .fluentprompt import FluentPromptConfig
from .gcg import GCGConfig
from .hybrid import HybridConfig
from .pez import PEZConfig
from .random_search import RandomSearchConfig
from .registry import METHODS, build_config, run_method
from .result import Result
from .soft import SoftConfig

__all__ = [
    "METHODS",
    "AutoPromptConfig",
    "AutoPromptSGDConfig",
    "FluentPromptConfig",
    "GCGConfig",
    "HybridConfig",
    "PEZConfig",
    "RandomSearchConfig",
    "Result",
    "SoftConfig",
    "build_config",
    "run_method",
]
