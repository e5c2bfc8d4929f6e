"""The Ladder VAE (Sonderby et al. 2016): two stochastic layers, top-down inference."""

import keras
import tensorflow as tf

from zoo.nn.mlp import MLP
from zoo.registry import register
from zoo.vae.base import (
    LOG_2PI,
    VariationalAutoencoder,
    standard_normal_log_prob,
)
from zoo.vae.conv_decoder import ConvDecoder
from zoo.vae.conv_encoder import ConvEncoder
from zoo.validation import on_batches

# The smallest standard deviation of any Gaussian layer (keeps log sigma and the
# KL terms finite however negative the softplus's input).
MIN_SCALE = 1e-4


def gaussian_log_prob(z, mean, scale):
    """log N(z; mean, diag(scale^2)), summed over the last axis (broadcasting)."""
    return -0.5 * tf.reduce_sum(tf.square((z - mean) / scale) + 2.0 * tf.math.log(scale)
                                + LOG_2PI, axis=-1)


def gaussian_kl(mean_q, scale_q, mean_p, scale_p):
    """KL(N(mean_q, scale_q^2) || N(mean_p, scale_p^2)) of diagonal Gaussians in
    closed form, summed over the last axis:
    sum log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2."""
    return tf.reduce_sum(
        tf.math.log(scale_p) - tf.math.log(scale_q)
        + 0.5 * (tf.square(scale_q) + tf.square(mean_q - mean_p)) / tf.square(scale_p) - 0.5,
        axis=-1)


def precision_weighted(mean_hat, scale_hat, mean_p, scale_p):
    """The precision-weighted combination of the bottom-up N(mean_hat, scale_hat^2)
    and the top-down N(mean_p, scale_p^2) (Sonderby et al. 2016, Sec. 2.2):

        sigma_q^2 = 1 / (sigma_hat^-2 + sigma_p^-2),
        mu_q = (mu_hat sigma_hat^-2 + mu_p sigma_p^-2) sigma_q^2,

    the normalised product of the two densities. Computed with variances rather
    than precisions (the same numbers, no 1 / sigma^2 of a tiny sigma):
    mu_q = (mu_hat s_p^2 + mu_p s_hat^2) / (s_hat^2 + s_p^2), sigma_q = s_hat s_p /
    sqrt(s_hat^2 + s_p^2). Returns (mu_q, sigma_q), broadcasting its arguments.
    """
    var_hat, var_p = tf.square(scale_hat), tf.square(scale_p)
    total = var_hat + var_p
    mean = (mean_hat * var_p + mean_p * var_hat) / total
    return mean, scale_hat * scale_p * tf.math.rsqrt(total)


@register(
    "ladder_vae",
    presets={
        "digits": dict(latent_dim=8, top_latent_dim=4, filters=32, hidden_units=256,
                       kl_warmup_steps=1000),
        "fashion_mnist": dict(latent_dim=32, top_latent_dim=16, filters=32, hidden_units=512,
                              kl_warmup_steps=2000),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class LadderVAE(VariationalAutoencoder):
    """A two-layer hierarchical VAE with ladder (top-down) inference.

    Sonderby, Raiko, Maaloe, Sonderby & Winther, "Ladder Variational
    Autoencoders", NeurIPS 2016, https://arxiv.org/abs/1602.02282, Sec. 2,
    eq. 14-21, with two stochastic layers: z1 (``latent_dim``, next to the data)
    and z2 (``top_latent_dim``, on top).

    Generative model: p(z2) = N(0, I); p(z1|z2) = N(mu_p, sigma_p^2), mu_p and
    sigma_p = softplus(.) from an MLP of z2; p(x|z1) the decoder's observation
    model (those of :class:`~zoo.vae.base.VariationalAutoencoder`).

    Inference: a deterministic bottom-up pass (eq. 14-16) gives d1 (the
    convolutional encoder) and d2 = MLP(d1), and from each the Gaussian
    parameters (mu_hat_i, sigma_hat_i = softplus(Linear(d_i))). Then top-down:
    q(z2|x) = N(mu_hat_2, sigma_hat_2^2); given z2, q(z1|x, z2) is the
    precision-weighted combination of the bottom-up N(mu_hat_1, sigma_hat_1^2)
    and the top-down p(z1|z2) (:func:`precision_weighted`):
    sigma_q^2 = 1 / (sigma_hat^-2 + sigma_p^-2), mu_q = (mu_hat sigma_hat^-2 +
    mu_p sigma_p^-2) sigma_q^2. The generative and inference models share
    the top-down MLP. Every sigma is at least ``MIN_SCALE``.

    The bound, from one sample z2 ~ q(z2|x), z1 ~ q(z1|x, z2):

        ELBO = E_q log p(x|z1) - KL(q(z2|x) || p(z2))
               - E_q(z2|x) KL(q(z1|x, z2) || p(z1|z2)),

    both KL terms in closed form, the second at the sampled z2 (``kl_names``:
    ``kl_z1``, ``kl_z2``). The importance-weighted bound uses log q = log q(z2|x)
    + log q(z1|x, z2) and log p(z) = log p(z2) + log p(z1|z2) at the samples.
    The KL warm-up of Sec. 2.3 is ``kl_warmup_steps``. Unlike the paper, the
    deterministic layers have no batch normalization and use ReLU.

    ``encode(x)`` gives ``(mean_z1, log_scale_z1, mean_z2, log_scale_z2)``: q(z2|x),
    and q(z1|x, z2) at z2 = its mean; ``reconstruct`` decodes that mean of z1;
    ``decode(z)`` takes z1 (what the decoder sees), of shape (batch, latent_dim).
    Samples: z2 ~ N(0, I), z1 ~ p(z1|z2), x ~ p(x|z1).

    Args:
        data_shape: ``(H, W, C)`` with H and W divisible by 4.
        num_levels: intensity levels of the raw images.
        latent_dim: dimension of z1, the latent next to the data.
        top_latent_dim: dimension of z2, the top latent.
        filters: channels of the first encoder convolution (and of the last
            decoder feature map).
        hidden_units: width of the dense layers (encoder, decoder, and the MLPs of
            the bottom-up and top-down passes).
        observation: the model of p(x|z1) (see the base class).
        beta: weight of the KL terms in the training loss (1: the ELBO).
        kl_warmup_steps: optimizer steps over which the KL weight rises linearly
            from 0 to ``beta`` (0: none).
        observation_scale: the scale of ``"gaussian_fixed"`` (in [0, 1] units).
    """

    kl_names = ("kl_z1", "kl_z2")

    def __init__(self, top_latent_dim=4, **kwargs):  # and VariationalAutoencoder's
        kwargs.setdefault("name", "ladder_vae")
        self.top_latent_dim = int(top_latent_dim)
        if self.top_latent_dim < 1:
            raise ValueError(f"{type(self).__name__}: expected top_latent_dim >= 1, got "
                             f"{top_latent_dim}")
        super().__init__(**kwargs)

    # ------------------------------------------------------------- networks
    def make_networks(self):
        """The decoder (the base's), and the ladder: the bottom-up encoder of d1, the
        heads of the bottom-up Gaussians, and the top-down MLP of p(z1|z2)."""
        h, w, c = self.data_shape
        self.decoder = ConvDecoder((h, w, self.observation_model.params_per_channel * c), self.filters,
                                   self.hidden_units, name="decoder")
        # d1 = ReLU(ConvEncoder(x)); layer 1's bottom-up Gaussian is Linear(d1).
        self.encoder = ConvEncoder(self.filters, self.hidden_units, self.hidden_units,
                                   name="encoder")
        self.bottom_up_1 = keras.layers.Dense(2 * self.latent_dim, name="bottom_up_1")
        # d2 = ReLU(Dense(d1)) and layer 2's bottom-up Gaussian Linear(d2).
        self.bottom_up_2 = MLP(self.hidden_units, 1, 2 * self.top_latent_dim, zero_init=False,
                               name="bottom_up_2")
        self.top_down_1 = MLP(self.hidden_units, 1, 2 * self.latent_dim, zero_init=False,
                              name="top_down_1")

    @staticmethod
    def gaussian(params):
        """(mean, sigma) from a linear layer's output: sigma = softplus + MIN_SCALE."""
        mean, raw = tf.split(params, 2, axis=-1)
        return mean, tf.nn.softplus(raw) + MIN_SCALE

    def bottom_up(self, observed):
        """The deterministic bottom-up pass (eq. 14-16): (mu_hat_1, sigma_hat_1),
        (mu_hat_2, sigma_hat_2), each (B, dim)."""
        d1 = tf.nn.relu(self.encoder(self.encoder_input(observed)))
        return self.gaussian(self.bottom_up_1(d1)), self.gaussian(self.bottom_up_2(d1))

    def top_down(self, z2):
        """p(z1|z2): (mu_p, sigma_p) for z2 of shape (..., top_latent_dim)."""
        return self.gaussian(self.top_down_1(z2))

    # ---------------------------------------------------- posterior, prior
    def infer(self, observed, seed, num_samples, training=False):
        """`num_samples` draws of (z2, z1) from q(z2|x) q(z1|x, z2) per example.

        Returns a dict of ``z`` (z1, what the decoder takes: (S, B, latent_dim)),
        ``z2`` (S, B, top_latent_dim), ``log_q`` = log q(z2|x) + log q(z1|x, z2) and
        ``log_prior`` = log p(z2) + log p(z1|z2) (S, B), ``kl_z2`` = KL(q(z2|x) ||
        N(0, I)) and ``kl_z1`` = KL(q(z1|x, z2) || p(z1|z2)) at the sampled z2 (S, B).
        """
        (mean_1, scale_1), (mean_2, scale_2) = self.bottom_up(observed)
        seed_2, seed_1 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        batch = tf.shape(observed)[0]
        eps_2 = tf.random.stateless_normal(
            tf.stack([num_samples, batch, self.top_latent_dim]), seed=seed_2)
        z2 = mean_2 + scale_2 * eps_2
        prior_mean, prior_scale = self.top_down(z2)
        q_mean, q_scale = precision_weighted(mean_1, scale_1, prior_mean, prior_scale)
        eps_1 = tf.random.stateless_normal(
            tf.stack([num_samples, batch, self.latent_dim]), seed=seed_1)
        z1 = q_mean + q_scale * eps_1
        log_q = gaussian_log_prob(z2, mean_2, scale_2) + gaussian_log_prob(z1, q_mean, q_scale)
        log_prior = standard_normal_log_prob(z2) + gaussian_log_prob(z1, prior_mean, prior_scale)
        kl_z2 = gaussian_kl(mean_2, scale_2, 0.0, 1.0)
        return {"z": z1, "z2": z2, "log_q": log_q, "log_prior": log_prior,
                "kl_z1": gaussian_kl(q_mean, q_scale, prior_mean, prior_scale),
                "kl_z2": tf.broadcast_to(kl_z2, tf.shape(log_q))}

    def posteriors(self, observed):
        """The posterior's parameters at z2 = its mean: (mean_z1, log_scale_z1,
        mean_z2, log_scale_z2), each (B, dim); z1's is q(z1|x, z2 = mean_z2)."""
        (mean_1, scale_1), (mean_2, scale_2) = self.bottom_up(observed)
        q_mean, q_scale = precision_weighted(mean_1, scale_1, *self.top_down(mean_2))
        return q_mean, tf.math.log(q_scale), mean_2, tf.math.log(scale_2)

    def posterior(self, observed):
        """q(z1|x, z2) at z2 = the mean of q(z2|x): (mean, log_scale), (B, latent_dim)."""
        return self.posteriors(observed)[:2]

    def posterior_mode(self, observed):
        """What ``reconstruct`` decodes: z1's posterior mean at z2's posterior mean."""
        return self.posteriors(observed)[0]

    def log_prior(self, z):
        """Not defined for z1 alone (the base's hook; :meth:`infer` replaces it)."""
        raise NotImplementedError(
            f"{self.name}: the marginal p(z1) of the ladder VAE has no closed form; "
            "infer() gives log p(z2) + log p(z1|z2) at the samples")

    def draw_prior(self, n, seed):
        """`n` draws of z1 from the hierarchical prior: z2 ~ N(0, I), z1 ~ p(z1|z2)."""
        seed_2, seed_1 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z2 = tf.random.stateless_normal(tf.stack([n, self.top_latent_dim]), seed=seed_2)
        mean, scale = self.top_down(z2)
        return mean + scale * tf.random.stateless_normal(tf.shape(mean), seed=seed_1)

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def encode(self, x):
        """The posterior of raw levels `x`: ``(mean_z1, log_scale_z1, mean_z2,
        log_scale_z2)``, q(z2|x) and q(z1|x, z2) at z2 = mean_z2 (Bernoulli models
        see the pixels thresholded at half range, Gaussian ones the bins' centres)."""
        x = self.validate_levels(x, "encode")
        return self.posteriors(self.deterministic_observed(x))

    def check_latents(self, z, where):
        """``decode`` takes z1: (batch, latent_dim)."""
        return self.check_batch(z, where, self.latent_shape, what="z1")

    def encode_signature(self):
        def encode(x):
            mean_1, log_scale_1, mean_2, log_scale_2 = self.encode(x)
            return {"mean_z1": mean_1, "log_scale_z1": log_scale_1,
                    "mean_z2": mean_2, "log_scale_z2": log_scale_2}
        return encode, [self.data_spec()]
