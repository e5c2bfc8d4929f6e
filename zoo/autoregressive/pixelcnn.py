"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): masked convolutions
of type A and B and a softmax over the levels of each value."""

import keras

from zoo.autoregressive.base import AutoregressiveModel
from zoo.nn.masked_conv import MaskedConv2D
from zoo.precision import network
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@network
class PixelCNNNetwork(keras.layers.Layer):
    """A mask-A convolution, residual blocks of mask-B convolutions (1x1 halving
    the channels, k x k, 1x1 restoring them: the paper's Fig. 5), and two 1x1
    mask-B output layers (ReLU between).

    Args:
        filters: channels of the residual stream (2h in the paper).
        num_blocks: residual blocks.
        output_units: channels of the hidden output layer.
        output_channels: P * C (P parameters per value, C data channels).
        data_channels: C.
        first_kernel: side of the mask-A convolution (7 in the paper).
        kernel: side of the blocks' mask-B convolutions (3).
    """

    def __init__(self, filters, num_blocks, output_units, output_channels, data_channels,
                 first_kernel=7, kernel=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.output_units = int(output_units)
        self.output_channels = int(output_channels)
        self.data_channels = int(data_channels)
        self.first_kernel = int(first_kernel)
        self.kernel = int(kernel)
        c = self.data_channels
        self.first = MaskedConv2D(self.filters, self.first_kernel, "A", c, name="first")
        self.blocks = [
            (MaskedConv2D(self.filters // 2, 1, "B", c, name=f"block_{i}_in"),
             MaskedConv2D(self.filters // 2, self.kernel, "B", c, name=f"block_{i}_conv"),
             MaskedConv2D(self.filters, 1, "B", c, name=f"block_{i}_out"))
            for i in range(self.num_blocks)]
        self.hidden = MaskedConv2D(self.output_units, 1, "B", c, name="hidden")
        self.out = MaskedConv2D(self.output_channels, 1, "B", c, out_period=c, name="out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.first.build(shape)
        shape = shape[:-1] + (self.filters,)
        half = shape[:-1] + (self.filters // 2,)
        for a, b, c in self.blocks:
            a.build(shape)
            b.build(half)
            c.build(half)
        self.hidden.build(shape)
        self.out.build(shape[:-1] + (self.output_units,))

    def call(self, x):
        h = self.first(x)
        for a, b, c in self.blocks:
            h = h + c(keras.ops.relu(b(keras.ops.relu(a(keras.ops.relu(h))))))
        return self.out(keras.ops.relu(self.hidden(keras.ops.relu(h))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_blocks": self.num_blocks,
                "output_units": self.output_units, "output_channels": self.output_channels,
                "data_channels": self.data_channels, "first_kernel": self.first_kernel,
                "kernel": self.kernel}


@register(
    "pixelcnn",
    presets={
        "digits": dict(filters=64, num_blocks=4, output_units=64, first_kernel=5),
        "fashion_mnist": dict(filters=64, num_blocks=7, output_units=128),
    },
    training={
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class PixelCNN(AutoregressiveModel):
    """PixelCNN: a stack of masked convolutions giving a categorical over the
    levels of each value, in raster order and, for colour data, channel by
    channel (mask A in the first layer, B after it).

    van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks",
    ICML 2016, https://arxiv.org/abs/1601.06759 (Sec. 3.4 and 3.5). Its receptive
    field has the blind spot that Gated PixelCNN removes (van den Oord et al.
    2016b, Fig. 1): the pixels above and to the right beyond the diagonal,
    ``dc > -dr + first_kernel // 2 - 1`` at offset ``(dr < 0, dc)``.

    Args:
        data_shape: ``(H, W, C)`` images.
        num_levels: the levels L of the raw values.
        filters: channels of the residual stream (even).
        num_blocks: residual blocks.
        output_units: channels of the hidden output layer.
        first_kernel: side of the mask-A convolution (odd).
        kernel: side of the mask-B convolutions (odd).
    """

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, filters=64, num_blocks=4,
                 output_units=64, first_kernel=7, kernel=3, **kwargs):
        kwargs.setdefault("name", "pixelcnn")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.output_units = int(output_units)
        self.first_kernel = int(first_kernel)
        self.kernel = int(kernel)
        check_image_network(self, filters=self.filters, num_blocks=self.num_blocks,
                            output_units=self.output_units, first_kernel=self.first_kernel,
                            kernel=self.kernel)
        if self.filters % 2:
            raise ValueError(f"PixelCNN: expected an even number of filters (the blocks halve "
                             f"it), got {filters}")
        self.network = PixelCNNNetwork(
            self.filters, self.num_blocks, self.output_units,
            self.observation_model.params_per_channel * self.channels, self.channels,
            self.first_kernel, self.kernel, name="network")
        self.build_model()

    def params(self, x, labels=None, training=False):
        return self.network(self.scaled(x))


def check_image_network(model, **settings):
    """Clear errors for an image model's data shape and its network's settings:
    ``(H, W, C)`` data; every setting an int >= 1 (0 allowed for ``num_blocks``),
    the kernels odd; filters divisible into the data's colour groups."""
    where = type(model).__name__
    if len(model.data_shape) != 3:
        raise ValueError(f"{where}: expected data_shape (H, W, C), got {model.data_shape}")
    for name, value in settings.items():
        low = 0 if name in ("num_blocks", "dropout") else 1
        if value < low:
            raise ValueError(f"{where}: expected {name} >= {low}, got {value}")
        if "kernel" in name and value % 2 == 0:
            raise ValueError(f"{where}: expected an odd {name}, got {value}")
    channels = model.channels
    for name in ("filters", "output_units"):
        if name in settings and settings[name] % channels:
            raise ValueError(f"{where}: expected {name} divisible by the data's {channels} "
                             f"channels (one group of features per colour), got "
                             f"{settings[name]}")
