"""StyleGAN2's generator: a mapping network, a learned constant, modulated
convolutions with per-layer noise."""

import keras
import tensorflow as tf
from keras import ops

from zoo.nn.modulated_conv import ModulatedConv2D
from zoo.precision import network


def _lrelu(h):
    return ops.maximum(h, 0.2 * h) * 1.4142135  # with StyleGAN's gain sqrt(2)


@keras.saving.register_keras_serializable(package="zoo")
@network
class StyleGenerator(keras.layers.Layer):
    """Maps latents z to images through styles w.

    Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative
    Adversarial Networks", CVPR 2019, https://arxiv.org/abs/1812.04948, and
    StyleGAN2 (Karras et al., CVPR 2020, https://arxiv.org/abs/1912.04958):

    * the mapping network f: z (normalised to unit mean square) -> w, an MLP of
      `mapping_layers` LeakyReLU layers;
    * the synthesis network g: a learned constant ``(H / 2**n, W / 2**n, C)``;
      a modulated 3x3 convolution there, then per upsampling two (the first
      upsamples 2x), each followed by per-pixel noise times a learned
      per-layer strength (zero at first), a bias and LeakyReLU; a modulated,
      not demodulated, 1x1 convolution to the image's channels (linear output).
      Every layer l sees its own style ``ws[:, l]`` (``num_styles`` of them).
    * ``w_avg``, the running mean of w in training (decay 0.995), the centre of
      the truncation trick: ``w_avg + psi (w - w_avg)``.

    ``call(z, training, truncation=1, mix_z=None, crossover=None,
    noise_seed=None)``: style mixing feeds layers ``< crossover`` with the
    style of `z` and layers ``>= crossover`` with that of `mix_z`; the noise is
    drawn from the stateless `noise_seed` (shape [2]), zero when None.

    Args:
        image_shape: ``(H, W, C)``, H and W divisible by ``2**num_upsamplings``.
        style_dim: the dimension of z and w.
        filters: channels of every synthesis layer.
        mapping_layers: layers of the mapping network.
        num_upsamplings: 2x upsamplings after the constant.
        w_avg_decay: decay of the running mean of w.
    """

    policy_methods = ("call", "mapping", "synthesis")

    def __init__(self, image_shape, style_dim=32, filters=32, mapping_layers=4,
                 num_upsamplings=2, w_avg_decay=0.995, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.style_dim = int(style_dim)
        self.filters = int(filters)
        self.mapping_layers = int(mapping_layers)
        self.num_upsamplings = int(num_upsamplings)
        self.w_avg_decay = float(w_avg_decay)
        h, w, c = self.image_shape
        factor = 2 ** self.num_upsamplings
        if self.num_upsamplings < 1 or h % factor or w % factor:
            raise ValueError(f"StyleGenerator: {self.num_upsamplings} upsamplings need H and W "
                             f"divisible by {factor}, got image_shape {self.image_shape}")
        if self.mapping_layers < 1 or self.style_dim < 1 or self.filters < 1:
            raise ValueError("StyleGenerator: expected mapping_layers, style_dim and filters "
                             f">= 1, got {mapping_layers}, {style_dim}, {filters}")
        self.base_shape = (h // factor, w // factor, self.filters)
        self.mapping_dense = [keras.layers.Dense(self.style_dim, name=f"mapping_{i}")
                              for i in range(self.mapping_layers)]
        self.convs = [ModulatedConv2D(self.filters, 3, name="conv_0")]
        for i in range(self.num_upsamplings):
            self.convs += [ModulatedConv2D(self.filters, 3, upsample=True, name=f"up_{i}_0"),
                           ModulatedConv2D(self.filters, 3, name=f"up_{i}_1")]
        self.to_image = ModulatedConv2D(c, 1, demodulate=False, name="to_image")

    @property
    def num_styles(self):
        """Layers that take a style: every convolution and the to-image layer."""
        return len(self.convs) + 1

    def build(self, input_shape):
        batch = input_shape[0]
        shape = (batch, self.style_dim)
        for i, dense in enumerate(self.mapping_dense):
            dense.build(input_shape if i == 0 else shape)
        self.constant = self.add_weight(shape=self.base_shape, name="constant",
                                        initializer=keras.initializers.RandomNormal(stddev=1.0))
        x = (batch,) + self.base_shape
        self.noise_strengths, self.biases = [], []
        for i, conv in enumerate(self.convs):
            conv.build(x, shape)
            x = conv.compute_output_shape(x)
            self.noise_strengths.append(self.add_weight(shape=(), initializer="zeros",
                                                        name=f"noise_strength_{i}"))
            self.biases.append(self.add_weight(shape=(self.filters,), initializer="zeros",
                                               name=f"bias_{i}"))
        self.to_image.build(x, shape)
        self.image_bias = self.add_weight(shape=(self.image_shape[-1],), initializer="zeros",
                                          name="image_bias")
        self.w_avg = self.add_weight(shape=(self.style_dim,), initializer="zeros",
                                     trainable=False, aggregation="mean", name="w_avg")
        self.built = True

    def mapping(self, z):
        """f(z) = w, shape (batch, style_dim)."""
        h = z * ops.rsqrt(ops.mean(ops.square(z), axis=-1, keepdims=True) + 1e-8)
        for dense in self.mapping_dense:
            h = _lrelu(dense(h))
        return h

    def styles(self, z, truncation=1.0, mix_z=None, crossover=None):
        """The style of every layer, ``(batch, num_styles, style_dim)``: w of `z`
        for layers ``< crossover``, w of `mix_z` after, truncated towards
        ``w_avg`` by ``psi = truncation``."""
        every = ops.ones((self.num_styles,))  # (einsums, as in synthesis)
        ws = ops.einsum("bd,l->bld", self.mapping(z), every)
        if mix_z is not None:
            layers = ops.arange(self.num_styles)[None, :, None]
            ws = ops.where(layers < ops.cast(crossover, "int32"),
                           ws, ops.einsum("bd,l->bld", self.mapping(mix_z), every))
        return self.w_avg + ops.cast(truncation, ws.dtype) * (ws - self.w_avg)

    def synthesis(self, ws, noise_seed=None):
        """g(ws): images from per-layer styles ``(batch, num_styles, style_dim)``."""
        # the constant once per example, by an einsum (not a broadcast: XLA cannot
        # take the gradient of its gradient at a batch size known at run time)
        h = ops.einsum("b,hwc->bhwc", ops.ones_like(ws[:, 0, 0]), self.constant)
        for i, conv in enumerate(self.convs):
            h = conv(h, ws[:, i])
            if noise_seed is not None:
                shape = tf.concat([tf.shape(h)[:3], [1]], 0)
                noise = tf.random.stateless_normal(
                    shape, seed=tf.random.experimental.stateless_fold_in(noise_seed, i),
                    dtype=h.dtype)
                h = h + self.noise_strengths[i] * noise
            h = _lrelu(tf.nn.bias_add(h, self.biases[i]))
        return tf.nn.bias_add(self.to_image(h, ws[:, -1]), self.image_bias)

    def call(self, z, training=False, truncation=1.0, mix_z=None, crossover=None,
             noise_seed=None):
        if training:
            w = ops.stop_gradient(ops.mean(self.mapping(z), axis=0))
            self.w_avg.assign(self.w_avg_decay * self.w_avg + (1.0 - self.w_avg_decay) * w)
        return self.synthesis(self.styles(z, truncation, mix_z, crossover), noise_seed)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.image_shape

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "style_dim": self.style_dim, "filters": self.filters,
                "mapping_layers": self.mapping_layers, "num_upsamplings": self.num_upsamplings,
                "w_avg_decay": self.w_avg_decay}
