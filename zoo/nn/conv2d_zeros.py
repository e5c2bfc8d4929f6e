"""Glow's zero-initialised output convolution."""

import keras


@keras.saving.register_keras_serializable(package="zoo")
class Conv2DZeros(keras.layers.Layer):
    """A 3x3 convolution that starts at zero, its output scaled by exp(3 * logs).

    The last layer of Glow's coupling networks and of its split priors (Kingma &
    Dhariwal 2018, Sec. 3.3, https://arxiv.org/abs/1807.03039, and its code's
    ``conv2d_zeros``): kernel, bias and the per-channel ``logs`` all start at zero,
    so the step it feeds starts as the identity (or the prior as N(0, I)), and
    the factor 3 on ``logs`` lets the output scale grow quickly.

    Args:
        filters: output channels.
        kernel_size: side of the convolution window.
        logscale_factor: the factor on ``logs``.
    """

    def __init__(self, filters, kernel_size=3, logscale_factor=3.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.logscale_factor = float(logscale_factor)
        self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same",
                                        kernel_initializer="zeros", name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.logs = self.add_weight(name="logs", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        return self.conv(x) * keras.ops.exp(self.logscale_factor * self.logs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "logscale_factor": self.logscale_factor}
