"""Metrics of latent-variable models: the importance-weighted bound over a dataset,
active units, and the pictures of reconstructions and latent traversals."""

import math

import numpy as np
import tensorflow as tf

from zoo.metrics.likelihood import NonFiniteMetricError, bits_per_dim


def examples(dataset, max_examples):
    """The first `max_examples` images of a ``tf.data`` pipeline (or all), as numpy."""
    batches, count = [], 0
    for batch in dataset:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        batches.append(np.asarray(batch))
        count += len(batches[-1])
        if max_examples is not None and count >= max_examples:
            break
    if not batches:
        raise ValueError("the dataset is empty")
    x = np.concatenate(batches)
    return x if max_examples is None else x[:max_examples]


def evaluate_importance_weighted(model, dataset, num_samples=1000, max_examples=1000,
                                 batch_size=64, seed=0):
    """The importance-weighted bound L_k (Burda et al. 2016, eq. 8) over a dataset.

    Averages ``model.importance_weighted_bound(x, k)`` over the first
    `max_examples` examples (all if None), each batch with the stateless seed
    ``[seed, batch index]``, so the number is reproducible.

    Returns:
        ``{"num_samples": k, "num_examples", "nll_nats": -mean L_k,
        "bits_per_dim", "bound": words}``: an upper bound on the NLL, tighter than
        the negative ELBO in expectation.
    """
    x = examples(dataset, max_examples)
    bound = tf.function(lambda batch, step: model.importance_weighted_bound(
        batch, num_samples=num_samples, seed=tf.stack([tf.constant(seed), step])))
    from zoo import progress

    total = 0.0
    with progress.stage(f"importance-weighted bound (k = {num_samples})", len(x),
                        "examples") as stage:
        for i, start in enumerate(range(0, len(x), batch_size)):
            total += float(tf.reduce_sum(bound(tf.constant(x[start:start + batch_size]),
                                               tf.constant(i))))
            stage.update(len(x[start:start + batch_size]))
    mean = -total / len(x)
    if not math.isfinite(mean):
        raise NonFiniteMetricError(f"{model.name}: the importance-weighted bound over "
                                   f"{len(x)} examples is {mean}")
    return {
        "num_samples": int(num_samples),
        "num_examples": int(len(x)),
        "nll_nats": mean,
        "bits_per_dim": bits_per_dim(mean, int(np.prod(model.data_shape))),
        "bound": f"negative importance-weighted bound with k = {num_samples}, an upper "
                 "bound on the NLL",
    }


def active_units(model, dataset, threshold=0.01, max_examples=None, batch_size=256):
    """The active units of a latent-variable model (Burda et al. 2016, Sec. 5.2):

        A_u = Cov_x(E_{q(z|x)}[z_u]) > threshold (0.01 in the paper),

    the variance over the data of each latent dimension's posterior mean
    (``model.latent_mean``). Returns ``{"active", "dimensions", "threshold",
    "variances"}``.
    """
    x = examples(dataset, max_examples)
    means = np.concatenate([np.asarray(model.latent_mean(tf.constant(x[i:i + batch_size])))
                            for i in range(0, len(x), batch_size)])
    variances = means.reshape(len(means), -1).var(axis=0)
    return {"active": int(np.sum(variances > threshold)), "dimensions": int(variances.size),
            "threshold": threshold, "variances": [round(float(v), 6) for v in variances]}


def traversals(model, x, steps=9, limit=3.0, max_dimensions=16):
    """Decoded images along each latent dimension of ``z = latent_mean(x)``: rows
    are the dimensions of largest posterior-mean variance across `x` (at most
    `max_dimensions`), columns move that coordinate from -limit to +limit with
    the others held at the first example's mean. Returns (rows * steps, H, W, C)."""
    means = np.asarray(model.latent_mean(tf.constant(x)))
    order = np.argsort(-means.var(axis=0))[:max_dimensions]
    grid = np.linspace(-limit, limit, steps, dtype=np.float32)
    z = np.repeat(means[:1], len(order) * steps, axis=0)
    for row, dim in enumerate(order):
        z[row * steps:(row + 1) * steps, dim] = grid
    return np.asarray(model.decode(tf.constant(z)))
