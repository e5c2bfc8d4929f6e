"""WaveNet's network: dilated causal convolutions in gated residual blocks with
skip connections, over sequences of symbols."""

import keras
import tensorflow as tf

from zoo.precision import network


def causal_conv_step(conv, x, i, queue):
    """Position `i` (a scalar tensor) alone of the causal ``Conv1D`` `conv` (kernel
    k, dilation d), as its ``call`` gives it there (the queues of Fast WaveNet,
    Paine et al. 2016): `x` (B, C) the input at i, `queue` (B, (k - 1) * d, C) a
    ring buffer of the inputs at positions i - (k - 1) * d .. i - 1, the one at p
    in slot ``p mod (k - 1) * d`` (zeros before the first: the causal padding).
    Returns the output (B, filters) and the queue with the input at i in place of
    the one at i - (k - 1) * d, which no later position reads."""
    size, dilation = conv.kernel_size[0], conv.dilation_rate[0]
    length = (size - 1) * dilation
    slots = tf.math.floormod(i - dilation * tf.range(size - 1, 0, -1), length)
    window = tf.concat([tf.cast(tf.gather(queue, slots, axis=1), x.dtype), x[:, None]], 1)
    kernel = tf.cast(conv.kernel, x.dtype)
    y = tf.matmul(tf.reshape(window, [-1, size * kernel.shape[1]]),
                  tf.reshape(kernel, [size * kernel.shape[1], kernel.shape[2]]))
    y = y + tf.cast(conv.bias, x.dtype) if conv.use_bias else y
    here = tf.reshape(tf.equal(tf.range(length), tf.math.floormod(i, length)), [1, -1, 1])
    return y, tf.where(here, tf.cast(x[:, None], queue.dtype), queue)


def pointwise(conv, x):
    """The 1x1 ``Conv1D`` `conv` on one position's features `x` (B, C)."""
    y = tf.matmul(x, tf.cast(conv.kernel[0], x.dtype))
    return y + tf.cast(conv.bias, x.dtype) if conv.use_bias else y


@keras.saving.register_keras_serializable(package="zoo")
class GatedResidualBlock(keras.layers.Layer):
    """WaveNet's residual block (van den Oord et al. 2016c, Sec. 2.3-2.4): a
    dilated causal convolution of kernel 2, the gated activation
    ``tanh(filter) * sigmoid(gate)``, then 1x1 convolutions to the residual
    (added to the input) and to the skip connection.

    Args:
        dilation: the dilation of the causal convolution.
        skip_channels: the width of the skip output.
        residual: whether it has the residual output (the last block of a
            network, whose residual output nothing reads, has none).
    """

    def __init__(self, dilation, skip_channels, residual=True, **kwargs):
        super().__init__(**kwargs)
        self.dilation, self.skip_channels = int(dilation), int(skip_channels)
        self.has_residual = bool(residual)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.dilated = keras.layers.Conv1D(2 * channels, 2, padding="causal",
                                           dilation_rate=self.dilation, name="dilated")
        self.residual = keras.layers.Conv1D(channels, 1, name="residual") \
            if self.has_residual else None
        self.skip = keras.layers.Conv1D(self.skip_channels, 1, name="skip")
        self.dilated.build(input_shape)
        if self.residual is not None:
            self.residual.build(tuple(input_shape[:-1]) + (channels,))
        self.skip.build(tuple(input_shape[:-1]) + (channels,))

    def call(self, x):
        """(B, T, C) -> (residual output (B, T, C), skip (B, T, skip_channels)); the
        outputs at t depend on the inputs at t and before (without a residual
        output: `x` as it is)."""
        filters, gates = tf.split(self.dilated(x), 2, axis=-1)
        z = tf.tanh(filters) * tf.sigmoid(gates)
        return (x + self.residual(z) if self.residual is not None else x), self.skip(z)

    def step(self, x, i, queue):
        """Position `i` alone: `x` (B, C) its input, `queue` the inputs before it
        that the dilated convolution reads (:func:`causal_conv_step`). Returns the
        outputs at i as :meth:`call` gives them, and the next queue."""
        y, queue = causal_conv_step(self.dilated, x, i, queue)
        filters, gates = tf.split(y, 2, axis=-1)
        z = tf.tanh(filters) * tf.sigmoid(gates)
        residual = x + pointwise(self.residual, z) if self.residual is not None else x
        return (residual, pointwise(self.skip, z)), queue

    def get_config(self):
        return {**super().get_config(), "dilation": self.dilation,
                "skip_channels": self.skip_channels, "residual": self.has_residual}


@keras.saving.register_keras_serializable(package="zoo")
@network
class WaveNetNetwork(keras.layers.Layer):
    """Logits of every symbol of a sequence from the symbols before it.

    The input at position t is the symbol before it (a start symbol, index
    `num_symbols`, at t = 0), embedded, then a causal convolution of kernel 2 and
    `num_stacks` stacks of :class:`GatedResidualBlock` s with dilations 1, 2, 4,
    ..., 2**(num_layers - 1); the skip outputs are summed and go through
    ReLU, 1x1 convolution, ReLU, 1x1 convolution to the logits. The receptive
    field is ``num_stacks * (2**num_layers - 1) + 2`` positions.

    :meth:`step` gives one position's logits from queues of the past inputs of
    each convolution (Fast WaveNet, Paine et al. 2016): one pass through the
    layers on one position per symbol.

    Args:
        num_symbols: the vocabulary (logits per position).
        residual_channels: the width of the residual stream.
        skip_channels: the width of the skip connections.
        num_layers: blocks per stack (dilations up to 2**(num_layers - 1)).
        num_stacks: stacks of blocks.
    """

    policy_methods = ("call", "step")

    def __init__(self, num_symbols, residual_channels, skip_channels, num_layers, num_stacks,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_symbols = int(num_symbols)
        self.residual_channels, self.skip_channels = int(residual_channels), int(skip_channels)
        self.num_layers, self.num_stacks = int(num_layers), int(num_stacks)
        self.causal = keras.layers.Conv1D(self.residual_channels, 2, padding="causal",
                                          name="causal")
        last = (self.num_stacks - 1, self.num_layers - 1)
        self.blocks = [GatedResidualBlock(2 ** k, self.skip_channels, residual=(s, k) != last,
                                          name=f"block_{s}_{k}")
                       for s in range(self.num_stacks) for k in range(self.num_layers)]
        self.hidden = keras.layers.Conv1D(self.skip_channels, 1, name="hidden")
        self.logits = keras.layers.Conv1D(self.num_symbols, 1, name="logits")

    def build(self, input_shape=None):
        # A one-hot product rather than a gather: dense gradients, like every other weight's.
        self.tokens = self.add_weight(
            shape=(self.num_symbols + 1, self.residual_channels), name="tokens",
            initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.causal.build((None, None, self.residual_channels))
        for block in self.blocks:
            block.build((None, None, self.residual_channels))
        self.hidden.build((None, None, self.skip_channels))
        self.logits.build((None, None, self.skip_channels))

    @property
    def receptive_field(self):
        """The positions the logits at t see: t - receptive_field + 1 .. t - 1
        (through the shifted input)."""
        return self.num_stacks * (2 ** self.num_layers - 1) + 2

    def call(self, symbols):
        """`symbols` (B, T) integers -> logits (B, T, num_symbols); those at t depend
        on symbols < t only."""
        symbols = tf.cast(symbols, tf.int32)
        start = tf.fill(tf.stack([tf.shape(symbols)[0], 1]), self.num_symbols)
        inputs = tf.concat([start, symbols[:, :-1]], axis=1)
        h = self.causal(self.embed(inputs))
        skips = 0.0
        for block in self.blocks:
            h, skip = block(h)
            skips += skip
        return self.logits(tf.nn.relu(self.hidden(tf.nn.relu(skips))))

    def embed(self, symbols):
        """The embeddings of integer `symbols` (start: `num_symbols`)."""
        dtype = self.compute_dtype
        return tf.tensordot(tf.one_hot(symbols, self.num_symbols + 1, dtype=dtype),
                            tf.cast(self.tokens, dtype), 1)

    def empty_queues(self, batch):
        """The queues of no position yet: for the first causal convolution and for
        each block's dilated one, zeros (B, (kernel - 1) * dilation,
        residual_channels) (float32 in any policy)."""
        convs = [self.causal] + [block.dilated for block in self.blocks]
        return tuple(tf.zeros(tf.stack([batch, (conv.kernel_size[0] - 1) * conv.dilation_rate[0],
                                        self.residual_channels]))
                     for conv in convs)

    def step(self, previous, i, queues):
        """The logits (B, num_symbols) of position `i` from the symbol before it,
        `previous` (B,) (ignored at i = 0), and the queues of the positions before
        (:meth:`empty_queues`, then what the steps before returned); returns them and
        the queues with position i added. Equal to ``call(...)[:, i]`` up to float
        rounding; it costs one position's pass through the layers."""
        previous = tf.where(i > 0, tf.cast(previous, tf.int32), self.num_symbols)
        h, first = causal_conv_step(self.causal, self.embed(previous), i, queues[0])
        after, skips = [first], 0.0
        for block, queue in zip(self.blocks, queues[1:]):
            (h, skip), queue = block.step(h, i, queue)
            after.append(queue)
            skips += skip
        logits = pointwise(self.logits, tf.nn.relu(pointwise(self.hidden, tf.nn.relu(skips))))
        return logits, tuple(after)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.num_symbols,)

    def get_config(self):
        return {**super().get_config(), "num_symbols": self.num_symbols,
                "residual_channels": self.residual_channels,
                "skip_channels": self.skip_channels, "num_layers": self.num_layers,
                "num_stacks": self.num_stacks}
