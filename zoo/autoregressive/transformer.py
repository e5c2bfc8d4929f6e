"""A GPT-style Transformer decoder over symbols: text as bytes, images as pixel
sequences (Image GPT)."""

import keras
import tensorflow as tf

from zoo import validation
from zoo.autoregressive.base import AutoregressiveModel
from zoo.autoregressive.logits import unordered_params
from zoo.nn.causal_attention import TransformerDecoder
from zoo.registry import register


@register(
    "transformer",
    presets={
        "fortunes": dict(width=128, num_layers=4, num_heads=4),
        "tiny_shakespeare": dict(width=128, num_layers=4, num_heads=4),
        "digits": dict(width=64, num_layers=2, num_heads=4),
        "fashion_mnist": dict(width=64, num_layers=2, num_heads=4),
    },
    training={
        "fortunes": dict(batch_size=64, epochs=5, learning_rate=1e-3),
        "tiny_shakespeare": dict(batch_size=64, epochs=10, learning_rate=1e-3),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=32, epochs=2, learning_rate=1e-3),
    },
    default_dataset="fortunes",
)
@keras.saving.register_keras_serializable(package="zoo")
class Transformer(AutoregressiveModel):
    """A GPT-style decoder (Radford et al. 2018, "Improving language understanding
    by generative pre-training"; GPT-2, Radford et al. 2019, for the pre-norm
    blocks): causal self-attention over the symbols in the model's order,
    learned position embeddings, a softmax over the levels at every position.
    On text the symbols are bytes; on images the pixels' levels in raster order,
    channel by channel (Image GPT, Chen et al. 2020,
    http://proceedings.mlr.press/v119/chen20s.html).

    ``nll`` is the exact NLL; its bits per dimension are bits per symbol on text.
    Sampling runs one compiled loop whose steps read the keys and values of the
    positions before from a cache (:class:`~zoo.nn.causal_attention.TransformerDecoder`'s
    ``step``): one position's work per step instead of the whole sequence's.
    ``kv_cache = False`` (an attribute, not saved) samples without it.

    Args:
        data_shape: ``(T,)`` for text, ``(H, W, C)`` for images; the context is
            all of it (``T`` or ``H * W * C`` positions).
        num_levels: the symbols (256 bytes; 17 levels of digits).
        width: the embedding width.
        num_layers: decoder blocks.
        num_heads: attention heads per block (a divisor of `width`).
    """

    def __init__(self, data_shape=(128,), num_levels=256, width=128, num_layers=4, num_heads=4,
                 **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        self.width, self.num_layers, self.num_heads = width, num_layers, num_heads
        for name in ("width", "num_layers", "num_heads"):
            validation.check_int(getattr(self, name), name, kind)
        if width % num_heads:
            raise ValueError(f"{kind}: expected num_heads to divide width, got width={width} "
                             f"and num_heads={num_heads}")
        self.decoder_network = TransformerDecoder(self.num_levels, self.event_size, width,
                                                  num_layers, num_heads, name="decoder")
        self.kv_cache = True
        self.build_model()

    def params(self, x, labels=None, training=False):
        return unordered_params(self, self.decoder_network(self.ordered(x)))

    def sampling_state(self, n, labels=None):
        """Every block's key/value cache, empty."""
        return self.decoder_network.empty_cache(n) if self.kv_cache else ()

    def step_params(self, x, i, state, labels=None):
        """The logits of dimension `i` from the symbol before it and the cache."""
        if not self.kv_cache:
            return super().step_params(x, i, state, labels)
        previous = tf.gather(self.ordered(x), tf.maximum(i - 1, 0), axis=1)
        return self.decoder_network.step(previous, i, state)
