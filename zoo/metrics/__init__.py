"""Evaluation metrics."""

from zoo.metrics.likelihood import NonFiniteMetricError, bits_per_dim, evaluate_likelihood

__all__ = ["NonFiniteMetricError", "bits_per_dim", "evaluate_likelihood"]
