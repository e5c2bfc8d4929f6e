"""PixelCNN++'s shifted convolutions (Salimans et al. 2017, and its code's
``down_shifted_conv2d`` and ``down_right_shifted_conv2d``, with their transposed
forms): causal by padding instead of by a mask."""

import keras
import tensorflow as tf

SHIFTS = ("down", "down_right")


@keras.saving.register_keras_serializable(package="zoo")
class ShiftedConv2D(keras.layers.Layer):
    """A convolution padded so that output (i, j) sees only input rows <= i and,
    of `shift` ``"down"``, the columns centred on j, or of ``"down_right"`` the
    columns <= j. With ``strides=2`` it halves the grid: output (i, j) then sees
    input rows <= 2i (and columns <= 2j for ``"down_right"``). Transposed
    (``transpose=True``, strides 2) it doubles it: input (i, j) reaches outputs
    of rows 2i, 2i + 1 (and columns 2j, 2j + 1 for ``"down_right"``, a 2x2 kernel).

    Args:
        filters: output channels.
        kernel_size: (kh, kw); kw odd for ``"down"``.
        shift: ``"down"`` or ``"down_right"``.
        strides: 1 or 2.
        transpose: a transposed convolution (upsampling; strides 2).
    """

    def __init__(self, filters, kernel_size, shift="down", strides=1, transpose=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        if shift not in SHIFTS:
            raise ValueError(f"ShiftedConv2D: expected shift in {SHIFTS}, got {shift!r}")
        if shift == "down" and self.kernel_size[1] % 2 == 0:
            raise ValueError(f"ShiftedConv2D: a down-shifted kernel needs an odd width, got "
                             f"{kernel_size}")
        self.shift = shift
        self.strides = int(strides)
        self.transpose = bool(transpose)
        layer = keras.layers.Conv2DTranspose if self.transpose else keras.layers.Conv2D
        self.conv = layer(self.filters, self.kernel_size, strides=self.strides, padding="valid",
                          name="conv")

    def padding(self):
        """The rows on top and the columns left and right padded before the convolution."""
        kh, kw = self.kernel_size
        if self.shift == "down":
            return kh - 1, (kw - 1) // 2, (kw - 1) // 2
        return kh - 1, kw - 1, 0

    def build(self, input_shape):
        if self.transpose:
            self.conv.build(input_shape)
            return
        b, h, w, c = input_shape
        top, left, right = self.padding()
        self.conv.build((b, None if h is None else h + top,
                         None if w is None else w + left + right, c))

    def call(self, x):
        kh, kw = self.kernel_size
        side = (kw - 1) // 2 if self.shift == "down" else 0
        if not self.transpose:
            top, left, right = self.padding()
            return self.conv(tf.pad(x, [[0, 0], [top, 0], [left, right], [0, 0]]))
        y = self.conv(x)
        height, width = tf.shape(x)[1] * self.strides, tf.shape(x)[2] * self.strides
        return y[:, :height, side:side + width]

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        scale = (lambda d: None if d is None else (d * self.strides if self.transpose
                                                   else -(-d // self.strides)))
        return (b, scale(h), scale(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "shift": self.shift, "strides": self.strides,
                "transpose": self.transpose}


def down_shift(x):
    """Rows moved down by one (a zero row on top): row i holds row i - 1."""
    return tf.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])


def right_shift(x):
    """Columns moved right by one (a zero column on the left)."""
    return tf.pad(x[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])
