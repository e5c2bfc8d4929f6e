"""A small U-Net over images, conditioned on an embedding (a diffusion model's
timestep, a score model's noise level, optionally a class)."""

import math

import keras
import tensorflow as tf

from zoo.nn import resize
from zoo.precision import network


def sinusoidal_embedding(t, dim, max_period=10_000.0):
    """The transformer's sinusoidal embedding of (possibly fractional) positions
    `t` (batch,) -> (batch, dim), as Ho et al. (2020) embed the timestep."""
    half = dim // 2
    frequencies = tf.exp(-math.log(max_period) * tf.range(half, dtype=tf.float32) / half)
    angles = tf.cast(t, tf.float32)[:, None] * frequencies[None]
    embedding = tf.concat([tf.cos(angles), tf.sin(angles)], axis=-1)
    if dim % 2:
        embedding = tf.pad(embedding, [[0, 0], [0, 1]])
    return embedding


def _groups(channels, groups):
    """The largest divisor of `channels` that is at most `groups`."""
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


@keras.saving.register_keras_serializable(package="zoo")
class ResidualBlock(keras.layers.Layer):
    """GroupNorm, swish, conv; plus the projected embedding; GroupNorm, swish,
    dropout, conv (started at zero); a 1x1 skip where the width changes."""

    def __init__(self, channels, groups=8, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.groups = groups
        self.dropout = dropout
        self.norm1 = None  # its groups depend on the input's width (build)
        self.conv1 = keras.layers.Conv2D(channels, 3, padding="same", name="conv1")
        self.embed = keras.layers.Dense(channels, name="embed")
        self.norm2 = keras.layers.GroupNormalization(_groups(channels, groups), name="norm2")
        self.drop = keras.layers.Dropout(dropout)
        self.conv2 = keras.layers.Conv2D(channels, 3, padding="same",
                                         kernel_initializer="zeros", name="conv2")
        self.skip = None

    def build(self, x_shape, embedding_shape):
        input_shape = x_shape
        channels_in = input_shape[-1]
        # GroupNorm over the input's channels: their count decides the groups.
        self.norm1 = keras.layers.GroupNormalization(_groups(channels_in, self.groups),
                                                     name="norm1")
        self.norm1.build(input_shape)
        self.conv1.build(input_shape)
        self.embed.build(embedding_shape)
        out_shape = tuple(input_shape[:-1]) + (self.channels,)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        if channels_in != self.channels:
            self.skip = keras.layers.Conv2D(self.channels, 1, name="skip")
            self.skip.build(input_shape)
        self.built = True

    def call(self, x, embedding, training=False):
        h = self.conv1(tf.nn.silu(self.norm1(x)))
        h = h + self.embed(tf.nn.silu(embedding))[:, None, None, :]
        h = self.conv2(self.drop(tf.nn.silu(self.norm2(h)), training=training))
        return (x if self.skip is None else self.skip(x)) + h

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "groups": self.groups,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="zoo")
class AttentionBlock(keras.layers.Layer):
    """Single-head self-attention over the pixels (Ho et al. 2020's at 16x16),
    residual, its output projection started at zero."""

    def __init__(self, channels, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.groups = groups
        self.norm = keras.layers.GroupNormalization(_groups(channels, groups), name="norm")
        self.qkv = keras.layers.Dense(3 * channels, name="qkv")
        self.proj = keras.layers.Dense(channels, kernel_initializer="zeros", name="proj")

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.qkv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (self.channels,))
        self.built = True

    def call(self, x):
        shape = tf.shape(x)
        q, k, v = tf.split(self.qkv(self.norm(x)), 3, axis=-1)
        flat = lambda a: tf.reshape(a, [shape[0], -1, self.channels])  # noqa: E731
        weights = tf.nn.softmax(tf.matmul(flat(q), flat(k), transpose_b=True)
                                / math.sqrt(self.channels), axis=-1)
        h = tf.reshape(tf.matmul(weights, flat(v)), shape)
        return x + self.proj(h)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "groups": self.groups}


@keras.saving.register_keras_serializable(package="zoo")
@network
class UNet(keras.layers.Layer):
    """The U-Net of DDPM (Ho et al. 2020, App. B; the PixelCNN++ backbone), small.

    Levels of ``channels * channel_mults[i]`` channels, each of
    ``num_res_blocks`` residual blocks (group norm, swish) that see the
    conditioning embedding, halved by a strided conv between levels, with
    self-attention after each block of the lowest level and in the middle; the
    decoder mirrors it with skip connections; group norm, swish and a 3x3 conv
    (started at zero) give ``output_channels``.

    The conditioning is ``embedding`` (batch, E), e.g. :func:`sinusoidal_embedding`
    of a timestep or of a noise level, which an MLP (two dense layers, swish)
    maps to ``4 * channels``, plus an optional ``class_embedding`` (batch,
    4 * channels) added to it.

    Sizes: ``channel_mults=(1, 2)`` for 8x8 (levels 8, 4), ``(1, 2, 2)`` for
    28x28 (28, 14, 7); each level's size must be even but the lowest's.

    Args:
        channels: width of the first level.
        channel_mults: width multiplier per level.
        num_res_blocks: residual blocks per level (the decoder has one more).
        output_channels: channels of the output.
        groups: group-norm groups (at most; the largest divisor of the width).
        dropout: dropout in the residual blocks.
    """

    def __init__(self, channels, channel_mults, num_res_blocks, output_channels, groups=8,
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.channel_mults = tuple(int(m) for m in channel_mults)
        self.num_res_blocks = int(num_res_blocks)
        self.output_channels = int(output_channels)
        self.groups = int(groups)
        self.dropout = float(dropout)
        if self.channels < 1 or not self.channel_mults or self.num_res_blocks < 1:
            raise ValueError(f"UNet: expected channels >= 1, channel_mults non-empty and "
                             f"num_res_blocks >= 1, got {channels}, {channel_mults}, "
                             f"{num_res_blocks}")
        width = 4 * self.channels
        self.embed1 = keras.layers.Dense(width, name="embed1")
        self.embed2 = keras.layers.Dense(width, name="embed2")
        self.conv_in = keras.layers.Conv2D(self.channels, 3, padding="same", name="conv_in")
        block = lambda c, name: ResidualBlock(c, self.groups, self.dropout, name=name)  # noqa
        lowest = len(self.channel_mults) - 1
        self.down, self.up = [], []
        for level, mult in enumerate(self.channel_mults):
            c = self.channels * mult
            for i in range(self.num_res_blocks):
                self.down.append(("block", block(c, f"down{level}_{i}")))
                if level == lowest:
                    self.down.append(("attention", AttentionBlock(c, self.groups,
                                                                  name=f"down{level}_attn{i}")))
            if level < lowest:
                self.down.append(("downsample", keras.layers.Conv2D(
                    c, 3, strides=2, padding="same", name=f"downsample{level}")))
        c = self.channels * self.channel_mults[-1]
        self.middle = [block(c, "mid1"), AttentionBlock(c, self.groups, name="mid_attn"),
                       block(c, "mid2")]
        for level, mult in reversed(list(enumerate(self.channel_mults))):
            c = self.channels * mult
            for i in range(self.num_res_blocks + 1):
                self.up.append(("block", block(c, f"up{level}_{i}")))
                if level == lowest:
                    self.up.append(("attention", AttentionBlock(c, self.groups,
                                                                name=f"up{level}_attn{i}")))
            if level > 0:
                self.up.append(("upsample", keras.layers.Conv2D(
                    c, 3, padding="same", name=f"upsample{level}")))
        self.norm_out = keras.layers.GroupNormalization(_groups(self.channels, self.groups),
                                                        name="norm_out")
        self.conv_out = keras.layers.Conv2D(self.output_channels, 3, padding="same",
                                            kernel_initializer="zeros", name="conv_out")

    def build(self, x_shape, embedding_shape, class_embedding_shape=None):
        # Every sub-layer builds on its first call: one call on a zero batch.
        x = tf.zeros((1,) + tuple(x_shape[1:]))
        embedding = tf.zeros((1, embedding_shape[-1]))
        classes = None if class_embedding_shape is None else \
            tf.zeros((1, class_embedding_shape[-1]))
        self.built = True
        self.call(x, embedding, classes)

    def call(self, x, embedding, class_embedding=None, training=False):
        """`x` (batch, H, W, C), `embedding` (batch, E) -> (batch, H, W, output_channels)."""
        emb = self.embed2(tf.nn.silu(self.embed1(embedding)))
        if class_embedding is not None:
            emb = emb + tf.cast(class_embedding, emb.dtype)
        h = self.conv_in(x)
        skips = [h]
        for kind, layer in self.down:
            if kind == "block":
                h = layer(h, emb, training=training)
            else:
                h = layer(h)
            if kind != "attention":
                skips.append(h)
        for layer in self.middle:
            h = layer(h, emb, training=training) if isinstance(layer, ResidualBlock) else layer(h)
        for kind, layer in self.up:
            if kind == "block":
                h = layer(tf.concat([h, skips.pop()], axis=-1), emb, training=training)
            elif kind == "attention":
                h = layer(h)
            else:
                size = tf.shape(skips[-1])[1:3]
                h = layer(resize.nearest(h, size))
        return self.conv_out(tf.nn.silu(self.norm_out(h)))

    def compute_output_shape(self, input_shape, *args):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "channel_mults": list(self.channel_mults),
                "num_res_blocks": self.num_res_blocks, "output_channels": self.output_channels,
                "groups": self.groups, "dropout": self.dropout}
