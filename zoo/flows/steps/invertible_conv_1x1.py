"""Glow's invertible 1x1 convolution in LU-decomposed form."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from zoo.flows.steps.bijector import LayerBijector


class _LUConv1x1Bijector(LayerBijector):
    """y = W x on the last axis, W = lu_reconstruct(lower_upper, permutation).

    log|det J| = sum(log_scale) per position (the diagonal of U is
    sign * exp(log_scale)). The same map as ``tfb.ScaleMatvecLU``, written as one
    matrix product over all positions and, for the inverse, a product with the
    inverse of the C x C matrix: several times faster on images
    (bench/invertible_conv_1x1_speed.py).
    """

    def __init__(self, lower_upper, permutation, log_scale, name="invertible_conv_1x1"):
        parameters = dict(locals())
        self._lower_upper = lower_upper
        self._permutation = permutation
        self._log_scale = log_scale
        super().__init__(parameters, forward_min_event_ndims=1,
                         name=name, is_constant_jacobian=True)

    def _forward(self, x):
        kernel = tfp.math.lu_reconstruct(self._lower_upper, self._permutation)
        return tf.tensordot(x, tf.transpose(kernel), 1)

    def _inverse(self, y):
        inverse = tfp.math.lu_matrix_inverse(self._lower_upper, self._permutation)
        return tf.tensordot(y, tf.transpose(inverse), 1)

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(self._log_scale)


@keras.saving.register_keras_serializable(package="zoo")
class InvertibleConv1x1(keras.layers.Layer):
    """y = W x at every position, W = P L (U + diag(sign * exp(log_scale))).

    Kingma & Dhariwal 2018, Sec. 3.2 and its LU decomposition,
    https://arxiv.org/abs/1807.03039: ``P`` is a fixed permutation, ``L`` lower
    triangular with a unit diagonal, ``U`` upper triangular with a zero diagonal,
    and the diagonal is ``sign * exp(log_scale)`` with a fixed sign, so
    log|det J| = H W sum(log_scale). W starts as a random rotation.
    ``bijector()`` (the map of ``tfb.ScaleMatvecLU`` on the channel axis, written
    faster) is the paper's direction, data -> latent.

    Args:
        channels: C, the length of the channel axis.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.build(None)

    def build(self, input_shape=None):
        c = self.channels
        with tf.init_scope():  # eager, even when built inside a graph
            rotation = keras.initializers.Orthogonal()((c, c))
            lower_upper, permutation = tf.linalg.lu(tf.convert_to_tensor(rotation, tf.float32))
            lower_upper, permutation = lower_upper.numpy(), permutation.numpy()
        diagonal = np.diag(lower_upper)
        constant = lambda value: (lambda shape, dtype=None: tf.constant(value, dtype))
        self.lower = self.add_weight(
            name="lower", shape=(c, c), initializer=constant(np.tril(lower_upper, -1)))
        self.upper = self.add_weight(
            name="upper", shape=(c, c), initializer=constant(np.triu(lower_upper, 1)))
        self.log_scale = self.add_weight(
            name="log_scale", shape=(c,), initializer=constant(np.log(np.abs(diagonal))))
        self.sign = self.add_weight(
            name="sign", shape=(c,), initializer=constant(np.sign(diagonal)), trainable=False)
        self.permutation = self.add_weight(
            name="permutation", shape=(c,), dtype="int32",
            initializer=constant(permutation), trainable=False)
        self.lower_mask = np.tril(np.ones((c, c), "float32"), -1)
        self.upper_mask = np.triu(np.ones((c, c), "float32"), 1)

    def lower_upper(self):
        """L + U - I packed as ``tf.linalg.lu`` returns it (diagonal: U's)."""
        return (
            self.lower * self.lower_mask
            + self.upper * self.upper_mask
            + tf.linalg.diag(self.sign * tf.exp(self.log_scale))
        )

    def kernel(self):
        """The C x C matrix W."""
        return tfp.math.lu_reconstruct(self.lower_upper(), tf.convert_to_tensor(self.permutation))

    def bijector(self):
        return _LUConv1x1Bijector(self.lower_upper(), tf.convert_to_tensor(self.permutation),
                                  tf.convert_to_tensor(self.log_scale), name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
