"""Objectives: differentiable losses over prompt embeddings, one per application."""

from .base import Evaluation, Objective
from .similarity import FeatureSimilarity

__all__ = ["Evaluation", "FeatureSimilarity", "Objective"]
