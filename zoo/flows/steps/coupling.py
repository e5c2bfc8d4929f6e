"""Affine coupling: a Keras layer that owns the s/t network and makes the bijector."""

import keras
import numpy as np
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector, TensorCache
from zoo.flows.steps.channel_affine_coupling import ChannelAffineCouplingBijector
from zoo.nn.mlp import MLP
from zoo.nn.resnet import ConvResNet


def checkerboard_mask(height, width, parity):
    """(H, W, 1) float mask, 1 where (i + j) % 2 == parity."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((i + j) % 2 == parity).astype("float32")[..., None]


def channel_mask(channels, parity, rank):
    """Mask over the last axis: the first half of it is 1 (parity 0) or the second."""
    half = channels // 2
    mask = np.zeros(channels, "float32")
    if parity == 0:
        mask[:half] = 1.0
    else:
        mask[half:] = 1.0
    return mask.reshape((1,) * (rank - 1) + (channels,))


class MaskedAffineCouplingBijector(LayerBijector):
    """y = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x)), log|det J| = sum (1-b)*s.

    Dinh et al. 2017, "Density estimation using Real NVP", eq. 9,
    https://arxiv.org/abs/1605.08803. `b` is a binary mask broadcastable to the
    event; `shift_and_log_scale_fn(b*x)` returns `(t, s)` shaped like x.
    """

    def __init__(self, mask, shift_and_log_scale_fn, event_ndims, name="affine_coupling"):
        parameters = dict(locals())
        self._mask = tf.constant(mask, tf.float32)
        self._free = tf.constant(1.0 - np.asarray(mask, "float32"))
        self._fn = shift_and_log_scale_fn
        self._net_cache = TensorCache()
        self._event_axes = list(range(-event_ndims, 0))
        super().__init__(parameters, forward_min_event_ndims=event_ndims, name=name)

    def _shift_and_log_scale(self, x):
        """(t, s) of the network on b*x, zeroed on the fixed half.

        TFP asks for a transform and its log-det separately, on the input or on
        the output. Input and output agree on the fixed half b*x, so they share
        one network pass: results are cached under both tensors.
        """
        if x not in self._net_cache:
            shift, log_scale = self._fn(x * self._mask)
            self._net_cache[x] = (shift * self._free, log_scale * self._free)
        return self._net_cache[x]

    # With t and s zero on the fixed half, the affine map leaves it exactly as is.
    def _forward(self, x):
        shift, log_scale = self._shift_and_log_scale(x)
        y = x * tf.exp(log_scale) + shift
        self._net_cache[y] = self._net_cache[x]
        return y

    def _inverse(self, y):
        shift, log_scale = self._shift_and_log_scale(y)
        x = (y - shift) * tf.exp(-log_scale)
        self._net_cache[x] = self._net_cache[y]
        return x

    def _forward_log_det_jacobian(self, x):
        _, log_scale = self._shift_and_log_scale(x)
        return tf.reduce_sum(log_scale, axis=self._event_axes)

    def _inverse_log_det_jacobian(self, y):
        _, log_scale = self._shift_and_log_scale(y)
        return -tf.reduce_sum(log_scale, axis=self._event_axes)


@keras.saving.register_keras_serializable(package="zoo")
class AffineCoupling(keras.layers.Layer):
    """An affine coupling step whose s/t network is a Keras layer.

    The log-scale is ``scale * tanh(raw)`` with a learned per-feature ``scale``
    (RealNVP, Sec. 4.1), and the network's last layer starts at zero so that the
    step starts as the identity.

    Args:
        event_shape: shape of one example, ``(D,)`` or ``(H, W, C)``.
        mask_type: ``"checkerboard"`` (images) or ``"channel"`` (last axis halves).
        parity: 0 or 1, which half of the mask is kept fixed.
        hidden_units: width (MLP) or filters (ConvResNet) of the network.
        num_blocks: hidden layers (MLP) or residual blocks (ConvResNet).
    """

    def __init__(self, event_shape, mask_type, parity, hidden_units, num_blocks, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(event_shape)
        self.mask_type = mask_type
        self.parity = parity
        self.hidden_units = hidden_units
        self.num_blocks = num_blocks
        rank = len(self.event_shape)
        channels = self.event_shape[-1]
        if mask_type == "checkerboard":
            if rank != 3:
                raise ValueError(f"a checkerboard mask needs (H, W, C) events, got {self.event_shape}")
            self.mask = checkerboard_mask(self.event_shape[0], self.event_shape[1], parity)
        elif mask_type == "channel":
            if channels < 2:
                raise ValueError(f"a channel mask needs >= 2 channels, got {self.event_shape}")
            self.mask = channel_mask(channels, parity, rank)
        else:
            raise ValueError(f"mask_type must be 'checkerboard' or 'channel', got {mask_type!r}")
        if rank == 1:
            self.net = MLP(hidden_units, num_blocks, 2 * channels, name="net")
        elif rank == 3:
            self.net = ConvResNet(hidden_units, num_blocks, 2 * channels, name="net")
        else:
            raise ValueError(f"event_shape must be (D,) or (H, W, C), got {self.event_shape}")
        self.build(None)  # the bijector calls the network directly, not this layer

    def build(self, input_shape=None):
        extra = 1 if self.mask_type == "checkerboard" else 0  # it sees its mask
        self.net.build((None,) + self.event_shape[:-1] + (self.event_shape[-1] + extra,))
        self.scale = self.add_weight(
            name="scale", shape=(self.event_shape[-1],), initializer="ones"
        )

    def shift_and_log_scale(self, x_masked):
        h = x_masked
        if self.mask_type == "checkerboard":
            mask = tf.zeros_like(x_masked[..., :1]) + self.mask
            h = tf.concat([x_masked, mask], axis=-1)
        shift, raw = tf.split(self.net(h), 2, axis=-1)
        return shift, self.scale * tf.tanh(raw)

    def halves(self):
        """(fixed, moved) slices of the last axis under a channel mask."""
        half = self.event_shape[-1] // 2
        first, second = slice(0, half), slice(half, None)
        return (first, second) if self.parity == 0 else (second, first)

    def split_shift_and_log_scale(self, x_fixed):
        """(t, s) of the moved half from the fixed half's values: the
        network's outputs for the moved half on the masked input (vectors)."""
        fixed, moved = self.halves()
        shift, raw = tf.split(self.net.partial_call(x_fixed, fixed), 2, axis=-1)
        shift, raw = shift[..., moved], raw[..., moved]
        return shift, self.scale[moved] * tf.tanh(raw)

    def bijector(self):
        """The masked coupling (eq. 9). Vectors under a channel mask get it as a
        coupling of halves (eqs. 4-5), which computes only the moved half; the
        same function of the same weights."""
        if self.mask_type == "channel" and len(self.event_shape) == 1:
            return ChannelAffineCouplingBijector(
                self.split_shift_and_log_scale, self.event_shape[-1] // 2,
                "first" if self.parity == 0 else "second", 1, name=self.name,
                shift_first=False)
        return MaskedAffineCouplingBijector(
            self.mask, self.shift_and_log_scale, len(self.event_shape), name=self.name
        )

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {
            **super().get_config(),
            "event_shape": list(self.event_shape),
            "mask_type": self.mask_type,
            "parity": self.parity,
            "hidden_units": self.hidden_units,
            "num_blocks": self.num_blocks,
        }
