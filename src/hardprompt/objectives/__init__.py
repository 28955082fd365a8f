"""Objectives: differentiable losses over prompt embeddings, one per application."""

from .base import BatchedObjective, Evaluation, Objective
from .similarity import FeatureSimilarity, PerTargetSimilarity

__all__ = ["BatchedObjective", "Evaluation", "FeatureSimilarity", "Objective", "PerTargetSimilarity"]
