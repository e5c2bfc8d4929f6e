"""Self-attention over the positions of a feature map (SAGAN)."""

import keras
from keras import ops

from zoo.nn.spectral_norm import maybe_spectral


@keras.saving.register_keras_serializable(package="zoo")
class SelfAttention(keras.layers.Layer):
    """``x + gamma * o(softmax(f(x) g(x)^T) h(x))`` over the H*W positions.

    Zhang, Goodfellow, Metaxas & Odena, "Self-Attention Generative Adversarial
    Networks", ICML 2019, https://arxiv.org/abs/1805.08318, Sec. 3: f, g (C/8
    channels), h (C/2) and o (back to C) are 1x1 convolutions; ``gamma`` starts
    at 0, so the layer starts as the identity. BigGAN uses it at one resolution
    of both networks.

    Args:
        spectral_norm: spectrally normalise the four convolutions.
    """

    def __init__(self, spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.spectral_norm = bool(spectral_norm)

    def build(self, input_shape):
        c = int(input_shape[-1])
        key, value = max(c // 8, 1), max(c // 2, 1)

        def conv(units, name):
            layer = maybe_spectral(keras.layers.Conv2D(units, 1, use_bias=False, name=name),
                                   self.spectral_norm)
            return layer

        self.query, self.key = conv(key, "query"), conv(key, "key")
        self.value, self.out = conv(value, "value"), conv(c, "out")
        shape = tuple(input_shape)
        for layer in (self.query, self.key, self.value):
            layer.build(shape)
        self.out.build(shape[:-1] + (value,))
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")
        self.built = True

    def call(self, x, training=False):
        shape = ops.shape(x)
        positions = shape[1] * shape[2]

        def flat(t):
            return ops.reshape(t, (shape[0], positions, ops.shape(t)[-1]))

        q = flat(self.query(x, training=training))
        k = flat(self.key(x, training=training))
        v = flat(self.value(x, training=training))
        attention = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 2, 1))), axis=-1)
        h = ops.reshape(ops.matmul(attention, v), (shape[0], shape[1], shape[2], -1))
        return x + self.gamma * self.out(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "spectral_norm": self.spectral_norm}
