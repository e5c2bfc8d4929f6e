"""A time-conditioned MLP: the vector field f(z, t) of a continuous normalizing flow."""

import keras
import tensorflow as tf

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class TimeConditionedMLP(keras.layers.Layer):
    """``f(z, t)``: dense layers that each see the time concatenated to their input.

    The "concat" layers of FFJORD's toy models (Grathwohl et al. 2019,
    https://arxiv.org/abs/1810.01367, Sec. 5 and App. B.1): every layer maps
    ``[h, t]`` to its output, hidden layers use a smooth activation (tanh or
    softplus, so that ``f`` is Lipschitz and its Jacobian is smooth, which the
    ODE solver and the trace need), the output layer is linear.

    Args:
        hidden_units: width of each hidden layer.
        num_hidden: number of hidden layers.
        output_units: width of the output (the event size).
        activation: ``"tanh"`` or ``"softplus"``.
        zero_init: start the output layer at zero, so that ``f = 0`` and the flow
            starts as the identity.
    """

    def __init__(self, hidden_units, num_hidden, output_units, activation="tanh",
                 zero_init=True, **kwargs):
        super().__init__(**kwargs)
        if activation not in ("tanh", "softplus"):
            raise ValueError(f"activation must be 'tanh' or 'softplus', got {activation!r}")
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.output_units = output_units
        self.activation = activation
        self.zero_init = zero_init
        self.hidden = [
            keras.layers.Dense(hidden_units, activation=activation, name=f"dense_{i}")
            for i in range(num_hidden)
        ]
        init = "zeros" if zero_init else "glorot_uniform"
        self.out = keras.layers.Dense(output_units, kernel_initializer=init, name="out")

    def build(self, input_shape):
        width = input_shape[-1]
        for layer in self.hidden + [self.out]:
            layer.build((None, width + 1))
            width = layer.units

    @staticmethod
    def _with_time(h, t):
        t = tf.cast(t, h.dtype) * tf.ones_like(h[..., :1])
        return tf.concat([h, t], axis=-1)

    def call(self, z, t):
        """``f(z, t)`` for a batch ``z`` (..., D) and a scalar (or broadcastable) time."""
        h = z
        for layer in self.hidden:
            h = layer(self._with_time(h, t))
        return self.out(self._with_time(h, t))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_units,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "output_units": self.output_units,
            "activation": self.activation,
            "zero_init": self.zero_init,
        }
