"""A Gaussian of fixed scale per value on dequantized levels scaled to [0, 1)."""

import math

import tensorflow as tf

from zoo.distributions.gaussian import Gaussian


class FixedGaussian(Gaussian):
    """:class:`Gaussian` with the fixed standard deviation `scale` (in [0, 1]
    units): one parameter per value, the location. Its NLL is the squared error
    scaled by the variance, plus constants, and bounds the discrete data's as the
    Gaussian's does.

    Args:
        num_levels: the data's levels L >= 2.
        scale: the standard deviation, > 0.
    """

    name = "gaussian_fixed"
    params_per_channel = 1

    def __init__(self, num_levels, scale=0.1):
        super().__init__(num_levels)
        self.scale = float(scale)
        if not self.scale > 0:
            raise ValueError(f"FixedGaussian: expected scale > 0, got {scale}")

    def loc_and_log_scale(self, params):
        return params, tf.fill(tf.shape(params), math.log(self.scale))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
