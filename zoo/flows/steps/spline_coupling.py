"""Rational-quadratic spline coupling: a Keras layer that owns the MLP and makes the bijector."""

import weakref

import keras
import numpy as np
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector, OnePassBijector, TensorCache
from zoo.nn.mlp import MLP


def spline_params_per_dim(num_bins):
    """Unconstrained values per transformed dimension: K widths, K heights, K-1 slopes."""
    return 3 * num_bins - 1


class RationalQuadraticSpline(LayerBijector):
    """An elementwise monotonic rational-quadratic spline on [-B, B], identity outside.

    Durkan et al. 2019, App. A (https://arxiv.org/abs/1906.04019): the same
    transform as ``tfb.RationalQuadraticSpline(widths, heights, slopes,
    range_min=-B)``, written for speed. The bin of each value is found by
    counting the knots below it and its parameters are read with a one-hot
    product instead of a batched gather, whose gradient graph was most of a
    spline flow's trace time (20 s for the 2-D NSF); a transform and its log-det
    come from one pass, cached under the input tensor, as TFP asks for them
    separately.

    Args:
        widths, heights: ``(..., K)`` bin widths and heights, each summing to 2B.
        slopes: ``(..., K - 1)`` positive interior knot slopes (the two boundary
            slopes are 1, so the spline joins the identity tails smoothly).
        bound: B.
    """

    def __init__(self, widths, heights, slopes, bound, name="rational_quadratic_spline"):
        parameters = dict(locals())
        # TFP's names for them
        self.bin_widths, self.bin_heights, self.knot_slopes = widths, heights, slopes
        self._bound = float(bound)
        self._results = TensorCache()
        super().__init__(parameters, forward_min_event_ndims=0, name=name)

    def _knots(self, sizes):
        """The K + 1 knot positions from -B: ``(..., K + 1)``."""
        zero = tf.zeros_like(sizes[..., :1])
        return tf.concat([zero, tf.cumsum(sizes, axis=-1)], -1) - self._bound

    def _transform(self, v, inverse):
        """``(out, log|d out / d v|)`` of the forward map of x = `v`, or of the
        inverse of y = `v`, elementwise."""
        key = (v, inverse)
        if key in self._results:
            out, log_slope = self._results[key]
            out = out()  # held weakly: TFP's cache holds this bijector while it lives
            if out is not None:
                return out, log_slope
        widths, heights, slopes = self.bin_widths, self.bin_heights, self.knot_slopes
        num_bins = widths.shape[-1]
        xs, ys = self._knots(widths), self._knots(heights)
        one = tf.ones_like(slopes[..., :1])
        ds = tf.concat([one, slopes, one], -1)
        knots = ys if inverse else xs
        inside = (v > knots[..., 0]) & (v < knots[..., -1])
        u = tf.where(inside, v, tf.zeros_like(v))  # no NaN from the tails' branch
        below = tf.cast(u[..., None] >= knots[..., 1:-1], tf.int32)
        pick = tf.one_hot(tf.reduce_sum(below, -1), num_bins, dtype=v.dtype)

        def at(values):
            return tf.reduce_sum(values * pick, -1)

        x_k, y_k, w_k, h_k = at(xs[..., :-1]), at(ys[..., :-1]), at(widths), at(heights)
        d_k, d_k1 = at(ds[..., :-1]), at(ds[..., 1:])
        s_k = h_k / w_k
        curve = d_k1 + d_k - 2.0 * s_k
        if inverse:  # the root of a quadratic in xi (App. A.3)
            rel = u - y_k
            a = h_k * (s_k - d_k) + rel * curve
            b = h_k * d_k - rel * curve
            c = -s_k * rel
            xi = 2.0 * c / (-b - tf.sqrt(b * b - 4.0 * a * c))
            out = xi * w_k + x_k
        else:
            xi = (u - x_k) / w_k
            out = y_k + h_k * (s_k * xi * xi + d_k * xi * (1.0 - xi)) / (
                s_k + curve * xi * (1.0 - xi))
        one_minus = 1.0 - xi
        log_slope = (2.0 * tf.math.log(s_k)
                     + tf.math.log(d_k1 * xi * xi + 2.0 * s_k * xi * one_minus
                                   + d_k * one_minus * one_minus)
                     - 2.0 * tf.math.log(s_k + curve * xi * one_minus))  # log dy/dx (A.2)
        if inverse:
            log_slope = -log_slope
        result = (tf.where(inside, out, v), tf.where(inside, log_slope, tf.zeros_like(v)))
        self._results[key] = (weakref.ref(result[0]), result[1])
        return result

    def _forward(self, x):
        return self._transform(x, inverse=False)[0]

    def _inverse(self, y):
        return self._transform(y, inverse=True)[0]

    def _forward_log_det_jacobian(self, x):
        return self._transform(x, inverse=False)[1]

    def _inverse_log_det_jacobian(self, y):
        return self._transform(y, inverse=True)[1]


def rational_quadratic_spline(raw, num_bins, bound, min_bin_width=1e-3, min_bin_height=1e-3,
                              min_slope=1e-3):
    """A :class:`RationalQuadraticSpline` on [-bound, bound] from unconstrained values.

    Durkan et al. 2019, Sec. 3.1 and App. A.1 (https://arxiv.org/abs/1906.04019):
    bin widths and heights are softmaxes scaled to ``2 * bound`` with a minimum bin
    size, the K-1 interior knot slopes a softplus plus a minimum; TFP pads the two
    boundary slopes with 1, so the spline joins the identity tails outside
    [-bound, bound] with a continuous derivative (as TFP's, which pads them too). The softplus is shifted so that
    ``raw = 0`` gives slope 1: equal bins and unit slopes are the identity, and a
    zero-initialised network makes the step start as the identity.

    Args:
        raw: ``(..., 3 * num_bins - 1)`` unconstrained values, one set per dimension.
        num_bins: K, the number of bins.
        bound: B, the half-width of the spline's interval.
        min_bin_width: smallest bin width.
        min_bin_height: smallest bin height.
        min_slope: smallest interior knot slope.
    """
    if num_bins * max(min_bin_width, min_bin_height) >= 2.0 * bound:
        raise ValueError(f"{num_bins} bins of minimum size do not fit in [-{bound}, {bound}]")
    raw_widths, raw_heights, raw_slopes = tf.split(raw, [num_bins, num_bins, num_bins - 1], -1)
    span = 2.0 * bound
    widths = tf.math.softmax(raw_widths, -1) * (span - num_bins * min_bin_width) + min_bin_width
    heights = tf.math.softmax(raw_heights, -1) * (span - num_bins * min_bin_height) + min_bin_height
    identity_shift = float(np.log(np.expm1(1.0 - min_slope)))  # softplus(shift) + min = 1
    slopes = tf.math.softplus(raw_slopes + identity_shift) + min_slope
    return RationalQuadraticSpline(widths, heights, slopes, bound)


class SplineCouplingBijector(OnePassBijector):
    """y_c = x_c, y_t = RQS(x_t; theta(x_c)), log|det J| = sum_t log RQS'(x_t).

    Durkan et al. 2019, "Neural Spline Flows", Sec. 3.2 (coupling transform),
    https://arxiv.org/abs/1906.04019. The last axis is split by index lists:
    ``conditioner`` (identity) and ``transformed``; ``params_fn(x_c)`` returns
    ``(..., len(transformed), 3K - 1)`` unconstrained spline parameters.
    """

    def __init__(self, conditioner, transformed, params_fn, num_bins, bound,
                 name="spline_coupling"):
        parameters = dict(locals())
        self._conditioner = np.asarray(conditioner, np.int32)
        self._transformed = np.asarray(transformed, np.int32)
        order = np.concatenate([self._conditioner, self._transformed])
        self._merge = np.argsort(order).astype(np.int32)  # [x_c, x_t] -> x
        self._fn = params_fn
        self._num_bins = num_bins
        self._bound = bound
        self._net_cache = TensorCache()
        super().__init__(parameters, forward_min_event_ndims=1, name=name)

    def _split(self, x):
        return (tf.gather(x, self._conditioner, axis=-1),
                tf.gather(x, self._transformed, axis=-1))

    def _merge_halves(self, fixed, moved):
        return tf.gather(tf.concat([fixed, moved], -1), self._merge, axis=-1)

    def _spline(self, x):
        """(x_c, x_t, spline) for `x`; the network runs once per input tensor
        (TFP asks for a direction and its log-det separately, on the same tensor).
        The conditioning half is the same on both sides, so either works."""
        if x not in self._net_cache:
            fixed, moved = self._split(x)
            spline = rational_quadratic_spline(self._fn(fixed), self._num_bins, self._bound)
            self._net_cache.clear()
            self._net_cache[x] = (fixed, moved, spline)
        return self._net_cache[x]

    def _transform(self, v, inverse):
        fixed, moved, spline = self._spline(v)
        out = spline.inverse(moved) if inverse else spline.forward(moved)
        log_det = (spline.inverse_log_det_jacobian(moved, event_ndims=1) if inverse else
                   spline.forward_log_det_jacobian(moved, event_ndims=1))
        return self._merge_halves(fixed, out), log_det


@keras.saving.register_keras_serializable(package="zoo")
class SplineCoupling(keras.layers.Layer):
    """A rational-quadratic spline coupling step whose network is a Keras MLP.

    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    https://arxiv.org/abs/1906.04019, Sec. 3.2.

    The dimensions of one parity (even or odd indices of the flat event) are kept
    and condition an MLP; it outputs ``3K - 1`` values per other dimension, which
    become a monotonic rational-quadratic spline on [-bound, bound] with identity
    (linear) tails outside it (:func:`rational_quadratic_spline`). The MLP's last
    layer starts at zero, so the step starts as the identity.

    Args:
        event_size: D >= 2, the size of the flat event.
        parity: 0 or 1: the dimensions ``i`` with ``i % 2 == parity`` are kept.
        hidden_units: width of the MLP's hidden layers.
        num_hidden: number of hidden layers of the MLP.
        num_bins: K, bins of each spline.
        bound: B, the splines act on [-B, B] and are the identity outside.
    """

    def __init__(self, event_size, parity, hidden_units, num_hidden=2, num_bins=8, bound=3.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.parity = int(parity)
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        if self.event_size < 2 or self.parity not in (0, 1):
            raise ValueError(f"SplineCoupling: expected event_size >= 2 and parity 0 or 1, "
                             f"got {self.event_size}, {self.parity}")
        if self.num_bins < 2 or self.bound <= 0:
            raise ValueError(f"SplineCoupling: expected num_bins >= 2 and bound > 0, got "
                             f"{self.num_bins}, {self.bound}")
        index = np.arange(self.event_size)
        self.conditioner = index[index % 2 == self.parity]
        self.transformed = index[index % 2 != self.parity]
        self.params_per_dim = spline_params_per_dim(self.num_bins)
        self.net = MLP(hidden_units, num_hidden, len(self.transformed) * self.params_per_dim,
                       name="net")
        self.build(None)  # the bijector calls the network directly, not this layer

    def build(self, input_shape=None):
        if self.built:
            return
        self.net.build((None, len(self.conditioner)))
        self.built = True

    def spline_parameters(self, fixed):
        """(..., len(transformed), 3K - 1) unconstrained spline parameters."""
        raw = self.net(fixed)
        shape = tf.concat([tf.shape(raw)[:-1], [len(self.transformed), self.params_per_dim]], 0)
        return tf.reshape(raw, shape)

    def bijector(self):
        return SplineCouplingBijector(self.conditioner, self.transformed, self.spline_parameters,
                                      self.num_bins, self.bound, name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "parity": self.parity,
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "num_bins": self.num_bins,
            "bound": self.bound,
        }
