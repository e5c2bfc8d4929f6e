"""A Gaussian per class: the class-conditional prior of a conditional model."""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class ClassConditionalGaussian(keras.layers.Layer):
    """p(z | y) = N(loc_y, diag(exp(log_scale_y))^2), one learned Gaussian per class.

    The class-conditional prior of Glow's class-conditional model (Kingma &
    Dhariwal 2018, https://arxiv.org/abs/1807.03039, Sec. 5: the prior's mean and
    scale a function of the class) and of a VAE with a class-conditional prior
    (the latent-feature M1 + p(z|y) of Kingma et al. 2014,
    https://arxiv.org/abs/1406.5298, with the class known). Both start at
    N(0, I) for every class (zero-initialised), i.e. as the unconditional model.

    Args:
        num_classes: K >= 1.
        event_shape: the shape of one z.
    """

    def __init__(self, num_classes, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.event_shape = tuple(int(d) for d in event_shape)
        if self.num_classes < 1:
            raise ValueError(f"ClassConditionalGaussian: expected num_classes >= 1, got "
                             f"{num_classes}")
        shape = (self.num_classes,) + self.event_shape
        self.loc = self.add_weight(name="loc", shape=shape, initializer="zeros")
        self.log_scale = self.add_weight(name="log_scale", shape=shape, initializer="zeros")
        self.built = True

    def call(self, labels):
        """(loc, log_scale) of each label's Gaussian: (batch,) + event_shape each.

        Picked by a one-hot product rather than a gather, whose gradient is an
        ``IndexedSlices`` (as the VQ-VAE's codebook does)."""
        one_hot = tf.one_hot(labels, self.num_classes, dtype=self.loc.dtype)
        size = 1
        for d in self.event_shape:
            size *= d
        shape = tf.concat([tf.shape(labels), self.event_shape], 0)
        pick = lambda table: tf.reshape(
            tf.matmul(one_hot, tf.reshape(table, [self.num_classes, size])), shape)
        return pick(self.loc), pick(self.log_scale)

    def log_prob(self, z, labels):
        """log p(z | y) summed over the event (broadcasting leading sample axes)."""
        loc, log_scale = self(labels)
        eps = (z - loc) * tf.exp(-log_scale)
        axes = list(range(-len(self.event_shape), 0))
        return -tf.reduce_sum(0.5 * tf.square(eps) + log_scale + 0.5 * math.log(2 * math.pi),
                              axis=axes)

    def kl_from(self, mean, log_scale, labels):
        """KL(N(mean, exp(log_scale)^2) || p(z | y)) per example, in closed form."""
        loc, prior_log_scale = self(labels)
        ratio = tf.exp(2.0 * (log_scale - prior_log_scale))
        axes = list(range(-len(self.event_shape), 0))
        return 0.5 * tf.reduce_sum(
            ratio + tf.square(mean - loc) * tf.exp(-2.0 * prior_log_scale) - 1.0
            - 2.0 * (log_scale - prior_log_scale), axis=axes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "event_shape": list(self.event_shape)}
