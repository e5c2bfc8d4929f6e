"""StyleGAN2's modulated convolution: a convolution whose weights each example's
style scales, then demodulates."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class ModulatedConv2D(keras.layers.Layer):
    """A convolution modulated per example by a style vector, optionally demodulated.

    Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, "Analyzing and Improving
    the Image Quality of StyleGAN", CVPR 2020, https://arxiv.org/abs/1912.04958,
    Sec. 2.2, Eq. 1-3: the style ``s = A(w)`` (a learned affine map of `w`, its
    bias initialised to 1) scales the kernel's input channels,
    ``w'_ijk = s_i w_ijk``, and demodulation divides each output channel by
    ``sqrt(sum_ik w'_ijk^2 + eps)``, so that inputs of unit variance give outputs
    of unit variance (for i.i.d. inputs). Computed as the paper's equivalent
    "non-fused" form: the input's channels scaled by ``s``, one convolution with
    the shared kernel, the outputs scaled by the demodulation coefficients. The
    kernel is drawn from N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at run time
    (the equalised learning rate of Karras et al. 2018). No bias and no
    activation: the synthesis block adds noise, a bias and its activation.

    ``call(x, w)``: `x` of shape ``(batch, H, W, C_in)``, `w` ``(batch, w_dim)``;
    with ``upsample`` the input is first upsampled 2x (bilinear).

    Args:
        filters: output channels.
        kernel_size: an odd size (``"same"`` padding).
        demodulate: divide by the modulated kernel's norm per output channel
            (False for the to-image layer, as in the paper).
        upsample: upsample the input 2x first.
        eps: added under the square root.
    """

    def __init__(self, filters, kernel_size=3, demodulate=True, upsample=False, eps=1e-8,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.demodulate = bool(demodulate)
        self.upsample = bool(upsample)
        self.eps = float(eps)
        if self.filters < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"ModulatedConv2D: expected filters >= 1 and an odd kernel_size, "
                             f"got {filters} and {kernel_size}")
        self.affine = None

    def build(self, x_shape, w_shape):
        channels = int(x_shape[-1])
        self.kernel = self.add_weight(
            shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0), name="kernel")
        self.scale = 1.0 / math.sqrt(channels * self.kernel_size ** 2)
        self.affine = keras.layers.Dense(channels, bias_initializer="ones", name="affine")
        self.affine.build(tuple(w_shape))
        self.built = True

    def styles(self, w):
        """The per-example style ``s = A(w)``, shape ``(batch, C_in)``."""
        return self.affine(w)

    def call(self, x, w):
        s = self.styles(w)
        if self.upsample:
            x = ops.image.resize(x, (2 * ops.shape(x)[1], 2 * ops.shape(x)[2]),
                                 interpolation="bilinear")
        kernel = self.kernel * self.scale
        # Per-example scales as einsums rather than broadcasts: their gradients of
        # gradients (path-length regularization) compile under XLA.
        y = ops.conv(ops.einsum("bhwc,bc->bhwc", x, s), kernel, padding="same")
        if self.demodulate:
            # sum_ik (s_i w_ijk)^2 = sum_i s_i^2 sum_k w_ijk^2
            norms = ops.matmul(ops.square(s), ops.sum(ops.square(kernel), axis=(0, 1)))
            y = ops.einsum("bhwc,bc->bhwc", y, ops.rsqrt(norms + self.eps))
        return y

    def compute_output_shape(self, x_shape, w_shape=None):
        factor = 2 if self.upsample else 1
        return (x_shape[0], None if x_shape[1] is None else factor * x_shape[1],
                None if x_shape[2] is None else factor * x_shape[2], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "demodulate": self.demodulate,
                "upsample": self.upsample, "eps": self.eps}
