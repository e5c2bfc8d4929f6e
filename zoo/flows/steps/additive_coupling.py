"""Additive coupling (NICE): a Keras layer that owns the coupling function m."""

import keras
import numpy as np
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector
from zoo.nn.mlp import MLP


class _AdditiveCouplingBijector(LayerBijector):
    """y_I1 = x_I1, y_I2 = x_I2 + m(x_I1) on the last axis; log|det J| = 0.

    Dinh, Krueger & Bengio 2014, eq. 5-7, https://arxiv.org/abs/1410.8516.
    """

    def __init__(self, fixed, free, coupling_fn, name="additive_coupling"):
        parameters = dict(locals())
        self._fixed = tf.constant(fixed, tf.int32)
        self._free = tf.constant(free, tf.int32)
        # concat([x_I1, x_I2]) -> x in its original order.
        self._order = tf.constant(np.argsort(np.concatenate([fixed, free])), tf.int32)
        self._fn = coupling_fn
        super().__init__(parameters, forward_min_event_ndims=1,
                         name=name, is_constant_jacobian=True)

    def _couple(self, x, sign):
        x1 = tf.gather(x, self._fixed, axis=-1)
        x2 = tf.gather(x, self._free, axis=-1)
        return tf.gather(tf.concat([x1, x2 + sign * self._fn(x1)], -1), self._order, axis=-1)

    def _forward(self, x):
        return self._couple(x, 1.0)

    def _inverse(self, y):
        return self._couple(y, -1.0)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], x.dtype)


@keras.saving.register_keras_serializable(package="zoo")
class AdditiveCoupling(keras.layers.Layer):
    """NICE's additive coupling layer on vectors, with an MLP coupling function.

    Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation",
    2014, Sec. 3.2-3.3, https://arxiv.org/abs/1410.8516. The partition interleaves
    the coordinates: ``I1`` (kept fixed) holds the indices ``i`` with
    ``i % 2 == parity``, ``I2`` the others, and ``y_I2 = x_I2 + m(x_I1)``. The step
    is volume preserving (unit Jacobian determinant). ``m``'s last layer starts at
    zero, so the step starts as the identity.

    ``bijector()`` is the paper's direction, data -> latent.

    Args:
        event_size: D, the length of the vectors (at least 2).
        parity: 0 or 1, which interleaved half stays fixed.
        hidden_units: width of m's hidden layers.
        num_hidden: number of m's hidden (ReLU) layers.
    """

    def __init__(self, event_size, parity, hidden_units, num_hidden, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.parity = int(parity)
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        if self.event_size < 2:
            raise ValueError(f"AdditiveCoupling: expected event_size >= 2, got {event_size}")
        if self.parity not in (0, 1):
            raise ValueError(f"AdditiveCoupling: expected parity 0 or 1, got {parity}")
        index = np.arange(self.event_size)
        self.fixed = index[index % 2 == self.parity]
        self.free = index[index % 2 != self.parity]
        self.coupling_function = MLP(hidden_units, num_hidden, len(self.free), name="m")
        self.build(None)  # the bijector calls m directly, not this layer

    def build(self, input_shape=None):
        self.coupling_function.build((None, len(self.fixed)))

    def bijector(self):
        return _AdditiveCouplingBijector(self.fixed, self.free, self.coupling_function,
                                         name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "parity": self.parity,
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
        }
