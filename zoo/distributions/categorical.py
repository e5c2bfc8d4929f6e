"""A categorical distribution over the levels per value (PixelCNN's softmax)."""

import tensorflow as tf

from zoo.distributions.base import ObservationModel


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

    def sample(self, params, seed):
        """A level per value (Gumbel-max)."""
        logits = self.logits(params)
        u = tf.random.stateless_uniform(tf.shape(logits), seed=seed, minval=1e-6,
                                        maxval=1.0 - 1e-6)
        return tf.cast(tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1), tf.float32)
