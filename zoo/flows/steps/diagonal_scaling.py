"""NICE's diagonal scaling layer, the flow's only volume-changing step."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


@keras.saving.register_keras_serializable(package="zoo")
class DiagonalScaling(keras.layers.Layer):
    """y = exp(s) * x with a learned vector s, log|det J| = sum(s).

    The top layer of NICE (Dinh, Krueger & Bengio 2014, Sec. 3.3,
    https://arxiv.org/abs/1410.8516): ``S_ii = exp(s_i)`` lets the otherwise
    volume-preserving flow weigh its latent dimensions. ``s`` starts at zero.
    ``bijector()`` is the paper's direction, data -> latent.

    Args:
        event_size: D, the length of the vectors.
    """

    def __init__(self, event_size, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.build(None)

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(
            name="log_scale", shape=(self.event_size,), initializer="zeros"
        )

    def bijector(self):
        # A tensor, not the variable: TFP's cache compares parameters by value.
        return tfb.Scale(log_scale=tf.convert_to_tensor(self.log_scale), name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size}
