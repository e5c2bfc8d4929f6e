"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017): a mixture of discretized
logistics, downsampling and upsampling with short-cut connections, dropout."""

import keras
import tensorflow as tf

from zoo.autoregressive.base import AutoregressiveModel
from zoo.autoregressive.pixelcnn import check_image_network
from zoo.distributions import DiscretizedLogisticMixture
from zoo.nn.shifted_conv import ShiftedConv2D, down_shift, right_shift
from zoo.precision import network
from zoo.registry import register


def concat_elu(x):
    """elu([x, -x]) on the channels (the paper's code's nonlinearity)."""
    return keras.ops.elu(keras.ops.concatenate([x, -x], axis=-1))


@keras.saving.register_keras_serializable(package="zoo")
class GatedResnet(keras.layers.Layer):
    """x + a * sigmoid(b), [a, b] = conv(dropout(f(conv(f(x)) + nin(f(aux))))),
    f = concat_elu: the paper's gated residual block, its convolutions shifted
    (``"down"`` for the stream above, ``"down_right"`` for the stream above and
    to the left), the auxiliary input (the other stream, or the short-cut) through
    a 1x1 convolution.

    Args:
        filters: channels of the stream.
        shift: of the convolutions (kernel 2x3 down, 2x2 down-right).
        auxiliary: the channels of the auxiliary input (0: none).
        dropout: the rate before the second convolution.
    """

    def __init__(self, filters, shift, auxiliary=0, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.shift = shift
        self.auxiliary = int(auxiliary)
        self.dropout = float(dropout)
        kernel = (2, 3) if shift == "down" else (2, 2)
        self.first = ShiftedConv2D(self.filters, kernel, shift, name="first")
        self.second = ShiftedConv2D(2 * self.filters, kernel, shift, name="second")
        self.nin = keras.layers.Conv2D(self.filters, 1, name="nin") if self.auxiliary else None

    def build(self, input_shape):
        shape = tuple(input_shape)
        doubled = shape[:-1] + (2 * self.filters,)
        self.first.build(doubled)
        self.second.build(doubled)
        if self.nin is not None:
            self.nin.build(shape[:-1] + (2 * self.auxiliary,))

    def call(self, x, aux=None, seed=None):
        h = self.first(concat_elu(x))
        if self.nin is not None:
            h = h + self.nin(concat_elu(aux))
        h = concat_elu(h)
        if seed is not None and self.dropout > 0:
            h = tf.nn.experimental.stateless_dropout(h, self.dropout, seed)
        a, b = keras.ops.split(self.second(h), 2, axis=-1)
        return x + a * keras.ops.sigmoid(b)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "shift": self.shift,
                "auxiliary": self.auxiliary, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="zoo")
@network
class PixelCNNPPNetwork(keras.layers.Layer):
    """The paper's two streams (u: the rows above; ul: the rows above and the
    pixels to the left) through `num_scales` resolutions, each of `num_resnet`
    gated residual blocks: down to the coarsest by stride-2 shifted convolutions,
    and back up by transposed ones, each block of the way up taking the output of
    its counterpart on the way down (the short-cuts); a 1x1 output layer on ul.

    Args:
        filters: channels of both streams.
        num_resnet: gated residual blocks per resolution.
        num_scales: resolutions (the grid halves between them).
        output_channels: P * C.
        dropout: the blocks' dropout rate.
    """

    def __init__(self, filters, num_resnet, num_scales, output_channels, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_resnet = int(num_resnet)
        self.num_scales = int(num_scales)
        self.output_channels = int(output_channels)
        self.dropout = float(dropout)
        f, r = self.filters, self.num_resnet
        self.u_in = ShiftedConv2D(f, (2, 3), "down", name="u_in")
        self.ul_in_above = ShiftedConv2D(f, (1, 3), "down", name="ul_in_above")
        self.ul_in_left = ShiftedConv2D(f, (2, 1), "down_right", name="ul_in_left")

        def block(shift, aux, name):
            return GatedResnet(f, shift, aux, self.dropout, name=name)

        self.down_blocks, self.downsample, self.up_blocks, self.upsample = [], [], [], []
        for s in range(self.num_scales):
            self.down_blocks.append([(block("down", 0, f"down_{s}_{i}_u"),
                                      block("down_right", f, f"down_{s}_{i}_ul"))
                                     for i in range(r)])
            if s < self.num_scales - 1:
                self.downsample.append((
                    ShiftedConv2D(f, (2, 3), "down", strides=2, name=f"downsample_{s}_u"),
                    ShiftedConv2D(f, (2, 2), "down_right", strides=2,
                                  name=f"downsample_{s}_ul")))
        for s in reversed(range(self.num_scales)):
            count = r if s == self.num_scales - 1 else r + 1
            self.up_blocks.append([(block("down", f, f"up_{s}_{i}_u"),
                                    block("down_right", 2 * f, f"up_{s}_{i}_ul"))
                                   for i in range(count)])
            if s > 0:
                self.upsample.append((
                    ShiftedConv2D(f, (2, 3), "down", strides=2, transpose=True,
                                  name=f"upsample_{s}_u"),
                    ShiftedConv2D(f, (2, 2), "down_right", strides=2, transpose=True,
                                  name=f"upsample_{s}_ul")))
        self.out = keras.layers.Conv2D(self.output_channels, 1, name="out")

    def build(self, input_shape):
        b, h, w, c = input_shape
        f = self.filters
        for layer in (self.u_in, self.ul_in_above, self.ul_in_left):
            layer.build((b, h, w, c + 1))

        grids = [(h, w)]
        for s in range(self.num_scales - 1):
            grids.append((-(-grids[-1][0] // 2), -(-grids[-1][1] // 2)))
        for s in range(self.num_scales):
            shape = (b,) + grids[s] + (f,)
            for u_block, ul_block in self.down_blocks[s]:
                u_block.build(shape)
                ul_block.build(shape)
            if s < self.num_scales - 1:
                for layer in self.downsample[s]:
                    layer.build(shape)
        for k, s in enumerate(reversed(range(self.num_scales))):
            shape = (b,) + grids[s] + (f,)
            for u_block, ul_block in self.up_blocks[k]:
                u_block.build(shape)
                ul_block.build(shape)
            if s > 0:
                for layer in self.upsample[k]:
                    layer.build(shape)
        self.out.build((b, h, w, f))

    def call(self, x, seed=None):
        ones = keras.ops.ones_like(x[..., :1])
        x = keras.ops.concatenate([x, ones], axis=-1)  # the paper's border channel
        u = down_shift(self.u_in(x))
        ul = down_shift(self.ul_in_above(x)) + right_shift(self.ul_in_left(x))
        count = [0]

        def block_seed():
            count[0] += 1
            return None if seed is None else tf.random.experimental.stateless_fold_in(
                seed, count[0])

        us, uls = [u], [ul]
        for s in range(self.num_scales):
            for u_block, ul_block in self.down_blocks[s]:
                u = u_block(u, seed=block_seed())
                ul = ul_block(ul, u, seed=block_seed())
                us.append(u)
                uls.append(ul)
            if s < self.num_scales - 1:
                u, ul = self.downsample[s][0](u), self.downsample[s][1](ul)
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()
        for k in range(self.num_scales):
            for u_block, ul_block in self.up_blocks[k]:
                u = u_block(u, us.pop(), seed=block_seed())
                ul = ul_block(ul, keras.ops.concatenate([u, uls.pop()], axis=-1),
                              seed=block_seed())
            if k < self.num_scales - 1:
                u, ul = self.upsample[k][0](u), self.upsample[k][1](ul)
        return self.out(keras.ops.elu(ul))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_resnet": self.num_resnet,
                "num_scales": self.num_scales, "output_channels": self.output_channels,
                "dropout": self.dropout}


@register(
    "pixelcnn_pp",
    presets={
        "digits": dict(filters=32, num_resnet=2, num_scales=2, num_components=5, dropout=0.2),
        "fashion_mnist": dict(filters=64, num_resnet=3, num_scales=3, num_components=5,
                              dropout=0.5),
    },
    training={
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class PixelCNNPP(AutoregressiveModel):
    """PixelCNN++: a mixture of discretized logistics per value, two shifted-
    convolution streams through several resolutions (downsampling, then
    upsampling with short-cut connections), gated residual blocks, dropout.

    Salimans, Karpathy, Chen & Kingma, "PixelCNN++: Improving the PixelCNN with
    Discretized Logistic Mixture Likelihood and Other Modifications", ICLR 2017,
    https://arxiv.org/abs/1701.05517. Not here: weight normalization, and the
    linear dependence of a pixel's colour channels within its mixture (each
    channel of a pixel is drawn given the pixels before it only; the zoo's
    datasets are greyscale).

    Args:
        data_shape: ``(H, W, C)`` images, H and W divisible by ``2**(num_scales - 1)``.
        num_levels: the levels L of the raw values.
        filters: channels of both streams.
        num_resnet: gated residual blocks per resolution (5 in the paper).
        num_scales: resolutions (3 in the paper).
        num_components: logistics in each mixture (10 in the paper).
        dropout: the blocks' dropout rate while training (0.5 in the paper).
    """

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, filters=32, num_resnet=2,
                 num_scales=2, num_components=5, dropout=0.2, **kwargs):
        kwargs.setdefault("name", "pixelcnn_pp")
        self.num_components = int(num_components)
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.filters = int(filters)
        self.num_resnet = int(num_resnet)
        self.num_scales = int(num_scales)
        self.dropout = float(dropout)
        check_image_network(self, filters=self.filters, num_resnet=self.num_resnet,
                            num_scales=self.num_scales)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PixelCNNPP: expected 0 <= dropout < 1, got {dropout}")
        factor = 2 ** (self.num_scales - 1)
        if any(d % factor for d in self.data_shape[:2]):
            raise ValueError(f"PixelCNNPP: expected height and width divisible by "
                             f"2**(num_scales - 1) = {factor}, got data_shape "
                             f"{self.data_shape}")
        self.network = PixelCNNPPNetwork(
            self.filters, self.num_resnet, self.num_scales,
            self.observation_model.params_per_channel * self.channels, self.dropout,
            name="network")
        self.build_model()

    @property
    def draws_training_noise(self):
        """Dropout draws its masks from the stream while training."""
        return self.dropout > 0

    def make_observation(self):
        return DiscretizedLogisticMixture(self.num_levels, self.num_components)

    def params(self, x, labels=None, training=False):
        seed = self.rng.next_seed() if training and self.dropout > 0 else None
        return self.network(self.scaled(x), seed=seed)
