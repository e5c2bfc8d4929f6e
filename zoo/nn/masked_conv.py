"""Masked convolutions: PixelCNN's (van den Oord et al. 2016a), type A and B, and the
vertical and horizontal stacks of Gated PixelCNN (van den Oord et al. 2016b)."""

import keras
import numpy as np

SHAPES = ("full", "vertical", "horizontal")


def conv_mask(kernel_size, in_channels, out_channels, mask_type, data_channels=1,
              shape="full", in_period=None, out_period=None):
    """The 0/1 mask ``(kh, kw, in_channels, out_channels)`` of a masked convolution.

    An output at a pixel may see, of `shape` ``"full"`` (PixelCNN), the rows above
    and the pixels to the left in its row; of ``"vertical"`` the rows above only
    (type A) or with its own row (type B: a vertical stack's features, which see
    only rows above already); of ``"horizontal"`` the pixels to its left in its
    row. At the centre (``"full"`` and ``"horizontal"``), channels are ordered in
    `data_channels` groups (an image's colours, van den Oord et al. 2016a, Sec.
    3.4): channel i of a tensor of period p belongs to group ``(i % p) * C // p``
    (so that a gated layer's two halves, or an output's blocks of C, share the
    groups), and output group g sees input groups < g (type A) or <= g (type B).
    """
    kh, kw = kernel_size
    ch, cw = kh // 2, kw // 2
    c = int(data_channels)
    in_period = in_period or in_channels
    out_period = out_period or out_channels
    mask = np.zeros((kh, kw, in_channels, out_channels), np.float32)
    if shape in ("full", "vertical"):
        mask[:ch] = 1.0
    if shape == "vertical":
        if mask_type == "B":
            mask[ch] = 1.0
        return mask
    mask[ch, :cw] = 1.0
    group_in = (np.arange(in_channels) % in_period) * c // in_period
    group_out = (np.arange(out_channels) % out_period) * c // out_period
    sees = (group_in[:, None] < group_out[None, :]) if mask_type == "A" else \
        (group_in[:, None] <= group_out[None, :])
    mask[ch, cw] = sees.astype(np.float32)
    return mask


@keras.saving.register_keras_serializable(package="zoo")
class MaskedConv2D(keras.layers.Layer):
    """A convolution (stride 1, "same" padding) whose kernel is multiplied by a
    causal mask (:func:`conv_mask`), so that an output depends only on the inputs
    before it in raster-then-channel order.

    Args:
        filters: output channels.
        kernel_size: an odd int or (kh, kw).
        mask_type: ``"A"`` (the first layer: not the pixel's own value) or
            ``"B"`` (later layers: its own features too).
        data_channels: C, the data's channels (colour groups).
        shape: ``"full"``, ``"vertical"`` or ``"horizontal"`` (:func:`conv_mask`).
        in_period, out_period: the channel period of the input and output groups
            (default: the whole input, the whole output).
        activation: a Keras activation, or None.
    """

    def __init__(self, filters, kernel_size, mask_type="B", data_channels=1, shape="full",
                 in_period=None, out_period=None, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.kernel_size = tuple(int(k) for k in size)
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"MaskedConv2D: expected odd kernel sizes, got {kernel_size}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"MaskedConv2D: expected mask_type 'A' or 'B', got {mask_type!r}")
        if shape not in SHAPES:
            raise ValueError(f"MaskedConv2D: expected shape in {SHAPES}, got {shape!r}")
        self.mask_type = mask_type
        self.data_channels = int(data_channels)
        self.shape = shape
        self.in_period = None if in_period is None else int(in_period)
        self.out_period = None if out_period is None else int(out_period)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.mask = conv_mask(self.kernel_size, in_channels, self.filters, self.mask_type,
                              self.data_channels, self.shape, self.in_period, self.out_period)
        self.kernel = self.add_weight(name="kernel",
                                      shape=self.kernel_size + (in_channels, self.filters),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        kernel = self.kernel * keras.ops.cast(self.mask, self.kernel.dtype)
        return self.activation(keras.ops.conv(x, kernel, padding="same") + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "mask_type": self.mask_type,
                "data_channels": self.data_channels, "shape": self.shape,
                "in_period": self.in_period, "out_period": self.out_period,
                "activation": keras.activations.serialize(self.activation)}
