"""Evaluation metrics: likelihoods (zoo.metrics.likelihood) and sample quality
(zoo.metrics.sample_quality)."""

from zoo.metrics.likelihood import NonFiniteMetricError, bits_per_dim, evaluate_likelihood
from zoo.metrics.sample_quality import (
    classifier_score,
    fid,
    frechet_distance,
    kid,
    mmd_rbf,
    mode_coverage,
    precision_recall,
    sliced_wasserstein,
)

__all__ = [
    "NonFiniteMetricError", "bits_per_dim", "evaluate_likelihood", "classifier_score", "fid",
    "frechet_distance", "kid", "mmd_rbf", "mode_coverage", "precision_recall",
    "sliced_wasserstein",
]
