"""Bits per dimension from negative log-likelihoods (or their bounds)."""

import math

import numpy as np
import tensorflow as tf

from zoo.preprocessing import dequantize


def bits_per_dim(nll_nats, event_size):
    """nats per example -> bits per dimension: nll / (D ln 2)."""
    return nll_nats / (event_size * math.log(2.0))


def evaluate_likelihood(model, dataset, seed=0):
    """Mean NLL (nats/example) and bits/dim of a likelihood model over a dataset.

    For flows this is -log p of the data; images are dequantized with stateless
    noise from `seed` (so the number is reproducible), and the result is an upper
    bound on the discrete data's bits/dim. For VAEs it is the negative ELBO, also
    an upper bound, from one posterior sample per example drawn from `seed`.
    Returns a dict with "nll_nats", "bits_per_dim", "num_examples".
    """
    if hasattr(model, "log_prob"):
        score = model.log_prob
    elif hasattr(model, "elbo"):
        score = model.elbo
    else:
        raise TypeError(f"{model.name} has neither log_prob nor elbo: no likelihood to evaluate")

    dequantized = getattr(model, "num_levels", None) is not None and hasattr(model, "log_prob")

    @tf.function
    def batch_nll(x, step):
        batch_seed = tf.stack([tf.constant(seed), step])
        if dequantized:
            log_p = score(dequantize(x, seed=batch_seed))
        elif hasattr(model, "log_prob"):
            log_p = score(x)
        else:
            log_p = score(x, seed=batch_seed)
        return -tf.reduce_sum(log_p), tf.shape(x)[0]

    total, count = 0.0, 0
    for step, batch in enumerate(dataset):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        nll, n = batch_nll(batch, tf.constant(step))
        total += float(nll)
        count += int(n)
    if count == 0:
        raise ValueError("evaluate_likelihood: the dataset is empty")
    mean = total / count
    return {
        "nll_nats": mean,
        "bits_per_dim": bits_per_dim(mean, int(np.prod(model.data_shape))),
        "num_examples": count,
    }
