"""Causal self-attention with a key/value cache, and the pre-norm decoder of a
GPT-style Transformer built on it."""

import math

import keras
import tensorflow as tf

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head self-attention in which position t attends to positions <= t
    (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, with the decoder's
    mask), over a whole sequence (:meth:`call`) or one position at a time with a
    cache of the keys and values of the positions before it (:meth:`step`).

    Args:
        num_heads: attention heads.
        key_dim: the size of each head's queries, keys and values.
    """

    def __init__(self, num_heads, key_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        if self.num_heads < 1 or self.key_dim < 1:
            raise ValueError(f"CausalSelfAttention: expected num_heads >= 1 and key_dim >= 1, "
                             f"got {num_heads} and {key_dim}")
        self.qkv = keras.layers.Dense(3 * self.num_heads * self.key_dim, name="qkv")
        self.out = None

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.qkv.build(input_shape)
        self.out = keras.layers.Dense(width, name="out")
        self.out.build(tuple(input_shape[:-1]) + (self.num_heads * self.key_dim,))

    def _heads(self, x):
        """(..., width) -> queries, keys, values, each (..., heads, key_dim)."""
        qkv = self.qkv(x)
        shape = tf.concat([tf.shape(qkv)[:-1], [3, self.num_heads, self.key_dim]], 0)
        q, k, v = tf.unstack(tf.reshape(qkv, shape), axis=-3)
        return q, k, v

    def call(self, x):
        """`x` (B, T, width) -> (B, T, width); position t sees positions <= t."""
        q, k, v = self._heads(x)
        scores = tf.einsum("bshd,bthd->bhst", q, k) / math.sqrt(self.key_dim)
        length = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones(tf.stack([length, length]), tf.bool), -1, 0)
        scores = tf.where(causal, scores, tf.cast(-1e9 if scores.dtype == tf.float32 else -3e4,
                                                  scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1)
        y = tf.einsum("bhst,bthd->bshd", weights, v)
        return self.out(tf.reshape(y, tf.concat([tf.shape(y)[:2],
                                                 [self.num_heads * self.key_dim]], 0)))

    def empty_cache(self, batch, length, dtype=tf.float32):
        """The keys and values of no position yet: two zero tensors
        (B, length, heads, key_dim)."""
        zeros = tf.zeros(tf.stack([batch, length, self.num_heads, self.key_dim]), dtype)
        return zeros, zeros

    def step(self, x, i, cache):
        """Position `i` (a scalar tensor) alone: `x` (B, width) its input, `cache`
        the keys and values of positions < i (:meth:`empty_cache`, then what the
        steps before returned). Returns its output (B, width), as :meth:`call`
        gives it at position i, and the cache with its key and value added."""
        q, k, v = self._heads(x)
        keys, values = cache
        length = tf.shape(keys)[1]
        here = tf.reshape(tf.equal(tf.range(length), i), [1, -1, 1, 1])
        keys = tf.where(here, tf.cast(k[:, None], keys.dtype), keys)
        values = tf.where(here, tf.cast(v[:, None], values.dtype), values)
        scores = tf.einsum("bhd,bthd->bht", q, tf.cast(keys, q.dtype)) / math.sqrt(self.key_dim)
        seen = tf.reshape(tf.range(length) <= i, [1, 1, -1])
        scores = tf.where(seen, scores, tf.cast(-1e9 if scores.dtype == tf.float32 else -3e4,
                                                scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1)
        y = tf.einsum("bht,bthd->bhd", weights, tf.cast(values, q.dtype))
        return self.out(tf.reshape(y, [-1, self.num_heads * self.key_dim])), (keys, values)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim}


@keras.saving.register_keras_serializable(package="zoo")
class DecoderBlock(keras.layers.Layer):
    """A pre-norm Transformer decoder block (GPT-2, Radford et al. 2019):
    ``x + attention(norm(x))``, then ``x + mlp(norm(x))`` with a GELU MLP of
    ``4 * width`` units.

    Args:
        num_heads: attention heads; each has ``width // num_heads`` dimensions.
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.attention = None

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.num_heads:
            raise ValueError(f"DecoderBlock: the width {width} is not a multiple of "
                             f"num_heads={self.num_heads}")
        self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_1")
        self.attention = CausalSelfAttention(self.num_heads, width // self.num_heads,
                                             name="attention")
        self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_2")
        self.hidden = keras.layers.Dense(4 * width, activation="gelu", name="hidden")
        self.project = keras.layers.Dense(width, name="project")
        for layer in (self.norm_1, self.attention, self.norm_2, self.hidden):
            layer.build(input_shape)
        self.project.build(tuple(input_shape[:-1]) + (4 * width,))

    def mlp(self, x):
        return x + self.project(self.hidden(self.norm_2(x)))

    def call(self, x):
        """(B, T, width) -> (B, T, width), causal."""
        return self.mlp(x + self.attention(self.norm_1(x)))

    def step(self, x, i, cache):
        """Position `i` alone (:meth:`CausalSelfAttention.step`)."""
        y, cache = self.attention.step(self.norm_1(x), i, cache)
        return self.mlp(x + y), cache

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="zoo")
@network
class TransformerDecoder(keras.layers.Layer):
    """A GPT-style decoder over sequences of symbols (Radford et al. 2018; Image
    GPT, Chen et al. 2020): token embeddings plus learned position embeddings,
    pre-norm :class:`DecoderBlock` s, a final layer norm and a linear head.

    The input at position t is the symbol before it (a start symbol, index
    `num_symbols`, at t = 0), so the output at t (the logits of symbol t)
    depends on symbols < t only.

    Args:
        num_symbols: the vocabulary (logits per position).
        length: the most positions (the context).
        width: the embedding width.
        num_layers: decoder blocks.
        num_heads: attention heads per block.
    """

    policy_methods = ("call", "step")

    def __init__(self, num_symbols, length, width, num_layers, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_symbols, self.length = int(num_symbols), int(length)
        self.width, self.num_layers, self.num_heads = int(width), int(num_layers), int(num_heads)
        self.blocks = [DecoderBlock(self.num_heads, name=f"block_{k}")
                       for k in range(self.num_layers)]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.head = keras.layers.Dense(self.num_symbols, name="head")

    def build(self, input_shape=None):
        # A one-hot product rather than a gather: dense gradients, like every other
        # weight's.
        self.tokens = self.add_weight(
            shape=(self.num_symbols + 1, self.width), name="tokens",
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.positions = self.add_weight(
            shape=(self.length, self.width), name="positions",
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        for block in self.blocks:
            block.build((None, None, self.width))
        self.norm.build((None, None, self.width))
        self.head.build((None, None, self.width))

    def call(self, symbols):
        """`symbols` (B, T) integers, T <= length -> logits (B, T, num_symbols)."""
        symbols = tf.cast(symbols, tf.int32)
        start = tf.fill(tf.stack([tf.shape(symbols)[0], 1]), self.num_symbols)
        inputs = tf.concat([start, symbols[:, :-1]], axis=1)
        h = self.embed(inputs) + tf.cast(self.positions[:tf.shape(symbols)[1]],
                                         self.compute_dtype)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def embed(self, symbols):
        """The token embeddings of integer `symbols` (start: `num_symbols`)."""
        dtype = self.compute_dtype
        return tf.tensordot(tf.one_hot(symbols, self.num_symbols + 1, dtype=dtype),
                            tf.cast(self.tokens, dtype), 1)

    def empty_cache(self, batch):
        """Every block's keys and values of no position yet."""
        dtype = self.compute_dtype
        return tuple(block.attention.empty_cache(batch, self.length, dtype)
                     for block in self.blocks)

    def step(self, previous, i, cache):
        """The logits (B, num_symbols) of position `i` from the symbol before it,
        `previous` (B,) (ignored at i = 0), and the cache of positions < i; returns
        them and the cache with position i added. Equal to ``call(...)[:, i]``."""
        previous = tf.where(i > 0, tf.cast(previous, tf.int32), self.num_symbols)
        h = self.embed(previous) + tf.cast(tf.gather(self.positions, i), self.compute_dtype)
        cache = list(cache)
        for k, block in enumerate(self.blocks):
            h, cache[k] = block.step(h, i, cache[k])
        return self.head(self.norm(h)), tuple(cache)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.num_symbols,)

    def get_config(self):
        return {**super().get_config(), "num_symbols": self.num_symbols, "length": self.length,
                "width": self.width, "num_layers": self.num_layers,
                "num_heads": self.num_heads}
