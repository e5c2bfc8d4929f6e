"""Batch normalisation as a bijector (MAF, Papamakarios et al. 2017, Sec. 3.4)."""

import keras
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector


class _BatchNormBijector(LayerBijector):
    """Forward (latent -> data side): ``x = (u - beta) exp(-log_gamma) sqrt(v + eps) + m``.

    Inverse (normalizing): ``u = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta``,
    log|det| ``sum(log_gamma - log(v + eps) / 2)``. With ``batch_statistics``, the
    inverse's ``(m, v)`` are the moments of its input batch (treated as constants
    in the log-det, as in the paper) and it updates the layer's moving averages;
    otherwise, and in the forward always, ``(m, v)`` are the moving averages.
    """

    def __init__(self, layer, batch_statistics, name="batch_norm"):
        parameters = dict(locals())
        self._layer = layer
        self._batch_statistics = batch_statistics
        super().__init__(parameters, forward_min_event_ndims=1, name=name)

    def _moments(self, x, update=False):
        layer = self._layer
        if not self._batch_statistics:
            return layer.moving_mean, layer.moving_variance
        axes = list(range(x.shape.rank - 1))
        mean, variance = tf.nn.moments(x, axes=axes)
        if update:
            m = layer.momentum
            layer.moving_mean.assign(m * layer.moving_mean + (1.0 - m) * mean)
            layer.moving_variance.assign(m * layer.moving_variance + (1.0 - m) * variance)
        return mean, variance

    def _forward(self, u):
        # The data-side batch is what is being made, so its moments are unknown:
        # the forward always uses the moving averages.
        layer = self._layer
        return ((u - layer.beta) * tf.exp(-layer.log_gamma)
                * tf.sqrt(layer.moving_variance + layer.epsilon) + layer.moving_mean)

    def _inverse(self, x):
        mean, variance = self._moments(x, update=True)
        layer = self._layer
        scale = tf.math.rsqrt(variance + layer.epsilon) * tf.exp(layer.log_gamma)
        return (x - mean) * scale + layer.beta

    def _inverse_log_det_jacobian(self, x):
        _, variance = self._moments(x)
        layer = self._layer
        return tf.reduce_sum(layer.log_gamma - 0.5 * tf.math.log(variance + layer.epsilon))

    def _forward_log_det_jacobian(self, u):
        layer = self._layer
        variance = layer.moving_variance
        return -tf.reduce_sum(layer.log_gamma - 0.5 * tf.math.log(variance + layer.epsilon))


@keras.saving.register_keras_serializable(package="zoo")
class BatchNormBijectorLayer(keras.layers.Layer):
    """Batch normalisation of flat events as an invertible layer.

    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density
    Estimation", NeurIPS 2017, Sec. 3.4, https://arxiv.org/abs/1705.07057 (after
    Dinh et al.'s RealNVP, Sec. 3.7). Normalizing direction
    ``u = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta`` per dimension, with
    log|det J| ``sum(log_gamma - log(v + eps) / 2)``.

    While ``batch_statistics`` is True (the model sets it while it traces its
    training step), ``(m, v)`` are the mean and variance of the batch being
    normalized, and each such pass moves ``moving_mean``/``moving_variance``
    towards them (``moving = momentum * moving + (1 - momentum) * batch``).
    Otherwise (evaluation, ``log_prob``, sampling, export) the moving averages are
    used, so the layer is a fixed elementwise affine map. Sampling always uses
    the moving averages.

    Args:
        event_size: D, the size of the flat event.
        momentum: of the moving averages.
        epsilon: added to the variance.
    """

    def __init__(self, event_size, momentum=0.99, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not 0.0 <= self.momentum < 1.0 or self.epsilon <= 0.0:
            raise ValueError(f"BatchNormBijectorLayer: expected 0 <= momentum < 1 and "
                             f"epsilon > 0, got {momentum}, {epsilon}")
        self.batch_statistics = False
        self.build(None)

    def build(self, input_shape=None):
        if self.built:
            return
        shape = (self.event_size,)
        self.log_gamma = self.add_weight(name="log_gamma", shape=shape, initializer="zeros")
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")
        # Under a distribution strategy the replicas' updates are averaged, so
        # every copy holds the same moving averages.
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros",
                                           trainable=False, aggregation="mean")
        self.moving_variance = self.add_weight(name="moving_variance", shape=shape,
                                               initializer="ones", trainable=False,
                                               aggregation="mean")
        self.built = True

    def bijector(self):
        return _BatchNormBijector(self, self.batch_statistics, name=self.name)

    def call(self, x):
        return self.bijector().inverse(x)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size,
                "momentum": self.momentum, "epsilon": self.epsilon}
