"""Gated PixelCNN (van den Oord et al. 2016b): vertical and horizontal stacks
without a blind spot, gated activations, class-conditional."""

import keras

from zoo.autoregressive.base import AutoregressiveModel
from zoo.autoregressive.pixelcnn import check_image_network
from zoo.nn.masked_conv import MaskedConv2D
from zoo.precision import network
from zoo.registry import register


def gate(h, condition=None):
    """tanh(a) * sigmoid(b) of the two halves of `h`'s channels, `condition`
    (a per-example bias of the same channels) added first."""
    if condition is not None:
        h = h + condition
    a, b = keras.ops.split(h, 2, axis=-1)
    return keras.ops.tanh(a) * keras.ops.sigmoid(b)


@keras.saving.register_keras_serializable(package="zoo")
@network
class GatedPixelCNNNetwork(keras.layers.Layer):
    """Gated layers of a vertical stack (k x k, the rows above: every pixel of a
    layer's window there) and a horizontal stack (1 x k, the pixels to the left in
    the row), the vertical feeding the horizontal through a 1x1 convolution, the
    horizontal one residual (the paper's Fig. 2); then two 1x1 output layers.

    The vertical stack sees only rows strictly above (its first layer is masked
    so, the later ones see their own row of vertical features), so it needs no
    shift; together the two stacks see every earlier pixel of the receptive
    field: no blind spot.

    Args:
        filters: p, the channels of each stack (the convolutions give 2p, gated to p).
        num_layers: gated layers.
        output_units: channels of the hidden output layer.
        output_channels: P * C.
        data_channels: C.
        kernel: k (odd).
        num_classes: classes of the conditioning (0: none); each class adds a
            learned bias to every gate (the paper's eq. 4, V^T h with one-hot h).
    """

    def __init__(self, filters, num_layers, output_units, output_channels, data_channels,
                 kernel=3, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_layers = int(num_layers)
        self.output_units = int(output_units)
        self.output_channels = int(output_channels)
        self.data_channels = int(data_channels)
        self.kernel = int(kernel)
        self.num_classes = int(num_classes)
        c, k, p = self.data_channels, self.kernel, self.filters
        self.layers_ = []
        for i in range(self.num_layers):
            kind = "A" if i == 0 else "B"
            in_period = None if i == 0 else p
            self.layers_.append(dict(
                vertical=MaskedConv2D(2 * p, k, kind, c, "vertical", name=f"vertical_{i}"),
                horizontal=MaskedConv2D(2 * p, (1, k), kind, c, "horizontal",
                                        in_period=in_period, out_period=p,
                                        name=f"horizontal_{i}"),
                link=keras.layers.Conv2D(2 * p, 1, name=f"link_{i}"),
                residual=(MaskedConv2D(p, 1, "B", c, name=f"residual_{i}") if i else None),
                condition=(keras.layers.Dense(2 * p, use_bias=False, name=f"condition_{i}")
                           if self.num_classes else None)))
        self.hidden = MaskedConv2D(self.output_units, 1, "B", c, name="hidden")
        self.out = MaskedConv2D(self.output_channels, 1, "B", c, out_period=c, name="out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        p = self.filters
        for i, layer in enumerate(self.layers_):
            layer["vertical"].build(shape)
            layer["horizontal"].build(shape)
            layer["link"].build(shape[:-1] + (2 * p,))
            if layer["residual"] is not None:
                layer["residual"].build(shape)
            if layer["condition"] is not None:
                layer["condition"].build((None, self.num_classes))
            shape = shape[:-1] + (p,)
        self.hidden.build(shape)
        self.out.build(shape[:-1] + (self.output_units,))

    def call(self, x, condition=None):
        v = h = x
        for layer in self.layers_:
            bias = None
            if layer["condition"] is not None:
                bias = layer["condition"](condition)[:, None, None, :]
            v_pre = layer["vertical"](v)
            h_pre = layer["horizontal"](h) + layer["link"](v_pre)
            v = gate(v_pre, bias)
            gated = gate(h_pre, bias)
            h = gated if layer["residual"] is None else h + layer["residual"](gated)
        return self.out(keras.ops.relu(self.hidden(keras.ops.relu(h))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_layers": self.num_layers,
                "output_units": self.output_units, "output_channels": self.output_channels,
                "data_channels": self.data_channels, "kernel": self.kernel,
                "num_classes": self.num_classes}


@register(
    "gated_pixelcnn",
    presets={
        "digits": dict(filters=32, num_layers=5, output_units=64),
        "fashion_mnist": dict(filters=64, num_layers=10, output_units=128),
    },
    training={
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN: vertical and horizontal stacks of gated masked convolutions
    (no blind spot), a categorical over the levels of each value; class-conditional
    with ``num_classes > 0`` (a learned bias per class in every gate).

    van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu,
    "Conditional Image Generation with PixelCNN Decoders", NeurIPS 2016,
    https://arxiv.org/abs/1606.05328 (Sec. 2.1-2.3).

    Args:
        data_shape: ``(H, W, C)`` images.
        num_levels: the levels L of the raw values.
        filters: channels of each stack.
        num_layers: gated layers.
        output_units: channels of the hidden output layer.
        kernel: side of the vertical stack's window (odd).
        num_classes: classes (0: unconditional).
    """

    conditional = True

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, filters=32, num_layers=5,
                 output_units=64, kernel=3, **kwargs):
        kwargs.setdefault("name", "gated_pixelcnn")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.filters = int(filters)
        self.num_layers = int(num_layers)
        self.output_units = int(output_units)
        self.kernel = int(kernel)
        check_image_network(self, filters=self.filters, num_layers=self.num_layers,
                            output_units=self.output_units, kernel=self.kernel)
        self.network = GatedPixelCNNNetwork(
            self.filters, self.num_layers, self.output_units,
            self.observation_model.params_per_channel * self.channels, self.channels,
            self.kernel, self.num_classes, name="network")
        self.build_model()

    def params(self, x, labels=None, training=False):
        condition = self.one_hot(labels) if self.num_classes else None
        return self.network(self.scaled(x), condition)
