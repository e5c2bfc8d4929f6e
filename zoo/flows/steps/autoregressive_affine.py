"""An affine autoregressive step: a Keras MADE in a MaskedAutoregressive bijector."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from zoo.flows.steps.masked_autoregressive import MaskedAutoregressive
from zoo.nn.made import MADE

tfb = tfp.bijectors


@keras.saving.register_keras_serializable(package="zoo")
class AutoregressiveAffine(keras.layers.Layer):
    """y_i = x_i * exp(s_i(y_<i)) + t_i(y_<i), with (t, s) from a MADE.

    The bijector is a :class:`MaskedAutoregressive` (``tfb.MaskedAutoregressiveFlow``'s
    transform) around our Keras :class:`MADE` (TFP's own ``AutoregressiveNetwork``
    is tf_keras, invisible to Keras 3). Its inverse ``x = (y - t(y)) * exp(-s(y))``
    and its log-det take one MADE pass together; its forward and log-det take D
    sequential passes, the first on a single row. MAF uses this step as is
    (density in one pass), IAF inverted (sampling in one pass).

    The log-scale is ``scale * tanh(raw)`` with a learned per-dimension ``scale``
    (as in :class:`AffineCoupling`), and the MADE's output layer starts at zero, so
    that the step starts as the identity.

    Args:
        event_size: D, the size of the (flat) event.
        hidden_units: width of the MADE's hidden layers.
        num_hidden: number of hidden layers of the MADE.
        input_order: the MADE's input order (see :func:`zoo.nn.made.input_degrees`).
    """

    def __init__(self, event_size, hidden_units, num_hidden=1, input_order="left-to-right",
                 **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.input_order = input_order
        self.made = MADE(self.event_size, hidden_units, num_hidden, params=2,
                         input_order=input_order, name="made")
        self.build(None)  # the bijector calls the MADE directly, not this layer

    def build(self, input_shape=None):
        if self.built:
            return
        self.scale = self.add_weight(name="scale", shape=(self.event_size,), initializer="ones")
        self.built = True

    def shift_and_log_scale(self, y):
        """(t, s) for each dimension, each depending only on earlier ones of `y`."""
        shift, raw = tf.unstack(self.made(y), num=2, axis=-1)
        return shift, self.scale * tf.tanh(raw)

    def bijector(self):
        """A :class:`MaskedAutoregressive` bijector whose network is this layer's MADE."""

        def affine(y):
            shift, log_scale = self.shift_and_log_scale(y)
            return tfb.Shift(shift)(tfb.Scale(log_scale=log_scale))

        return MaskedAutoregressive(affine, self.event_size, name=self.name)

    def call(self, x):
        return self.bijector().inverse(x)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "input_order": self.input_order,
        }
