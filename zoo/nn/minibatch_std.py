"""The minibatch standard deviation layer of Progressive GAN and StyleGAN's critics."""

import keras
import tensorflow as tf


def group_size_for(batch, group_size):
    """The largest divisor of `batch` (a scalar tensor) that is at most
    `group_size`: the whole batch when it is smaller, else a group size the
    batch divides into."""
    sizes = tf.range(1, group_size + 1)
    return tf.reduce_max(tf.where(tf.math.floormod(batch, sizes) == 0, sizes, 1))


@keras.saving.register_keras_serializable(package="zoo")
class MinibatchStd(keras.layers.Layer):
    """Appends the standard deviation of features across a group of examples.

    Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved
    Quality, Stability, and Variation", ICLR 2018,
    https://arxiv.org/abs/1710.10196, Sec. 3, as StyleGAN and StyleGAN2 use it
    (group size 4, one feature): the batch of N feature maps ``(N, H, W, C)`` is
    split into N / G groups of G examples, example n in group ``n mod (N / G)``
    (the official code's reshape to ``(G, N / G, ...)``); the channels into
    ``num_features`` sets of ``C / num_features``. For each group the population
    standard deviation over its G examples, ``sqrt(var + 1e-8)``, of each
    feature at each pixel is averaged over the set's channels and the pixels to
    one value, which is appended to every example of the group as a constant
    feature map: ``(N, H, W, C + num_features)``. A critic so sees how varied a
    batch is and can penalise a generator that collapses to few modes.

    G is the largest divisor of N that is at most `group_size` (N itself when
    smaller): the official code takes ``min(group_size, N)`` and fails on a
    batch it does not divide; here a batch of 6 takes groups of 3 and a prime
    batch above `group_size` groups of 1 (a zero deviation, ``1e-4`` after the
    epsilon), so that a critic still scores any batch (its exported signature,
    a last short batch). The examples of a group share the feature: a score
    depends on the other examples of its group, and a gradient penalty's
    gradient of the summed scores (R1, WGAN-GP) includes those terms, as in the
    official code.

    Args:
        group_size: G at most (4 in StyleGAN).
        num_features: the feature maps appended (1 in StyleGAN); must divide
            the channels.
    """

    def __init__(self, group_size=4, num_features=1, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)
        self.num_features = int(num_features)
        if self.group_size < 1 or self.num_features < 1:
            raise ValueError(f"MinibatchStd: expected group_size >= 1 and num_features >= 1, "
                             f"got {group_size} and {num_features}")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None \
                or input_shape[-1] % self.num_features:
            raise ValueError(f"MinibatchStd: expected feature maps (batch, H, W, C) with C "
                             f"divisible by num_features={self.num_features}, got shape "
                             f"{tuple(input_shape)}")
        self.built = True

    def call(self, x):
        shape = tf.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        c = x.shape[-1]
        f = self.num_features
        g = group_size_for(n, self.group_size)
        y = tf.reshape(tf.cast(x, tf.float32), tf.stack([g, n // g, h, w, f, c // f]))
        y = y - tf.reduce_mean(y, axis=0, keepdims=True)
        y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)  # (N/G, H, W, F, C/F)
        y = tf.reduce_mean(y, axis=[1, 2, 4])  # (N/G, F)
        y = tf.tile(y, tf.stack([g, 1]))  # example n: its group's, n mod N/G
        y = tf.broadcast_to(tf.cast(y, x.dtype)[:, None, None, :], tf.stack([n, h, w, f]))
        return tf.concat([x, y], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + self.num_features,)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size,
                "num_features": self.num_features}
