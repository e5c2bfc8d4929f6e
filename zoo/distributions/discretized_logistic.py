"""A logistic discretized to the data's levels (PixelCNN++'s observation model)."""

import math

import tensorflow as tf

from zoo.distributions.base import ObservationModel

MIN_LOG_SCALE = -7.0


def log1mexp(x):
    """log(1 - exp(-x)) for x > 0 (Maechler 2012: ``log(-expm1(-x))`` below log 2,
    ``log1p(-exp(-x))`` above), with finite gradients everywhere: each branch sees
    only the inputs it is chosen for, since ``tf.where``'s gradient multiplies the
    other branch's by zero and 0 * inf is NaN (``tfp.math.log1mexp`` computes both
    branches on every input, and gave NaN gradients once a scale grew so large
    that ``exp(-x)`` rounded to 1). `x` is kept at least 1e-30: a bin's mass of
    1e-30 at most, where a float32 scale has no finer answer."""
    x = tf.maximum(x, 1e-30)
    small = x < math.log(2.0)
    return tf.where(small, tf.math.log(-tf.math.expm1(-tf.where(small, x, 1.0))),
                    tf.math.log1p(-tf.exp(-tf.where(small, 1.0, x))))


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
    interior = log_cdf_upper + log_sf_lower + log1mexp(upper - lower)
    return tf.where(levels < 0.5, log_cdf_upper,
                    tf.where(levels > num_levels - 1.5, log_sf_lower, interior))


def discretized_logistic_sample(loc, log_scale, num_levels, noise):
    """Levels drawn from the discretized logistic by the inverse CDF of `noise`,
    uniforms on [0, 1) of `loc`'s shape (kept in [1e-5, 1 - 1e-5])."""
    u = noise * (1.0 - 2e-5) + 1e-5
    x = loc + tf.exp(tf.maximum(log_scale, MIN_LOG_SCALE)) * (tf.math.log(u) - tf.math.log1p(-u))
    return tf.clip_by_value(tf.round((x + 1.0) * (num_levels - 1.0) / 2.0), 0.0, num_levels - 1.0)


class DiscretizedLogistic(ObservationModel):
    """A logistic per value, discretized to the levels (see
    :func:`discretized_logistic_log_prob`): the exact mass of the integer levels,
    so its NLL bounds nothing but is that of the raw discrete data. Two parameters
    per value: the location in [-1, 1] and the log-scale.
    """

    name = "logistic"
    params_per_channel = 2

    def log_prob(self, observed, params):
        loc, log_scale = self.split(params)
        return discretized_logistic_log_prob(
            tf.broadcast_to(observed, tf.shape(loc)), loc, log_scale, self.num_levels)

    def mean(self, params):
        """The location, in levels."""
        loc = self.split(params)[0]
        return tf.clip_by_value((loc + 1.0) * self.top / 2.0, 0.0, self.top)

    def sample_from_noise(self, params, noise):
        loc, log_scale = self.split(params)
        return discretized_logistic_sample(loc, log_scale, self.num_levels, noise[..., 0])
