"""Decoder likelihoods over discrete pixel levels, as log-probabilities in nats."""

import math

import tensorflow as tf
import tensorflow_probability as tfp

MIN_LOG_SCALE = -7.0


def discretized_logistic_log_prob(levels, loc, log_scale, num_levels):
    """log P(levels) under a logistic discretized to `num_levels` bins, per pixel.

    The discretized logistic of PixelCNN++ (Salimans et al. 2017,
    https://arxiv.org/abs/1701.05517, Sec. 2.1): integer level k in
    ``[0, num_levels)`` is the bin of width ``2 / (num_levels - 1)`` centred at
    ``c = 2k / (num_levels - 1) - 1`` in [-1, 1]; the first and last bins take the
    tails. With ``a = (c + h - loc) / s`` and ``b = (c - h - loc) / s``
    (h the half-width):

        P(k) = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)),

    computed in log space (``log_sigmoid`` and ``log1mexp``), so it stays exact in
    the tails where the difference of two sigmoids underflows. The probabilities
    of all levels sum to one.

    Args:
        levels: integer levels (as floats) in ``[0, num_levels)``.
        loc: location in [-1, 1] space, same shape.
        log_scale: log of the logistic's scale, same shape (clipped below at -7).
        num_levels: the number of levels L >= 2.
    Returns:
        log P per pixel, the shape of ``levels``.
    """
    half_width = 1.0 / (num_levels - 1.0)
    centre = 2.0 * levels / (num_levels - 1.0) - 1.0
    inv_scale = tf.exp(-tf.maximum(log_scale, MIN_LOG_SCALE))
    upper = (centre + half_width - loc) * inv_scale
    lower = (centre - half_width - loc) * inv_scale
    log_cdf_upper = tf.math.log_sigmoid(upper)          # first bin: P = sigmoid(upper)
    log_sf_lower = tf.math.log_sigmoid(-lower)           # last bin: P = 1 - sigmoid(lower)
    interior = log_cdf_upper + log_sf_lower + tfp.math.log1mexp(upper - lower)
    return tf.where(levels < 0.5, log_cdf_upper,
                    tf.where(levels > num_levels - 1.5, log_sf_lower, interior))


def discretized_logistic_sample(loc, log_scale, num_levels, seed):
    """Levels drawn from the discretized logistic (stateless `seed`, shape [2])."""
    u = tf.random.stateless_uniform(tf.shape(loc), seed=seed, minval=1e-5, maxval=1.0 - 1e-5)
    x = loc + tf.exp(tf.maximum(log_scale, MIN_LOG_SCALE)) * (tf.math.log(u) - tf.math.log1p(-u))
    return tf.clip_by_value(tf.round((x + 1.0) * (num_levels - 1.0) / 2.0), 0.0, num_levels - 1.0)


def bernoulli_log_prob(bits, logits):
    """log P(bits) of Bernoulli(sigmoid(logits)) per pixel, bits in {0, 1}."""
    return -tf.nn.sigmoid_cross_entropy_with_logits(labels=bits, logits=logits)


def gaussian_log_prob(y, loc, log_scale):
    """log N(y; loc, exp(log_scale)^2) per pixel (a density; the log-scale is
    clipped below at -7 as the logistic's)."""
    log_scale = tf.maximum(log_scale, MIN_LOG_SCALE)
    return -0.5 * (tf.square((y - loc) * tf.exp(-log_scale)) + math.log(2.0 * math.pi)) \
        - log_scale
