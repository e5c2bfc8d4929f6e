"""ActNorm (Glow): a per-channel affine step with data-dependent initialisation."""

import keras
import numpy as np
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector


class _ActNormBijector(LayerBijector):
    """y = (x + loc) * exp(log_scale) per channel, log|det J| = H W sum(log_scale).

    With ``data_init``, ``forward`` first sets ``loc`` and ``log_scale`` from the
    batch ``x`` (so that ``y`` has zero mean and unit variance per channel) and
    returns that normalised ``y``.
    """

    def __init__(self, layer, data_init=False, name="act_norm"):
        parameters = dict(locals())
        self._layer = layer
        self._data_init = data_init
        super().__init__(parameters, forward_min_event_ndims=len(layer.event_shape), name=name)

    def _forward(self, x):
        if self._data_init:
            loc, log_scale = self._layer.initialize_from(x)
        else:
            loc, log_scale = self._layer.loc, self._layer.log_scale
        return (x + loc) * tf.exp(log_scale)

    def _inverse(self, y):
        return y * tf.exp(-self._layer.log_scale) - self._layer.loc

    def _forward_log_det_jacobian(self, x):
        return self._layer.num_positions * tf.reduce_sum(self._layer.log_scale)

    def _inverse_log_det_jacobian(self, y):
        return -self._layer.num_positions * tf.reduce_sum(self._layer.log_scale)


@keras.saving.register_keras_serializable(package="zoo")
class ActNorm(keras.layers.Layer):
    """Activation normalisation: y = (x + b) * exp(log s) with per-channel b, s.

    Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
    NeurIPS 2018, Sec. 3.1, https://arxiv.org/abs/1807.03039. The parameters start
    at the identity and are set once, from the first training batch, so that the
    step's outputs on it have zero mean and unit variance per channel
    (``initialize_from``). The non-trainable ``initialized`` flag is saved with the
    weights, so a reloaded model is not initialised again. ``bijector()`` is the
    paper's direction, data -> latent.

    Args:
        event_shape: shape of one example, ``(D,)`` or ``(H, W, C)``; the last axis
            holds the channels.
        epsilon: added to the standard deviation in the initialisation.
    """

    def __init__(self, event_shape, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        self.epsilon = float(epsilon)
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"ActNorm: expected event_shape (D,) or (H, W, C), "
                             f"got {self.event_shape}")
        self.num_positions = float(np.prod(self.event_shape[:-1]))  # H * W, or 1
        self.build(None)

    def build(self, input_shape=None):
        channels = self.event_shape[-1]
        self.loc = self.add_weight(name="loc", shape=(channels,), initializer="zeros")
        self.log_scale = self.add_weight(name="log_scale", shape=(channels,),
                                         initializer="zeros")
        self.initialized = self.add_weight(name="initialized", shape=(), dtype="bool",
                                           initializer="zeros", trainable=False)

    def initialize_from(self, x):
        """Sets b = -mean(x), log s = -log(std(x) + eps) per channel; returns them.

        Reduces over every axis but the channels. Call it in a cross-replica
        context with the whole batch (``Glow.initialize`` does).
        """
        axes = list(range(len(x.shape) - 1))
        mean = tf.reduce_mean(x, axes)
        std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axes))
        loc, log_scale = -mean, -tf.math.log(std + self.epsilon)
        self.loc.assign(loc)
        self.log_scale.assign(log_scale)
        self.initialized.assign(True)
        return loc, log_scale

    def bijector(self, data_init=False):
        return _ActNormBijector(self, data_init, name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape),
                "epsilon": self.epsilon}
