"""VAEs whose posterior is a normalizing flow: planar flows and IAF on q(z|x)."""

import keras
import tensorflow as tf

from zoo.flows.steps.planar import PlanarBijector, PlanarTransform
from zoo.nn.made import MADE
from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder

TRAINING = {
    "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
    "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
}


class FlowPosteriorVAE(VariationalAutoencoder):
    """A VAE whose posterior is the encoder's Gaussian pushed through a flow.

    z_0 = mean + exp(log_scale) eps, z_K = f_K(...f_1(z_0)), and by the change of
    variables

        log q_K(z_K|x) = log q_0(z_0|x) - sum_k log |det df_k/dz_{k-1}|

    (Rezende & Mohamed 2015, eq. 13), so the ELBO is E[log p(x|z_K) + log p(z_K)
    - log q_K(z_K|x)]. The KL term is that Monte Carlo estimate, log q_K - log p
    at the sample (no closed form once the posterior is a flow); the prior is
    N(0, I). Subclasses define the steps in :meth:`transform_posterior`.

    Args:
        num_flows: K, the number of flow steps.
        (others): as :class:`~zoo.vae.base.VariationalAutoencoder`.
    """

    analytic_kl = False

    def __init__(self, num_flows=4, **kwargs):
        self.num_flows = int(num_flows)
        if self.num_flows < 1:
            raise ValueError(f"{type(self).__name__}: expected num_flows >= 1, got {num_flows}")
        super().__init__(**kwargs)

    def latent_mean(self, x, num_samples=16, seed=0):
        """E_q[z_K|x], by averaging `num_samples` posterior draws (for active units)."""
        observed = self.deterministic_observed(x)
        z = self.infer(observed, self.stateless_seed(seed), num_samples)["z"]
        return tf.reduce_mean(z, axis=0)


@register(
    "planar_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, num_flows=8),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512, num_flows=16),
    },
    training=TRAINING,
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class PlanarVAE(FlowPosteriorVAE):
    """A VAE with K planar flows on its posterior, their parameters from the encoder.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
    https://arxiv.org/abs/1505.05770, Sec. 4.1 (planar flows, eq. 10-12) and
    Sec. 6 (the flow's parameters are outputs of the inference network, one set
    per example). Each step is the zoo's :class:`PlanarBijector`
    ``f(z) = z + u_hat tanh(w^T z + b)`` with the invertibility constraint of
    Appendix A.1; its log-det is ``log |1 + u_hat^T psi(z)|`` (eq. 12). Step k's
    (w, u, b) are a learned set shared by all examples (a
    :class:`PlanarTransform`, which starts as the identity with w a random unit
    vector) plus the encoder's per-example offsets: the constraint divides by
    ``||w||^2``, and an encoder output alone is exactly 0 wherever its last
    ReLU layer is (which made NaNs at initialisation).

    Args: as :class:`FlowPosteriorVAE`.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "planar_vae")
        super().__init__(**kwargs)

    def posterior_units(self):
        """The Gaussian's mean and log-scale, then (w, u, b) for each step."""
        return 2 * self.latent_dim + self.num_flows * (2 * self.latent_dim + 1)

    def make_networks(self):
        super().make_networks()
        self.flows = [PlanarTransform(self.latent_dim, name=f"planar_{k}")
                      for k in range(self.num_flows)]

    def transform_posterior(self, z, observed, context):
        d = self.latent_dim
        offsets = tf.reshape(context[:, 2 * d:], [-1, self.num_flows, 2 * d + 1])
        log_det = tf.zeros(tf.shape(z)[:-1])
        for k, shared in enumerate(self.flows):
            step = PlanarBijector(shared.w + offsets[:, k, :d],
                                  shared.u + offsets[:, k, d:2 * d],
                                  shared.b + offsets[:, k, 2 * d], name=f"planar_{k}")
            log_det += step.forward_log_det_jacobian(z, event_ndims=1)
            z = step.forward(z)
        return z, log_det


@register(
    "iaf_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, num_flows=2,
                       flow_hidden_units=64, context_units=32),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512, num_flows=4,
                              flow_hidden_units=256, context_units=64),
    },
    training=TRAINING,
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class IAFVAE(FlowPosteriorVAE):
    """A VAE with inverse autoregressive flow on its posterior.

    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved
    Variational Inference with Inverse Autoregressive Flow", NeurIPS 2016,
    https://arxiv.org/abs/1606.04934, Sec. 4 and Algorithm 1. The encoder gives
    the Gaussian's (mean, log_scale) and a context h; each of the T steps is

        [m, s] = AutoregressiveNN_t(z; h),  sigma = sigmoid(s + 2),
        z <- sigma * z + (1 - sigma) * m,   log-det += sum(log sigma)

    (eq. 14, the numerically stable LSTM-type update), with the zoo's
    :class:`MADE` (given h through its context input) as the autoregressive
    network, the variable order reversed between steps. The MADE's output layer
    starts at zero, so each step starts near the identity (sigma = sigmoid(2)).

    Args:
        flow_hidden_units: width of each MADE's hidden layer.
        context_units: size of the context h from the encoder.
        (others): as :class:`FlowPosteriorVAE`.
    """

    FORGET_BIAS = 2.0

    def __init__(self, flow_hidden_units=64, context_units=32, **kwargs):
        kwargs.setdefault("name", "iaf_vae")
        self.flow_hidden_units = int(flow_hidden_units)
        self.context_units = int(context_units)
        super().__init__(**kwargs)

    def posterior_units(self):
        return 2 * self.latent_dim + self.context_units

    def make_networks(self):
        super().make_networks()
        orders = ("left-to-right", "right-to-left")
        self.flows = [MADE(self.latent_dim, self.flow_hidden_units, num_hidden=1, params=2,
                           input_order=orders[t % 2], context_size=self.context_units,
                           name=f"iaf_{t}")
                      for t in range(self.num_flows)]

    def transform_posterior(self, z, observed, context):
        h = context[:, 2 * self.latent_dim:]
        h = tf.broadcast_to(h, tf.concat([tf.shape(z)[:-1], [self.context_units]], 0))
        log_det = tf.zeros(tf.shape(z)[:-1])
        for made in self.flows:
            m, s = tf.unstack(made(z, context=h), num=2, axis=-1)
            sigma = tf.sigmoid(s + self.FORGET_BIAS)
            z = sigma * z + (1.0 - sigma) * m
            log_det += tf.reduce_sum(tf.math.log_sigmoid(s + self.FORGET_BIAS), axis=-1)
        return z, log_det
