"""Negative log-likelihoods (or their bounds) over a dataset, in nats and bits/dim."""

import math

import numpy as np
import tensorflow as tf


class NonFiniteMetricError(ValueError):
    """An evaluation gave NaN or Inf (a diverged model): nothing is reported."""


def bits_per_dim(nll_nats, event_size):
    """nats per example -> bits per dimension: nll / (D ln 2)."""
    return nll_nats / (event_size * math.log(2.0))


def evaluate_likelihood(model, dataset, seed=0, max_examples=None, num_examples=None):
    """Mean ``model.nll`` (nats/example) and bits/dim over a dataset's first
    `max_examples` examples (None: all of them).

    What the number is comes from the model (``model.likelihood``): the exact
    NLL, that of dequantized data (an upper bound on the discrete data's), an
    exact discrete NLL, or a variational bound. Any noise it needs (dequantization,
    posterior samples) is drawn statelessly from `seed` and the batch index, so the
    number is reproducible. The pass shows as a progress stage (:mod:`zoo.progress`)
    of `num_examples` (the dataset's examples, where known) or `max_examples`.

    Returns:
        A dict with "nll_nats", "bits_per_dim", "num_examples", "likelihood",
        "bound" (what the number is, in words) and, over two examples or more,
        "standard_error_nats" and "standard_error_bits_per_dim": the standard
        error of the mean over the examples (the spread of the examples' NLLs,
        and of any noise the estimate draws per example, over sqrt(count)).
    Raises:
        TypeError: the model has no likelihood (``likelihood == "none"``).
        NonFiniteMetricError: the mean is NaN or Inf.
    """
    if model.likelihood == "none":
        raise TypeError(f"{model.name} has no likelihood to evaluate (likelihood='none')")

    @tf.function
    def batch_nll(x, step):
        nll = tf.cast(model.nll(x, seed=tf.stack([tf.constant(seed), step])), tf.float64)
        return tf.reduce_sum(nll), tf.reduce_sum(tf.square(nll)), tf.shape(x)[0]

    total, squares, count = 0.0, 0.0, 0
    if max_examples is not None and (isinstance(max_examples, bool)
                                     or not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"evaluate_likelihood: max_examples must be an int >= 1 or None, "
                         f"got {max_examples!r}")
    from zoo import progress

    known = [n for n in (num_examples, max_examples) if n is not None]
    with progress.stage(f"NLL ({model.likelihood})", min(known) if known else None,
                        "examples") as stage:
        for step, batch in enumerate(dataset):
            if max_examples is not None and count >= max_examples:
                break
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            if max_examples is not None:
                batch = batch[:max_examples - count]
            nll, square, n = batch_nll(batch, tf.constant(step))
            total += float(nll)
            squares += float(square)
            count += int(n)
            stage.update(int(n))
    if count == 0:
        raise ValueError("evaluate_likelihood: the dataset is empty")
    mean = total / count
    if not math.isfinite(mean):
        raise NonFiniteMetricError(
            f"{model.name}: the mean NLL over {count} examples is {mean} (the weights "
            "have diverged, or an example has zero density)")
    size = int(np.prod(model.data_shape))
    result = {
        "nll_nats": mean,
        "bits_per_dim": bits_per_dim(mean, size),
        "num_examples": count,
        "likelihood": model.likelihood,
        "bound": model.likelihood_description,
    }
    if count >= 2:
        variance = max(0.0, (squares - count * mean * mean) / (count - 1))
        error = math.sqrt(variance / count)
        result.update(standard_error_nats=error,
                      standard_error_bits_per_dim=bits_per_dim(error, size))
    return result
