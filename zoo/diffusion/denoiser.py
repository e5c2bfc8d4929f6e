"""The network of a diffusion model: (x_t, t, class) -> the predicted noise (and variance)."""

import keras
import tensorflow as tf

from zoo.nn.time_conditioned_mlp import TimeConditionedMLP
from zoo.nn.unet import UNet, sinusoidal_embedding
from zoo.precision import network

# Width of the timestep's sinusoidal embedding on vectors, and of their class embedding.
POINT_EMBEDDING = 16


@keras.saving.register_keras_serializable(package="zoo")
@network
class Denoiser(keras.layers.Layer):
    """``eps_theta(x_t, t, y)``: a :class:`~zoo.nn.unet.UNet` on images, a
    :class:`~zoo.nn.time_conditioned_mlp.TimeConditionedMLP` on vectors.

    Images: the timestep's sinusoidal embedding (``channels`` wide) conditions
    every residual block, and a learned class embedding is added to it. Vectors:
    ``[x_t, sinusoidal(t), class embedding]`` goes into an MLP that also sees
    ``t / T`` at every layer (softplus). Classes are ``0..num_classes - 1`` and
    ``num_classes``, the null label of classifier-free guidance. The output has
    ``outputs_per_value`` values per data value: the noise, and the variance's
    interpolation ``v`` for a model that learns it.

    Args:
        data_shape: ``(H, W, C)`` or ``(D,)``.
        num_timesteps: ``T``.
        outputs_per_value: 1 (noise) or 2 (noise and ``v``).
        num_classes: classes (0: unconditional; no class embedding).
        channels, channel_mults, num_res_blocks, dropout: the U-Net's (images).
        hidden_units, num_hidden: the MLP's (vectors).
    """

    def __init__(self, data_shape, num_timesteps, outputs_per_value=1, num_classes=0,
                 channels=32, channel_mults=(1, 2), num_res_blocks=2, dropout=0.0,
                 hidden_units=128, num_hidden=3, **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(d) for d in data_shape)
        self.num_timesteps = int(num_timesteps)
        self.outputs_per_value = int(outputs_per_value)
        self.num_classes = int(num_classes)
        self.channels = int(channels)
        self.channel_mults = tuple(int(m) for m in channel_mults)
        self.num_res_blocks = int(num_res_blocks)
        self.dropout = float(dropout)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.images = len(self.data_shape) == 3
        if not self.images and len(self.data_shape) != 1:
            raise ValueError(f"Denoiser: expected data_shape (H, W, C) or (D,), got "
                             f"{self.data_shape}")
        if self.images:
            self.net = UNet(self.channels, self.channel_mults, self.num_res_blocks,
                            self.data_shape[-1] * self.outputs_per_value, dropout=self.dropout,
                            name="unet")
            width = 4 * self.channels
        else:
            self.net = TimeConditionedMLP(self.hidden_units, self.num_hidden,
                                          self.data_shape[0] * self.outputs_per_value,
                                          activation="softplus", name="mlp")
            width = POINT_EMBEDDING
        # A dense layer on one-hot classes (an embedding's gradient would be sparse).
        self.class_embedding = keras.layers.Dense(
            width, use_bias=False, name="class_embedding") if self.num_classes else None

    def build(self, x_shape, t_shape=None, labels_shape=None):
        if self.images:
            self.net.build(x_shape, (None, self.channels),
                           (None, 4 * self.channels) if self.num_classes else None)
        else:
            extra = POINT_EMBEDDING * (2 if self.num_classes else 1)
            self.net.build((None, self.data_shape[0] + extra))
        if self.class_embedding is not None:
            self.class_embedding.build((None, self.num_classes + 1))
        self.built = True

    def call(self, x, t, labels=None):
        """`x` (batch,) + data_shape, `t` (batch,) int timesteps, `labels` (batch,)
        in ``[0, num_classes]`` (``num_classes``: none) for a conditional network."""
        classes = None
        if self.class_embedding is not None:
            if labels is None:
                labels = tf.fill(tf.shape(t), self.num_classes)
            classes = self.class_embedding(tf.one_hot(labels, self.num_classes + 1))
        if self.images:
            return self.net(x, sinusoidal_embedding(t, self.channels), classes)
        parts = [x, tf.cast(sinusoidal_embedding(t, POINT_EMBEDDING), x.dtype)]
        if classes is not None:
            parts.append(tf.cast(classes, x.dtype))
        time = tf.cast(t, x.dtype)[:, None] / self.num_timesteps
        return self.net(tf.concat(parts, axis=-1), time)

    def get_config(self):
        return {**super().get_config(), "data_shape": list(self.data_shape),
                "num_timesteps": self.num_timesteps, "outputs_per_value": self.outputs_per_value,
                "num_classes": self.num_classes, "channels": self.channels,
                "channel_mults": list(self.channel_mults), "num_res_blocks": self.num_res_blocks,
                "dropout": self.dropout, "hidden_units": self.hidden_units,
                "num_hidden": self.num_hidden}
