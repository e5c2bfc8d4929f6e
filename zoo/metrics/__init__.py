"""Evaluation metrics."""

from zoo.metrics.likelihood import bits_per_dim, evaluate_likelihood

__all__ = ["bits_per_dim", "evaluate_likelihood"]
