"""A residual critic (StyleGAN2's and BigGAN's discriminators, sized down)."""

import math

import keras
from keras import ops

from zoo.gan.critic import Critic
from zoo.nn.minibatch_std import MinibatchStd
from zoo.nn.self_attention import SelfAttention
from zoo.nn.spectral_norm import maybe_spectral


@keras.saving.register_keras_serializable(package="zoo")
class ResidualCritic(Critic):
    """Maps images to scores through residual downsampling blocks.

    The residual discriminator of StyleGAN2 (Karras et al. 2020,
    https://arxiv.org/abs/1912.04958, Fig. 7c) and of BigGAN (Brock et al. 2019,
    https://arxiv.org/abs/1809.11096, Table 6): a 3x3 convolution, then
    ``num_downsamplings`` blocks, each ``act(conv3x3) -> act(conv3x3, stride 2)``
    beside a 1x1 stride-2 shortcut, summed and scaled by ``1 / sqrt(2)``, with
    ``filters * 2**i`` channels; optionally self-attention
    (:class:`~zoo.nn.self_attention.SelfAttention`) after block
    ``attention_block``; optionally StyleGAN's epilogue, the minibatch standard
    deviation (:class:`~zoo.nn.minibatch_std.MinibatchStd`) appended as a feature
    map and a 3x3 convolution back to the last block's channels; then the head of
    :class:`~zoo.gan.critic.Critic`. No batch norm; the minibatch standard
    deviation alone couples examples (within its groups, as in StyleGAN).

    Args:
        filters: channels of the first block (doubled at each one after).
        num_downsamplings: residual blocks.
        negative_slope: LeakyReLU's slope (0.2, StyleGAN); 0 is ReLU (BigGAN).
        attention_block: the block self-attention follows; -1: none.
        mbstd_group_size: the minibatch standard deviation's group size at most
            (StyleGAN: 4); 0: no minibatch standard deviation (nor its convolution).
        **kwargs: the head's, :class:`~zoo.gan.critic.Critic`.
    """

    def __init__(self, filters=32, num_downsamplings=2, negative_slope=0.2, attention_block=-1,
                 mbstd_group_size=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_downsamplings = int(num_downsamplings)
        self.negative_slope = float(negative_slope)
        self.attention_block = int(attention_block)
        self.mbstd_group_size = int(mbstd_group_size)
        if self.num_downsamplings < 1 or not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(f"ResidualCritic: expected num_downsamplings >= 1 and 0 <= "
                             f"negative_slope < 1, got {num_downsamplings}, {negative_slope}")
        if not -1 <= self.attention_block < self.num_downsamplings:
            raise ValueError(f"ResidualCritic: expected attention_block in [-1, "
                             f"{self.num_downsamplings}), got {attention_block}")
        if self.mbstd_group_size < 0:
            raise ValueError(f"ResidualCritic: expected mbstd_group_size >= 0 (0: none), got "
                             f"{mbstd_group_size}")

        def conv(units, size, strides, name):
            return maybe_spectral(keras.layers.Conv2D(units, size, strides=strides,
                                                      padding="same", name=name),
                                  self.spectral_norm)

        self.stem = conv(self.filters, 3, 1, "stem")
        self.blocks = []
        for i in range(self.num_downsamplings):
            units = self.filters * 2 ** i
            self.blocks.append((conv(units, 3, 1, f"block_{i}_conv"),
                                conv(units, 3, 2, f"block_{i}_down"),
                                conv(units, 1, 2, f"block_{i}_skip")))
        self.attention = (SelfAttention(self.spectral_norm, name="attention")
                          if self.attention_block >= 0 else None)
        self.mbstd = self.epilogue = None
        if self.mbstd_group_size:
            self.mbstd = MinibatchStd(self.mbstd_group_size, name="mbstd")
            self.epilogue = conv(self.filters * 2 ** (self.num_downsamplings - 1), 3, 1,
                                 "epilogue_conv")
        self.flatten = keras.layers.Flatten(name="flatten")

    def act(self, h):
        return ops.maximum(h, self.negative_slope * h)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        for i, (conv, down, skip) in enumerate(self.blocks):
            conv.build(shape)
            skip.build(shape)
            inner = conv.compute_output_shape(shape)
            down.build(inner)
            shape = down.compute_output_shape(inner)
            if i == self.attention_block:
                self.attention.build(shape)
        if self.mbstd is not None:
            self.mbstd.build(shape)
            shape = self.mbstd.compute_output_shape(shape)
            self.epilogue.build(shape)
            shape = self.epilogue.compute_output_shape(shape)
        self.build_head(self.flatten.compute_output_shape(shape))

    def features(self, x, training=None):
        h = self.act(self.stem(x, training=training))
        for i, (conv, down, skip) in enumerate(self.blocks):
            inner = self.act(down(self.act(conv(h, training=training)), training=training))
            h = (inner + skip(h, training=training)) * (1.0 / math.sqrt(2.0))
            if i == self.attention_block:
                h = self.attention(h, training=training)
        if self.mbstd is not None:
            h = self.act(self.epilogue(self.mbstd(h), training=training))
        return self.flatten(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.outputs)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "num_downsamplings": self.num_downsamplings,
                "negative_slope": self.negative_slope, "attention_block": self.attention_block,
                "mbstd_group_size": self.mbstd_group_size}
