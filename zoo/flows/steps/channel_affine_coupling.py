"""Affine coupling on a split of the channel axis, as Glow's coupling and split prior use."""

import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector, TensorCache


class ChannelAffineCouplingBijector(LayerBijector):
    """y_t = (x_t + shift(x_c)) * exp(log_scale(x_c)), y_c = x_c, on channel halves.

    The last axis splits into its first ``num_first`` channels and the rest; one
    part conditions (``x_c``), the other is transformed (``x_t``).
    log|det J| = sum(log_scale). Glow's affine coupling (Kingma & Dhariwal 2018,
    https://arxiv.org/abs/1807.03039, Table 1) and its split prior are of this form;
    with ``shift_first=False`` it is ``y_t = x_t * exp(log_scale) + shift``, RealNVP's
    coupling (Dinh et al. 2017, https://arxiv.org/abs/1605.08803, eqs. 4-5).

    TFP asks for the transform and for its log-det separately, on the input or on
    the output; ``y_c = x_c``, so the network outputs are cached under both, and
    the network runs once per pass.

    Args:
        shift_and_log_scale_fn: ``x_c -> (shift, log_scale)``, each shaped like ``x_t``.
        num_first: channels of the first part.
        conditioning: ``"first"`` or ``"second"``, the part that conditions.
        event_ndims: rank of one event (1 for vectors, 3 for images).
        shift_first: shift, then scale (Glow); False: scale, then shift (RealNVP).
    """

    def __init__(self, shift_and_log_scale_fn, num_first, conditioning, event_ndims,
                 name="channel_affine_coupling", shift_first=True):
        parameters = dict(locals())
        if conditioning not in ("first", "second"):
            raise ValueError(f"conditioning must be 'first' or 'second', got {conditioning!r}")
        self._fn = shift_and_log_scale_fn
        self._k = int(num_first)
        self._conditioning = conditioning
        self._event_axes = list(range(-event_ndims, 0))
        self._shift_first = bool(shift_first)
        self._net_cache = TensorCache()
        super().__init__(parameters, forward_min_event_ndims=event_ndims, name=name)

    def _split(self, x):
        """(x_c, x_t)."""
        first, second = x[..., : self._k], x[..., self._k :]
        return (first, second) if self._conditioning == "first" else (second, first)

    def _join(self, x_c, x_t):
        parts = [x_c, x_t] if self._conditioning == "first" else [x_t, x_c]
        return tf.concat(parts, axis=-1)

    def _shift_and_log_scale(self, x):
        if x not in self._net_cache:
            self._net_cache[x] = self._fn(self._split(x)[0])
        return self._net_cache[x]

    def _forward(self, x):
        x_c, x_t = self._split(x)
        shift, log_scale = self._shift_and_log_scale(x)
        if self._shift_first:
            y_t = (x_t + shift) * tf.exp(log_scale)
        else:
            y_t = x_t * tf.exp(log_scale) + shift
        y = self._join(x_c, y_t)
        self._net_cache[y] = (shift, log_scale)
        return y

    def _inverse(self, y):
        y_c, y_t = self._split(y)
        shift, log_scale = self._shift_and_log_scale(y)
        if self._shift_first:
            x_t = y_t * tf.exp(-log_scale) - shift
        else:
            x_t = (y_t - shift) * tf.exp(-log_scale)
        x = self._join(y_c, x_t)
        self._net_cache[x] = (shift, log_scale)
        return x

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(self._shift_and_log_scale(x)[1], axis=self._event_axes)

    def _inverse_log_det_jacobian(self, y):
        return -tf.reduce_sum(self._shift_and_log_scale(y)[1], axis=self._event_axes)
