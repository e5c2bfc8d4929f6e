"""A Gaussian per value on uniformly dequantized levels scaled to [0, 1)."""

import math

import tensorflow as tf

from zoo.distributions.base import ObservationModel
from zoo.preprocessing import dequantize

MIN_LOG_SCALE = -7.0


def gaussian_log_prob(y, loc, log_scale):
    """log N(y; loc, exp(log_scale)^2) per pixel (a density; the log-scale is
    clipped below at -7 as the logistic's)."""
    log_scale = tf.maximum(log_scale, MIN_LOG_SCALE)
    return -0.5 * (tf.square((y - loc) * tf.exp(-log_scale)) + math.log(2.0 * math.pi)) \
        - log_scale


class Gaussian(ObservationModel):
    """N(loc, exp(log_scale)^2) per value of y = (x + u) / L, u ~ U[0, 1): the
    levels uniformly dequantized and scaled to [0, 1). Since ``log P(x) >=
    E_u log p(y) - D log L`` (Theis et al. 2016, https://arxiv.org/abs/1511.01844),
    :meth:`log_prob` adds ``-log L`` per value, the Jacobian of the scaling
    (``log_det_jacobian``): a bound for the raw discrete data, in the logistic's
    units. Two parameters per value: the location and the log-scale (in [0, 1]
    units).
    """

    name = "gaussian"
    params_per_channel = 2
    discrete = False

    @property
    def log_det_jacobian(self):
        return -math.log(self.num_levels)

    def observe(self, x, seed):
        return dequantize(x, seed) / self.num_levels

    def observe_deterministic(self, x):
        """The bins' centres."""
        return (x + 0.5) / self.num_levels

    def to_symmetric(self, observed):
        return 2.0 * observed - 1.0

    def loc_and_log_scale(self, params):
        return self.split(params)

    def log_prob(self, observed, params):
        loc, log_scale = self.loc_and_log_scale(params)
        return gaussian_log_prob(observed, loc, log_scale) + self.log_det_jacobian

    def mean(self, params):
        """The mean, in levels (the bin it falls in, as its centre)."""
        loc = self.split(params)[0]
        return tf.clip_by_value(loc * self.num_levels - 0.5, 0.0, self.top)

    def sample(self, params, seed):
        loc, log_scale = self.loc_and_log_scale(params)
        y = loc + tf.exp(log_scale) * tf.random.stateless_normal(tf.shape(loc), seed=seed)
        return tf.clip_by_value(tf.floor(y * self.num_levels), 0.0, self.top)
