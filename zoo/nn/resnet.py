"""A small convolutional residual network, the coupling network of image flows."""

import keras

from zoo.precision import network


def residual_relu(h):
    """ReLU of a residual stream ``h`` (a sum ``h + block(h)`` that the next block
    also adds to), written as ``maximum(h, 0)``: the same values as ``relu(h)``.

    As ``relu``, TF's grappler remapper fuses the block's last convolution, its
    bias, the residual add and this ReLU into one ``_FusedConv2D`` although the sum
    has another consumer (the next skip connection), then fails with "remapper
    failed: INVALID_ARGUMENT: Mutation::Apply error: fanout ... exist for missing
    node ... add" (TF 2.21, CPU) and gives up every fusion of that graph, a
    TF Serving server's included. ``maximum`` is not in its patterns.
    """
    return keras.ops.maximum(h, 0.0)


@keras.saving.register_keras_serializable(package="zoo")
@network
class ConvResNet(keras.layers.Layer):
    """3x3 conv in, residual blocks (conv-ReLU-conv + skip), 3x3 conv out at zero.

    As the s/t network of RealNVP's image couplings (Dinh et al. 2017,
    https://arxiv.org/abs/1605.08803), without batch norm so that the density of
    one example does not depend on its batch.

    Args:
        filters: channels of the hidden feature maps.
        num_blocks: residual blocks.
        output_channels: channels of the output.
        zero_init: start the output convolution at zero.
    """

    def __init__(self, filters, num_blocks, output_channels, zero_init=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_blocks = num_blocks
        self.output_channels = output_channels
        self.zero_init = zero_init
        conv = lambda n, name, **kw: keras.layers.Conv2D(n, 3, padding="same", name=name, **kw)
        self.conv_in = conv(filters, "conv_in")
        self.blocks = [
            (conv(filters, f"block_{i}_a"), conv(filters, f"block_{i}_b"))
            for i in range(num_blocks)
        ]
        init = "zeros" if zero_init else "glorot_uniform"
        self.conv_out = conv(output_channels, "conv_out", kernel_initializer=init)

    def build(self, input_shape):
        hidden = tuple(input_shape[:-1]) + (self.filters,)
        self.conv_in.build(input_shape)
        for a, b in self.blocks:
            a.build(hidden)
            b.build(hidden)
        self.conv_out.build(hidden)

    def call(self, x):
        h = self.conv_in(x)
        for a, b in self.blocks:
            h = h + b(keras.ops.relu(a(residual_relu(h))))
        return self.conv_out(residual_relu(h))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "output_channels": self.output_channels,
            "zero_init": self.zero_init,
        }
