"""A categorical distribution over the levels per value (PixelCNN's softmax)."""

import tensorflow as tf

from zoo.distributions.base import ObservationModel
from zoo.nn.random_stream import inverse_cdf


class Categorical(ObservationModel):
    """A softmax over the L levels per value (van den Oord et al. 2016,
    https://arxiv.org/abs/1601.06759, Sec. 5.3): the exact mass of the integer
    levels, with no assumption of order among them. Parameters per value: the L
    logits, each block of them one slice of the channels.
    """

    name = "categorical"

    def __init__(self, num_levels):
        super().__init__(num_levels)
        self.params_per_channel = self.num_levels

    def logits(self, params):
        """(..., C, L): the L blocks of C values, as channels by levels."""
        shape = tf.shape(params)
        blocks = tf.reshape(params, tf.concat([shape[:-1], [self.num_levels, -1]], 0))
        return tf.linalg.matrix_transpose(blocks)

    def log_prob(self, observed, params):
        logits = self.logits(params)
        levels = tf.cast(tf.broadcast_to(observed, tf.shape(logits)[:-1]), tf.int32)
        return tf.reduce_sum(tf.nn.log_softmax(logits, axis=-1)
                             * tf.one_hot(levels, self.num_levels), axis=-1)

    def mean(self, params):
        probs = tf.nn.softmax(self.logits(params), axis=-1)
        return tf.reduce_sum(probs * tf.range(self.num_levels, dtype=probs.dtype), axis=-1)

    def temper(self, params, temperature):
        """The logits divided by `temperature`."""
        return params / temperature

    def sample_from_noise(self, params, noise):
        """A level per value by the inverse CDF of its uniform: the first level
        whose cumulative probability exceeds it."""
        probs = tf.nn.softmax(self.logits(params), axis=-1)
        return tf.cast(inverse_cdf(probs, noise[..., 0]), tf.float32)

