"""A convolutional decoder: dense layers, then strided transposed convolutions."""

import keras

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class ConvDecoder(keras.layers.Layer):
    """Maps vectors to image-shaped outputs (e.g. a likelihood's per-pixel parameters).

    A dense ReLU layer of ``hidden_units``, a dense ReLU layer to a
    ``(H / 2**n, W / 2**n, filters * 2**(n-1))`` feature map, ``n - 1`` stride-2 3x3
    transposed convolutions (ReLU) halving the channels, and a last linear
    stride-2 transposed convolution to ``output_channels``.

    Args:
        output_shape: ``(H, W, output_channels)``, H and W divisible by 2**n.
        filters: channels of the last hidden feature map.
        hidden_units: width of the dense hidden layer.
        num_upsamplings: n, the number of stride-2 transposed convolutions.
    """

    def __init__(self, output_shape, filters, hidden_units, num_upsamplings=2, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in output_shape)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.num_upsamplings = int(num_upsamplings)
        h, w, c = self.image_shape
        factor = 2**self.num_upsamplings
        if h % factor or w % factor:
            raise ValueError(
                f"ConvDecoder: {self.num_upsamplings} upsamplings need H and W divisible "
                f"by {factor}, got output_shape {self.image_shape}"
            )
        self.base_shape = (h // factor, w // factor,
                           self.filters * 2 ** (self.num_upsamplings - 1))
        self.hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="hidden")
        self.project = keras.layers.Dense(
            self.base_shape[0] * self.base_shape[1] * self.base_shape[2],
            activation="relu", name="project",
        )
        self.upsamplings = [
            keras.layers.Conv2DTranspose(self.filters * 2 ** (self.num_upsamplings - 2 - i), 3,
                                         strides=2, padding="same", activation="relu",
                                         name=f"upsample_{i}")
            for i in range(self.num_upsamplings - 1)
        ]
        self.out = keras.layers.Conv2DTranspose(c, 3, strides=2, padding="same", name="out")

    def build(self, input_shape):
        batch = input_shape[0]
        self.hidden.build(input_shape)
        self.project.build((batch, self.hidden_units))
        shape = (batch,) + self.base_shape
        for conv in self.upsamplings:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.out.build(shape)

    def call(self, z):
        h = self.project(self.hidden(z))
        h = keras.ops.reshape(h, (-1,) + self.base_shape)
        for conv in self.upsamplings:
            h = conv(h)
        return self.out(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.image_shape

    def get_config(self):
        return {
            **super().get_config(),
            "output_shape": list(self.image_shape),
            "filters": self.filters,
            "hidden_units": self.hidden_units,
            "num_upsamplings": self.num_upsamplings,
        }
