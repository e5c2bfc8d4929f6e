"""Planar transformation (Rezende & Mohamed 2015): a Keras layer and its bijector."""

import math

import keras
import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector, TensorCache


class PlanarBijector(LayerBijector):
    """y = z + u_hat tanh(w^T z + b), with the invertibility constraint of App. A.1.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
    https://arxiv.org/abs/1505.05770, eq. 10-12 and Appendix A.1:
    ``u_hat = u + (m(w^T u) - w^T u) w / ||w||^2`` with ``m(x) = -1 + softplus(x)``,
    so ``w^T u_hat = m(w^T u) > -1`` and the map is invertible.

    Forward and log-det are closed form: ``log|1 + u_hat^T psi(z)|`` with
    ``psi(z) = tanh'(w^T z + b) w``, computed as ``log(tanh(a)^2 + softplus(w^T u)
    (1 - tanh(a)^2))`` (the same number, positive even when ``w^T u_hat`` rounds
    to -1). The inverse has no closed form: with ``a = w^T z + b`` the data give
    ``w^T y + b = a + c tanh(a)``, ``c = w^T u_hat``, a scalar equation monotone in
    ``a``. It is solved by ``inverse_steps`` bisection steps on the bracket
    ``[w^T y + b - |c|, w^T y + b + |c|]`` (outside the gradient), then one Newton
    step that carries the implicit-function gradient; ``z = y - u_hat tanh(a)``.

    The parameters may be batched, one set per example (a flow on a VAE's
    posterior whose parameters the encoder gives, as in the paper's Sec. 4.1):
    ``w`` and ``u`` of shape (..., D) and ``b`` of shape (...), broadcasting
    against the inputs' batch dimensions.

    Args:
        w, u: vectors of the event size (u is the raw, unconstrained parameter).
        b: scalar bias.
        inverse_steps: bisection steps of the inverse.
    """

    def __init__(self, w, u, b, inverse_steps=40, name="planar"):
        # TFP shares its cache of results between equal bijectors, and bijectors of
        # one layer hold the same variables: a distinct token per instance keeps
        # results computed with older values (or outside a tape) from being reused.
        parameters = dict(locals())
        self._params = (w, u, b)  # read when used, so that tapes see the variables
        self._inverse_steps = int(inverse_steps)
        self._solve_cache = TensorCache()
        super().__init__(parameters, forward_min_event_ndims=1, name=name)

    def constrained(self):
        """(u_hat, c = w^T u_hat, softplus(w^T u) = 1 + c)."""
        w, u, _ = (tf.convert_to_tensor(p) for p in self._params)
        wu = tf.reduce_sum(w * u, axis=-1)
        softplus = tf.nn.softplus(wu)
        c = softplus - 1.0  # m(w^T u)
        u_hat = u + ((c - wu) / tf.reduce_sum(w**2, axis=-1))[..., None] * w
        return u_hat, c, softplus

    def _preactivation(self, z):
        w, _, b = (tf.convert_to_tensor(p) for p in self._params)
        return tf.reduce_sum(z * w, axis=-1) + b

    @staticmethod
    def _derivative(a, softplus):
        """1 + c tanh'(a) = tanh(a)^2 + (1 + c)(1 - tanh(a)^2) > 0."""
        t2 = tf.tanh(a) ** 2
        return t2 + softplus * (1.0 - t2)

    def _forward(self, z):
        u_hat, _, _ = self.constrained()
        return z + u_hat * tf.tanh(self._preactivation(z))[..., None]

    def _forward_log_det_jacobian(self, z):
        _, _, softplus = self.constrained()
        return tf.math.log(self._derivative(self._preactivation(z), softplus))

    def solve(self, y):
        """The a = w^T z + b of z = f^-1(y): bisection, then one differentiable Newton step.

        TFP asks for the inverse and its log-det separately, on the same tensor: the
        solve runs once per input tensor (cached without keeping the tensor).
        """
        if y not in self._solve_cache:
            self._solve_cache.clear()
            self._solve_cache[y] = self._solve(y)
        return self._solve_cache[y]

    def _solve(self, y):
        _, c, softplus = self.constrained()
        target = self._preactivation(y)
        c0, target0 = tf.stop_gradient(c), tf.stop_gradient(target)
        g = lambda a, c, target: a + c * tf.tanh(a) - target

        def bisect(i, low, high):
            mid = 0.5 * (low + high)
            below = g(mid, c0, target0) < 0.0
            return i + 1, tf.where(below, mid, low), tf.where(below, high, mid)

        _, low, high = tf.while_loop(
            lambda i, low, high: i < self._inverse_steps, bisect,
            (tf.constant(0), target0 - tf.abs(c0), target0 + tf.abs(c0)))
        a = tf.stop_gradient(0.5 * (low + high))
        return a - g(a, c, target) / self._derivative(a, softplus)

    def _inverse(self, y):
        u_hat, _, _ = self.constrained()
        return y - u_hat * tf.tanh(self.solve(y))[..., None]

    def _inverse_log_det_jacobian(self, y):
        _, _, softplus = self.constrained()
        return -tf.math.log(self._derivative(self.solve(y), softplus))


@keras.saving.register_keras_serializable(package="zoo")
class PlanarTransform(keras.layers.Layer):
    """A planar transformation whose parameters are Keras weights.

    Rezende & Mohamed 2015, https://arxiv.org/abs/1505.05770, Sec. 4.1.
    ``w`` starts as a random unit vector (the constraint divides by ``||w||^2``),
    ``b`` at zero and ``u`` at ``log(e - 1) w``, where ``m(w^T u) = 0`` and so
    ``u_hat = 0``: the step starts as the identity. See :class:`PlanarBijector`
    for the constraint and the iterative inverse.

    Args:
        event_size: D.
        inverse_steps: bisection steps of the inverse (40 reach float32 round-off).
    """

    def __init__(self, event_size, inverse_steps=40, **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.inverse_steps = int(inverse_steps)
        self.build(None)

    def build(self, input_shape=None):
        if self.built:
            return
        normal = keras.initializers.RandomNormal()
        self.w = self.add_weight(
            name="w", shape=(self.event_size,),
            initializer=lambda shape, dtype=None: tf.math.l2_normalize(normal(shape, dtype)))
        identity_u = math.log(math.e - 1.0) * keras.ops.convert_to_numpy(self.w)  # ||w|| = 1
        self.u = self.add_weight(
            name="u", shape=(self.event_size,),
            initializer=lambda shape, dtype=None: tf.constant(identity_u, dtype or "float32"))
        self.b = self.add_weight(name="b", shape=(), initializer="zeros")
        self.built = True

    def bijector(self):
        return PlanarBijector(self.w, self.u, self.b, self.inverse_steps, name=self.name)

    def call(self, z):
        return self.bijector().forward(z)

    def get_config(self):
        return {**super().get_config(), "event_size": self.event_size,
                "inverse_steps": self.inverse_steps}
