"""VAEs with learned priors: a Gaussian mixture, and the VampPrior."""

import keras
import tensorflow as tf

from zoo.registry import register
from zoo.vae.base import LOG_2PI, VariationalAutoencoder

TRAINING = {
    "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
    "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
}


def diagonal_normal_log_prob(z, mean, log_scale):
    """log N(z; mean, diag(exp(log_scale))^2), summed over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square((z - mean) * tf.exp(-log_scale)) + LOG_2PI
                                + 2.0 * log_scale, axis=-1)


def mixture_log_prob(z, logits, means, log_scales):
    """log sum_c pi_c N(z; means_c, exp(log_scales_c)^2) for z (..., D) and C
    components (C, D), pi = softmax(logits)."""
    per_component = diagonal_normal_log_prob(z[..., None, :], means, log_scales)
    return tf.reduce_logsumexp(per_component + tf.nn.log_softmax(logits), axis=-1)


def draw_mixture(n, seed, logits, means, log_scales):
    """`n` draws from the mixture: a component c ~ pi, then N(means_c, scales_c^2)."""
    c_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    c = tf.random.stateless_categorical(tf.broadcast_to(tf.nn.log_softmax(logits)[None],
                                                        tf.stack([n, tf.shape(logits)[0]])),
                                        1, seed=c_seed)[:, 0]
    eps = tf.random.stateless_normal(tf.stack([n, tf.shape(means)[1]]), seed=z_seed)
    return tf.gather(means, c) + tf.exp(tf.gather(log_scales, c)) * eps


class LearnedPriorVAE(VariationalAutoencoder):
    """A Gaussian-posterior VAE with a mixture prior: the KL has no closed form and
    is the Monte Carlo ``log q(z|x) - log p(z)`` at the posterior sample (an
    unbiased estimate of KL(q || p); Tomczak & Welling 2018, eq. 6).

    Args:
        num_components: C, the number of mixture components (or pseudo-inputs).
        (others): as :class:`~zoo.vae.base.VariationalAutoencoder`.
    """

    analytic_kl = False

    def __init__(self, num_components=10, **kwargs):
        self.num_components = int(num_components)
        if self.num_components < 1:
            raise ValueError(f"{type(self).__name__}: expected num_components >= 1, got "
                             f"{num_components}")
        super().__init__(**kwargs)

    def prior_components(self):
        """(logits (C,), means (C, D), log_scales (C, D)) of the prior's mixture."""
        raise NotImplementedError

    def log_prior(self, z):
        return mixture_log_prob(z, *self.prior_components())

    def draw_prior(self, n, seed):
        return draw_mixture(n, seed, *self.prior_components())


@register(
    "mixture_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, num_components=10),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512, num_components=10),
    },
    training=TRAINING,
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class MixturePriorVAE(LearnedPriorVAE):
    """A VAE whose prior is a learned mixture of C diagonal Gaussians.

    p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)), with the weights' logits, the
    means and the log-scales learned with the rest by maximising the ELBO (the
    "mixture of Gaussians prior" baseline of Tomczak & Welling 2018,
    https://arxiv.org/abs/1705.07120, Sec. 2.2; Dilokthanakul et al. 2016). The
    KL is estimated by Monte Carlo (:class:`LearnedPriorVAE`). The means start
    spread as N(0, I) draws and the scales at 1, so the prior starts close to
    N(0, I) but with its modes apart.

    Args: as :class:`LearnedPriorVAE`.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "mixture_vae")
        super().__init__(**kwargs)

    def make_networks(self):
        super().make_networks()
        shape = (self.num_components, self.latent_dim)
        self.prior_logits = self.add_weight(name="prior_logits", shape=(self.num_components,),
                                            initializer="zeros")
        self.prior_means = self.add_weight(name="prior_means", shape=shape,
                                           initializer=keras.initializers.RandomNormal())
        self.prior_log_scales = self.add_weight(name="prior_log_scales", shape=shape,
                                                initializer="zeros")

    def prior_components(self):
        return self.prior_logits, self.prior_means, self.prior_log_scales


@register(
    "vamp_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, num_components=50),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512,
                              num_components=200),
    },
    training=TRAINING,
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class VampPriorVAE(LearnedPriorVAE):
    """A VAE with the VampPrior: the mixture of the posteriors of C pseudo-inputs.

    Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018,
    https://arxiv.org/abs/1705.07120, eq. 9:

        p(z) = 1/C sum_c q(z | u_c),

    with learned pseudo-inputs u_c shaped like the encoder's input, in [-1, 1]
    (``tanh`` of a free weight, the paper's hard-tanh as a smooth map), so the
    prior is tied to the encoder and learned through it. The KL is estimated by
    Monte Carlo. The pseudo-inputs start as small random values around mid grey,
    as in the paper's initialisation with small Gaussian noise.

    Args: as :class:`LearnedPriorVAE` (C is the number of pseudo-inputs).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "vamp_vae")
        super().__init__(**kwargs)

    def make_networks(self):
        super().make_networks()
        self.pseudo_inputs = self.add_weight(
            name="pseudo_inputs", shape=(self.num_components,) + self.data_shape,
            initializer=keras.initializers.RandomNormal(stddev=0.1))

    def posterior_of_pseudo_inputs(self):
        """(means, log_scales) of q(z|u_c), each (C, latent_dim)."""
        params = self.encoder(tf.tanh(self.pseudo_inputs))
        return tuple(tf.split(params[:, : 2 * self.latent_dim], 2, axis=-1))

    def prior_components(self):
        return (tf.zeros([self.num_components]),) + self.posterior_of_pseudo_inputs()
