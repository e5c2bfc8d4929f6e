"""A convolutional encoder: strided convolutions, a dense layer, a linear head."""

import keras

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class ConvEncoder(keras.layers.Layer):
    """Maps images to a vector of ``output_units`` (e.g. a posterior's parameters).

    ``num_downsamplings`` stride-2 3x3 convolutions (ReLU) doubling the channels
    from ``filters``, a dense ReLU layer of ``hidden_units``, and a linear output.

    Args:
        filters: channels of the first convolution.
        hidden_units: width of the dense hidden layer.
        output_units: width of the output.
        num_downsamplings: number of stride-2 convolutions.
    """

    def __init__(self, filters, hidden_units, output_units, num_downsamplings=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.output_units = int(output_units)
        self.num_downsamplings = int(num_downsamplings)
        self.convs = [
            keras.layers.Conv2D(self.filters * 2**i, 3, strides=2, padding="same",
                                activation="relu", name=f"downsample_{i}")
            for i in range(self.num_downsamplings)
        ]
        self.flatten = keras.layers.Flatten(name="flatten")
        self.hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="hidden")
        self.out = keras.layers.Dense(self.output_units, name="out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        shape = self.flatten.compute_output_shape(shape)
        self.hidden.build(shape)
        self.out.build(self.hidden.compute_output_shape(shape))

    def call(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.out(self.hidden(self.flatten(x)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_units)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "hidden_units": self.hidden_units,
            "output_units": self.output_units,
            "num_downsamplings": self.num_downsamplings,
        }
