"""Preprocessing of raw data, each step explicit and, where it changes volume, a bijector.

Raw images come from ``zoo.datasets.load`` as float32 integers in
``[0, num_levels)``. The families preprocess them as follows:

* flows: :func:`dequantize` (x + u, u ~ U[0, 1)), then :func:`logit_bijector`,
  whose log|det J| is part of the model's ``log_prob``, so that bits/dim are
  those of the dequantized data in its own units (Theis et al. 2016,
  https://arxiv.org/abs/1511.01844; Dinh et al. 2017, Sec. 4.1);
* VAEs with a discretized-logistic decoder: :func:`to_symmetric` on the integer
  levels (the decoder's bins are the levels, so no Jacobian arises);
* VAEs with a Bernoulli decoder: :func:`binarize` (their bits/dim are those of the
  binarized data);
* GANs: :func:`dequantize` then :func:`to_symmetric`.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


def dequantize(x, seed):
    """Uniform dequantization: x + u, u ~ U[0, 1) drawn from the stateless `seed`
    (shape [2]; a model's training step passes ``self.rng.next_seed()``)."""
    return x + tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=x.dtype)


def logit_bijector(num_levels, alpha=0.05):
    """Maps dequantized data in [0, num_levels) to logit space, as a TFP bijector.

    y = logit(alpha + (1 - 2 alpha) x / num_levels) (RealNVP, Sec. 4.1). Its
    forward log|det J| = D log((1 - 2 alpha) / num_levels) - sum log(p (1 - p)),
    counted in ``log_prob``.
    """
    return tfb.Chain(
        [
            tfb.Invert(tfb.Sigmoid()),
            tfb.Shift(alpha),
            tfb.Scale((1.0 - 2.0 * alpha) / num_levels),
        ],
        name="logit_preprocessing",
    )


def to_unit_interval(x, num_levels):
    """Integer levels -> [0, 1] (level / (num_levels - 1))."""
    return x / (num_levels - 1.0)


def to_symmetric(x, num_levels):
    """Levels in [0, num_levels - 1] (dequantized or not) -> [-1, 1]."""
    return 2.0 * x / (num_levels - 1.0) - 1.0


def from_symmetric(x, num_levels):
    """[-1, 1] -> levels in [0, num_levels - 1], clipped."""
    return tf.clip_by_value((x + 1.0) * (num_levels - 1.0) / 2.0, 0.0, num_levels - 1.0)


def binarize(x, num_levels, seed):
    """Dynamic binarization: each pixel is 1 with probability level / (num_levels - 1),
    drawn from the stateless `seed` (shape [2])."""
    p = to_unit_interval(x, num_levels)
    u = tf.random.stateless_uniform(tf.shape(p), seed=seed, dtype=p.dtype)
    return tf.cast(u < p, p.dtype)
