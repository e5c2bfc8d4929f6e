"""Glow's affine coupling: sigmoid scale, channel halves, zero-initialised network."""

import keras
import tensorflow as tf

from zoo.flows.steps.channel_affine_coupling import ChannelAffineCouplingBijector
from zoo.nn.conv2d_zeros import Conv2DZeros
from zoo.nn.mlp import MLP


@keras.saving.register_keras_serializable(package="zoo")
class GlowAffineCoupling(keras.layers.Layer):
    """x_a, x_b = split(x); (t, h) = NN(x_a); y_b = (x_b + t) * sigmoid(h + 2).

    Kingma & Dhariwal 2018, Sec. 3.3 and Table 1, https://arxiv.org/abs/1807.03039
    (the scale ``sigmoid(h + 2)`` is that of the paper's code). ``x_a`` is the first
    ``C // 2`` channels and passes through; the invertible 1x1 convolution before
    each coupling mixes the channels, so no alternation is needed.
    log|det J| = sum log sigmoid(h + 2). On images NN is conv3x3-ReLU-conv1x1-ReLU
    then a zero-initialised conv3x3 (:class:`Conv2DZeros`); on vectors an MLP with
    two hidden layers and a zero last layer. ``bijector()`` is the paper's
    direction, data -> latent (a :class:`ChannelAffineCouplingBijector`).

    Args:
        event_shape: ``(D,)`` or ``(H, W, C)`` with at least 2 channels.
        hidden_units: width of the network's hidden layers (channels on images).
    """

    def __init__(self, event_shape, hidden_units, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.hidden_units = hidden_units
        rank, channels = len(self.event_shape), self.event_shape[-1]
        if rank not in (1, 3) or channels < 2:
            raise ValueError(f"GlowAffineCoupling: expected event_shape (D,) or (H, W, C) "
                             f"with >= 2 channels, got {self.event_shape}")
        self.num_conditioning = channels // 2
        outputs = 2 * (channels - self.num_conditioning)
        if rank == 1:
            self.net = MLP(hidden_units, 2, outputs, name="net")
            self.net_layers = [self.net]
        else:
            self.net_layers = [
                keras.layers.Conv2D(hidden_units, 3, padding="same", activation="relu",
                                    name="conv_in"),
                keras.layers.Conv2D(hidden_units, 1, activation="relu", name="conv_hidden"),
                Conv2DZeros(outputs, name="conv_out"),
            ]
            for layer in self.net_layers:  # each a network under a mixed precision
                layer.computes_in_policy = True
        self.build(None)  # the bijector calls the network directly

    def build(self, input_shape=None):
        shape = (None,) + self.event_shape[:-1] + (self.num_conditioning,)
        for layer in self.net_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def network(self, x_a):
        h = x_a
        for layer in self.net_layers:
            h = layer(h)
        return h

    def shift_and_log_scale(self, x_a):
        """(t, log s) of x_b from x_a; s = sigmoid(h + 2)."""
        h = self.network(x_a)
        return h[..., 0::2], tf.math.log_sigmoid(h[..., 1::2] + 2.0)

    def bijector(self):
        return ChannelAffineCouplingBijector(
            self.shift_and_log_scale, self.num_conditioning, "first", len(self.event_shape),
            name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape),
                "hidden_units": self.hidden_units}
