"""Radial transformation (Rezende & Mohamed 2015): a Keras layer and its bijector."""

import keras
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector


def safe_norm(x):
    """||x|| over the last axis, with a zero (not NaN) gradient at x = 0."""
    squared = tf.reduce_sum(x**2, axis=-1)
    positive = squared > 0.0
    return tf.where(positive, tf.sqrt(tf.where(positive, squared, 1.0)), 0.0)


class RadialBijector(LayerBijector):
    """y = z + beta h(alpha, r) (z - z0), h = 1 / (alpha + r), r = ||z - z0||.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
    https://arxiv.org/abs/1505.05770, eq. 14 and Appendix A.2, with the constraint
    ``beta >= -alpha`` as ``alpha = softplus(alpha_raw)``,
    ``beta = -alpha + softplus(beta_raw)``.

    log|det J| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r), computed
    as ``(d-1) [log(s + r) - log(alpha + r)] + log(r (2 alpha + r) + alpha s)
    - 2 log(alpha + r)`` with ``s = softplus(beta_raw) = alpha + beta > 0`` (the
    same numbers, every term positive).

    The inverse is a scalar problem: ``y - z0 = (z - z0)(1 + beta h(r))``, so the
    direction is kept and ``||y - z0|| = r (alpha + beta + r) / (alpha + r)``.
    That is a quadratic in r, ``r^2 + (s - r_y) r - alpha r_y = 0`` with exactly one
    non-negative root, which is taken in closed form (the cancellation-free form of
    the root): no iteration is needed, and ``z = z0 + (y - z0) (alpha + r)/(s + r)``.

    Args:
        z0: the centre, a vector of the event size.
        alpha_raw, beta_raw: unconstrained scalars.
    """

    def __init__(self, z0, alpha_raw, beta_raw, name="radial"):
        # TFP shares its cache of results between equal bijectors, and bijectors of
        # one layer hold the same variables: a distinct token per instance keeps
        # results computed with older values (or outside a tape) from being reused.
        parameters = dict(locals())
        self._params = (z0, alpha_raw, beta_raw)  # read when used, so tapes see them
        super().__init__(parameters, forward_min_event_ndims=1, name=name)

    def constrained(self):
        """(z0, alpha, beta, s = alpha + beta)."""
        z0, alpha_raw, beta_raw = (tf.convert_to_tensor(p) for p in self._params)
        alpha = tf.nn.softplus(alpha_raw)
        s = tf.nn.softplus(beta_raw)
        return z0, alpha, s - alpha, s

    def _log_det(self, r, event_size):
        _, alpha, _, s = self.constrained()
        log_alpha_r = tf.math.log(alpha + r)
        radial = tf.math.log(s + r) - log_alpha_r  # log(1 + beta h)
        along = tf.math.log(r * (2.0 * alpha + r) + alpha * s) - 2.0 * log_alpha_r
        return (event_size - 1.0) * radial + along

    @staticmethod
    def _event_size(x):
        return tf.cast(tf.shape(x)[-1], x.dtype)

    def _forward(self, z):
        z0, alpha, beta, _ = self.constrained()
        r = safe_norm(z - z0)
        return z + (beta / (alpha + r))[..., None] * (z - z0)

    def _forward_log_det_jacobian(self, z):
        z0, _, _, _ = self.constrained()
        return self._log_det(safe_norm(z - z0), self._event_size(z))

    def radius(self, y):
        """r = ||z - z0|| of z = f^-1(y): the non-negative root of the quadratic."""
        z0, alpha, _, s = self.constrained()
        r_y = safe_norm(y - z0)
        half_b = 0.5 * (s - r_y)
        root = tf.sqrt(half_b**2 + alpha * r_y)
        # r = -half_b + root, written without cancellation for either sign of half_b.
        return tf.where(half_b >= 0.0, alpha * r_y / (half_b + root), root - half_b)

    def _inverse(self, y):
        z0, alpha, _, s = self.constrained()
        r = self.radius(y)
        return z0 + (y - z0) * ((alpha + r) / (s + r))[..., None]

    def _inverse_log_det_jacobian(self, y):
        return -self._log_det(self.radius(y), self._event_size(y))


@keras.saving.register_keras_serializable(package="zoo")
class RadialTransform(keras.layers.Layer):
    """A radial transformation whose parameters are Keras weights.

    Rezende & Mohamed 2015, https://arxiv.org/abs/1505.05770, Sec. 4.1. The
    centre ``z0`` starts standard normal, ``alpha_raw`` and ``beta_raw`` at zero,
    so ``beta = 0`` and the step starts as the identity. See
    :class:`RadialBijector` for the constraint and the (closed-form) inverse.

    Args:
        event_size: D.
    """

    def __init__(self, event_size, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.build(None)

    def build(self, input_shape=None):
        if self.built:
            return
        self.z0 = self.add_weight(name="z0", shape=(self.event_size,),
                                  initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.alpha_raw = self.add_weight(name="alpha_raw", shape=(), initializer="zeros")
        self.beta_raw = self.add_weight(name="beta_raw", shape=(), initializer="zeros")
        self.built = True

    def bijector(self):
        return RadialBijector(self.z0, self.alpha_raw, self.beta_raw, name=self.name)

    def call(self, z):
        return self.bijector().forward(z)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size}
