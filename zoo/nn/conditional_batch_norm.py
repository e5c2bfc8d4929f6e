"""Conditional batch norm: gain and bias given by a conditioning vector."""

import keras

from zoo.nn.spectral_norm import maybe_spectral


@keras.saving.register_keras_serializable(package="zoo")
class ConditionalBatchNorm(keras.layers.Layer):
    """Batch norm whose gain and bias are linear in a conditioning vector.

    De Vries et al., "Modulating early visual processing by language", NeurIPS
    2017, https://arxiv.org/abs/1707.00683, as BigGAN uses it (Brock, Donahue &
    Simonyan 2019, https://arxiv.org/abs/1809.11096, Sec. 3 and Appendix B):
    ``(1 + G c) * BN(x) + B c``, ``c`` the concatenation of the shared class
    embedding and the block's chunk of z; ``BN`` has no gain or bias of its own.
    With one class (and no z), it is batch norm with that class's gain
    ``1 + G c`` and bias ``B c``.

    ``call(x, c, training)``: `x` ``(batch, H, W, C)``, `c` ``(batch, k)``.

    Args:
        spectral_norm: spectrally normalise G and B (BigGAN's generator).
        momentum: of the moving statistics.
        epsilon: added to the variance.
    """

    def __init__(self, spectral_norm=False, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.spectral_norm = bool(spectral_norm)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, x_shape, c_shape):
        channels = int(x_shape[-1])
        self.norm = keras.layers.BatchNormalization(momentum=self.momentum, epsilon=self.epsilon,
                                                    center=False, scale=False, name="norm")
        self.norm.build(tuple(x_shape))
        self.gain = maybe_spectral(keras.layers.Dense(channels, use_bias=False, name="gain"),
                                   self.spectral_norm)
        self.bias = maybe_spectral(keras.layers.Dense(channels, use_bias=False, name="bias"),
                                   self.spectral_norm)
        self.gain.build(tuple(c_shape))
        self.bias.build(tuple(c_shape))
        self.built = True

    def call(self, x, c, training=False):
        gain = 1.0 + self.gain(c, training=training)
        bias = self.bias(c, training=training)
        return self.norm(x, training=training) * gain[:, None, None, :] + bias[:, None, None, :]

    def compute_output_shape(self, x_shape, c_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "spectral_norm": self.spectral_norm,
                "momentum": self.momentum, "epsilon": self.epsilon}
