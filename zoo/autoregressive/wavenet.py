"""WaveNet over symbols: dilated causal convolutions, gated residual blocks, skip
connections."""

import keras
import tensorflow as tf

from zoo import validation
from zoo.autoregressive.base import AutoregressiveModel
from zoo.autoregressive.logits import unordered_params
from zoo.nn.wavenet import WaveNetNetwork
from zoo.registry import register


@register(
    "wavenet",
    presets={
        # receptive fields: 2 * 127 + 2 (fortunes), 63 + 2 (digits: 64 pixels)
        "fortunes": dict(residual_channels=64, skip_channels=128, num_layers=7, num_stacks=2),
        "tiny_shakespeare": dict(residual_channels=64, skip_channels=128, num_layers=7,
                                 num_stacks=2),
        "digits": dict(residual_channels=32, skip_channels=64, num_layers=6, num_stacks=1),
    },
    training={
        "fortunes": dict(batch_size=64, epochs=5, learning_rate=1e-3),
        "tiny_shakespeare": dict(batch_size=64, epochs=10, learning_rate=1e-3),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
    },
    default_dataset="fortunes",
)
@keras.saving.register_keras_serializable(package="zoo")
class WaveNet(AutoregressiveModel):
    """WaveNet (van den Oord et al. 2016c, "WaveNet: a generative model for raw
    audio", https://arxiv.org/abs/1609.03499) over symbols in the model's order
    (a text's bytes; an image's pixels in raster order): dilated causal
    convolutions of kernel 2 in gated residual blocks (``tanh * sigmoid``) with
    skip connections to a softmax over the levels at every position
    (:class:`~zoo.nn.wavenet.WaveNetNetwork`).

    ``nll`` is the exact NLL; its bits per dimension are bits per symbol on text.
    Sampling runs the family's compiled loop with the queues of Fast WaveNet
    (Paine et al. 2016, "Fast Wavenet generation algorithm",
    https://arxiv.org/abs/1611.09482): each convolution keeps the past inputs it
    reads ((kernel - 1) * dilation positions, a ring buffer in the loop's state),
    so each symbol costs one position's pass through the layers instead of the
    whole sequence's (:meth:`~zoo.nn.wavenet.WaveNetNetwork.step`). ``queues =
    False`` (an attribute, not saved) samples with the whole network at each step.

    Args:
        data_shape: ``(T,)`` for text, ``(H, W, C)`` for images.
        num_levels: the symbols (256 bytes; 17 levels of digits).
        residual_channels: the width of the residual stream.
        skip_channels: the width of the skip connections and the output layers.
        num_layers: blocks per stack, of dilations 1, 2, ..., 2**(num_layers - 1).
        num_stacks: stacks of blocks.
    """

    def __init__(self, data_shape=(128,), num_levels=256, residual_channels=64,
                 skip_channels=128, num_layers=7, num_stacks=2, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        self.residual_channels, self.skip_channels = residual_channels, skip_channels
        self.num_layers, self.num_stacks = num_layers, num_stacks
        for name in ("residual_channels", "skip_channels", "num_layers", "num_stacks"):
            validation.check_int(getattr(self, name), name, kind)
        self.wavenet_network = WaveNetNetwork(self.num_levels, residual_channels,
                                              skip_channels, num_layers, num_stacks,
                                              name="wavenet")
        self.queues = True
        self.build_model()

    def params(self, x, labels=None, training=False):
        return unordered_params(self, self.wavenet_network(self.ordered(x)))

    def sampling_state(self, n, labels=None):
        """Every convolution's queue of past inputs, zeros."""
        return self.wavenet_network.empty_queues(n) if self.queues else ()

    def step_params(self, x, i, state, labels=None):
        """The logits of dimension `i` from the symbol before it and the queues."""
        if not self.queues:
            return super().step_params(x, i, state, labels)
        previous = tf.gather(self.ordered(x), tf.maximum(i - 1, 0), axis=1)
        return self.wavenet_network.step(previous, i, state)
