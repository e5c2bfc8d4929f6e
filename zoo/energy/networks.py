"""The energy-based family's networks: energy (or logit) networks on points and
images, and the noise-conditional score networks of NCSN."""

import keras
import tensorflow as tf

from zoo.nn.spectral_norm import maybe_spectral
from zoo.precision import network

ACTIVATIONS = ("swish", "leaky_relu")


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"expected activation one of {list(ACTIVATIONS)}, got {name!r}")
    if name == "swish":
        return tf.nn.silu
    return lambda h: tf.maximum(h, 0.2 * h)


@keras.saving.register_keras_serializable(package="zoo")
@network
class EnergyNetwork(keras.layers.Layer):
    """``f(x)``: `outputs` unbounded values per example, an energy (``outputs=1``)
    or a classifier's logits (JEM's energy is ``-logsumexp f(x)``).

    On vectors: `num_hidden` dense layers of `hidden_units`; on images (H, W, C):
    a 3x3 convolution with `filters` channels, then `num_downsamplings` stride-2
    4x4 convolutions doubling them, a sum over positions and a dense head (the
    shape of Du & Mordatch's 2019 energy networks, without their residual
    blocks). Smooth Swish (or LeakyReLU) activations, since Langevin dynamics
    follows the input gradient; with `spectral_norm` every layer is spectrally
    normalised (:class:`~zoo.nn.spectral_norm.SpectralNorm`), as Du & Mordatch
    do for images, which keeps the energy Lipschitz and the chains stable.

    Args:
        outputs: values per example.
        hidden_units, num_hidden: the dense layers (vectors).
        filters, num_downsamplings: the convolutions (images).
        activation: ``"swish"`` or ``"leaky_relu"``.
        spectral_norm: spectral normalisation of every layer.
    """

    def __init__(self, outputs=1, hidden_units=128, num_hidden=3, filters=32,
                 num_downsamplings=2, activation="swish", spectral_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.outputs = int(outputs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.filters = int(filters)
        self.num_downsamplings = int(num_downsamplings)
        self.activation = activation
        self.act = _activation(activation)
        self.spectral_norm = bool(spectral_norm)
        self.layers_ = None

    def build(self, input_shape):
        sn = self.spectral_norm
        if len(input_shape) == 2:
            self.layers_ = [maybe_spectral(keras.layers.Dense(self.hidden_units, name=f"dense_{i}"),
                                           sn) for i in range(self.num_hidden)]
        else:
            self.layers_ = [maybe_spectral(keras.layers.Conv2D(self.filters, 3, padding="same",
                                                               name="conv_in"), sn)]
            self.layers_ += [maybe_spectral(keras.layers.Conv2D(
                self.filters * 2 ** (i + 1), 4, strides=2, padding="same", name=f"down_{i}"), sn)
                for i in range(self.num_downsamplings)]
        self.head = maybe_spectral(keras.layers.Dense(self.outputs, name="head"), sn)
        shape = tuple(input_shape)
        for layer in self.layers_:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.head.build((None, shape[-1]))

    def call(self, x, training=False):
        h = x
        for layer in self.layers_:
            h = self.act(layer(h, training=training) if self.spectral_norm else layer(h))
        if len(h.shape) == 4:
            h = tf.reduce_sum(h, axis=[1, 2])
        return self.head(h, training=training) if self.spectral_norm else self.head(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.outputs)

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs,
                "hidden_units": self.hidden_units, "num_hidden": self.num_hidden,
                "filters": self.filters, "num_downsamplings": self.num_downsamplings,
                "activation": self.activation, "spectral_norm": self.spectral_norm}


@keras.saving.register_keras_serializable(package="zoo")
@network
class NoiseConditionalScoreNetwork(keras.layers.Layer):
    """``s(x, sigma)``: a score per input value, conditioned on the noise level.

    On vectors, dense Swish layers that each see ``log sigma`` beside their input;
    on images, a small U-Net (a 3x3 convolution, one stride-2 convolution down,
    one transposed convolution up with a skip connection) whose layers add a
    per-channel bias from ``log sigma``. The output is divided by ``sigma``
    (Song & Ermon 2020's parametrisation ``s(x, sigma) = f(x) / sigma``, under
    which the denoising target ``-z / sigma`` has unit scale at every level).

    Args:
        hidden_units, num_hidden: the dense layers (vectors).
        filters: the convolutions' channels (images; doubled after the
            downsampling).
    """

    def __init__(self, hidden_units=128, num_hidden=3, filters=32, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.filters = int(filters)

    def build(self, input_shape):
        self.images = len(input_shape) == 4
        if not self.images:
            width = input_shape[-1]
            self.dense = [keras.layers.Dense(self.hidden_units, name=f"dense_{i}")
                          for i in range(self.num_hidden)]
            for layer in self.dense:
                layer.build((None, width + 1))
                width = self.hidden_units
            self.out = keras.layers.Dense(input_shape[-1], name="out")
            self.out.build((None, width + 1))
            return
        f, channels = self.filters, input_shape[-1]
        self.conv_in = keras.layers.Conv2D(f, 3, padding="same", name="conv_in")
        self.down = keras.layers.Conv2D(2 * f, 4, strides=2, padding="same", name="down")
        self.middle = keras.layers.Conv2D(2 * f, 3, padding="same", name="middle")
        self.up = keras.layers.Conv2DTranspose(f, 4, strides=2, padding="same", name="up")
        self.conv_out = keras.layers.Conv2D(channels, 3, padding="same", name="conv_out")
        self.embed = keras.layers.Dense(f + 2 * f + 2 * f + f, name="embed")
        h, w = input_shape[1], input_shape[2]
        self.conv_in.build((None, h, w, channels))
        self.down.build((None, h, w, f))
        self.middle.build((None, h // 2, w // 2, 2 * f))
        self.up.build((None, h // 2, w // 2, 2 * f))
        self.conv_out.build((None, h, w, 2 * f))
        self.embed.build((None, 1))

    def call(self, x, sigma):
        """The score at the batch `x` for the noise levels `sigma` ((batch,) or a scalar)."""
        sigma = tf.reshape(tf.cast(sigma, x.dtype), [-1, 1]) * tf.ones_like(
            x[:, :1] if not self.images else x[:, 0, 0, :1])
        level = tf.math.log(sigma)
        if not self.images:
            h = x
            for layer in self.dense:
                h = tf.nn.silu(layer(tf.concat([h, level], -1)))
            return self.out(tf.concat([h, level], -1)) / sigma
        f = self.filters
        bias = self.embed(level)[:, None, None, :]
        b1, b2, b3, b4 = tf.split(bias, [f, 2 * f, 2 * f, f], axis=-1)
        h1 = tf.nn.silu(self.conv_in(x) + b1)
        h2 = tf.nn.silu(self.down(h1) + b2)
        h3 = tf.nn.silu(self.middle(h2) + b3)
        h4 = tf.nn.silu(self.up(h3) + b4)
        out = self.conv_out(tf.concat([h4, h1], -1))
        return out / sigma[:, :, None, None]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units,
                "num_hidden": self.num_hidden, "filters": self.filters}
