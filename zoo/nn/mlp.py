"""A multilayer perceptron whose last layer starts at zero."""

import keras
import tensorflow as tf

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class MLP(keras.layers.Layer):
    """Dense ReLU layers, then a linear output layer.

    Args:
        hidden_units: width of each hidden layer.
        num_hidden: number of hidden layers.
        output_units: width of the output.
        zero_init: start the output layer at zero (so a coupling starts at identity).
    """

    policy_methods = ("call", "partial_call")  # RealNVP's vector coupling uses both

    def __init__(self, hidden_units, num_hidden, output_units, zero_init=True, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.output_units = output_units
        self.zero_init = zero_init
        self.hidden = [
            keras.layers.Dense(hidden_units, activation="relu", name=f"dense_{i}")
            for i in range(num_hidden)
        ]
        init = "zeros" if zero_init else "glorot_uniform"
        self.out = keras.layers.Dense(output_units, kernel_initializer=init, name="out")

    def build(self, input_shape):
        shape = input_shape
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.out.build(shape)

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)

    def partial_call(self, x, inputs):
        """``call(v)`` for the input ``v`` that is `x` on the features `inputs` (a
        slice) and zero elsewhere: the first layer uses only those rows of its
        kernel, so the zeros are never multiplied.

        A masked coupling on vectors is this: it conditions on one half, masking
        the other. (Restricting the last layer to the moved half's columns as
        well gained nothing: by a gather it sampled no faster, by slices of its
        kernel it trained slower.)"""
        first, *rest = self.hidden + [self.out]
        dtype = first.compute_dtype
        kernel = tf.cast(first.kernel[inputs], dtype)
        x = first.activation(tf.matmul(tf.cast(x, dtype), kernel) + tf.cast(first.bias, dtype))
        for layer in rest:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_units,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "output_units": self.output_units,
            "zero_init": self.zero_init,
        }
