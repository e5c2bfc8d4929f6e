"""The Gaussian VAE (Kingma & Welling 2014), with a beta weight (Higgins et al. 2017)."""

import math

import keras
import tensorflow as tf

from zoo.base import GenerativeModel, on_batches
from zoo.vae.conv_decoder import ConvDecoder
from zoo.vae.conv_encoder import ConvEncoder
from zoo.metrics.likelihood import bits_per_dim
from zoo.preprocessing import binarize, to_symmetric
from zoo.registry import register
from zoo.vae.likelihoods import (
    bernoulli_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_sample,
)

OBSERVATIONS = ("logistic", "bernoulli")


@register(
    "vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class GaussianVAE(GenerativeModel):
    """Variational autoencoder with a diagonal Gaussian posterior and prior N(0, I).

    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    https://arxiv.org/abs/1312.6114; the beta weight on the KL term: Higgins et
    al., "beta-VAE", ICLR 2017, https://openreview.net/forum?id=Sy2fzU9gl.

    An encoder gives q(z|x) = N(mean, diag(exp(log_scale))^2); a decoder gives
    p(x|z) over the image's discrete levels. The evidence lower bound

        ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) <= log p(x)

    is estimated with one reparameterised sample z = mean + exp(log_scale) eps
    for the first term, and the KL in closed form (Appendix B of the paper).
    Training minimises ``reconstruction + beta * kl``; with ``beta = 1`` that is
    the negative ELBO, an upper bound on the NLL, and ``bits_per_dim`` reports
    the negative ELBO (not the beta-weighted loss) in bits per dimension.

    Observation models p(x|z) (``observation``):

    * ``"logistic"``: a discretized logistic per pixel over the ``num_levels``
      integer levels (PixelCNN++, Salimans et al. 2017), with a learned location
      and log-scale per pixel. It models the raw levels themselves, so its
      bits/dim bound the NLL of the discrete data, in the same units as a
      dequantized flow's bits/dim.
    * ``"bernoulli"``: pixels binarized with probability level / (L - 1)
      (dynamic binarization; stateless from a seed at evaluation), a Bernoulli
      per pixel. Its bits/dim are those of binarized data, not comparable with
      the logistic's.

    Losses (``loss_names``): ``loss`` (reconstruction + beta kl, optimised),
    ``reconstruction`` (-E_q log p(x|z), nats per example), ``kl`` (nats per
    example), ``bits_per_dim`` ((reconstruction + kl) / (D ln 2)).

    Args:
        data_shape: ``(H, W, C)`` with H and W divisible by 4.
        num_levels: intensity levels of the raw images (17 for digits, 256 for
            8-bit images).
        latent_dim: dimension of z.
        filters: channels of the first encoder convolution (and of the last
            decoder feature map).
        hidden_units: width of the dense layers of encoder and decoder.
        observation: ``"logistic"`` or ``"bernoulli"``, the model of p(x|z).
        beta: weight of the KL term in the training loss (1: the ELBO).
    """

    family = "vae"
    likelihood = "bound"
    loss_names = ("loss", "reconstruction", "kl", "bits_per_dim")

    def __init__(
        self,
        data_shape=(8, 8, 1),
        num_levels=17,
        latent_dim=8,
        filters=32,
        hidden_units=256,
        observation="logistic",
        beta=1.0,
        **kwargs,
    ):
        kwargs.setdefault("name", "vae")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.observation = str(observation)
        self.beta = float(beta)
        if len(self.data_shape) != 3:
            raise ValueError(f"GaussianVAE: expected data_shape (H, W, C), got {self.data_shape}")
        if self.num_levels is None or self.num_levels < 2:
            raise ValueError(
                f"GaussianVAE: expected num_levels >= 2 (raw image levels), got {num_levels}"
            )
        if self.observation not in OBSERVATIONS:
            raise ValueError(
                f"GaussianVAE: expected observation in {OBSERVATIONS}, got {self.observation!r}"
            )
        if self.latent_dim < 1:
            raise ValueError(f"GaussianVAE: expected latent_dim >= 1, got {self.latent_dim}")
        if self.beta < 0:
            raise ValueError(f"GaussianVAE: expected beta >= 0, got {self.beta}")
        h, w, c = self.data_shape
        params_per_pixel = 2 if self.observation == "logistic" else 1
        self.encoder = ConvEncoder(self.filters, self.hidden_units, 2 * self.latent_dim,
                                   name="encoder")
        self.decoder = ConvDecoder((h, w, params_per_pixel * c), self.filters,
                                   self.hidden_units, name="decoder")
        self.build_model()

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    @property
    def value_range(self):
        """Raw levels: integers in [0, num_levels - 1]."""
        return (0.0, float(self.num_levels - 1))

    def validate_levels(self, x, where):
        """``validate_inputs`` plus a check that levels are integers (the VAE models
        the discrete data)."""
        return self.check_batch(x, where, self.data_shape, self.value_range,
                                what="raw pixel values", integers=True)

    # ---------------------------------------------------------------- model
    def observed(self, x, seed):
        """What the decoder models: the levels, or their binarization (drawn from
        the stateless `seed`)."""
        if self.observation == "bernoulli":
            return binarize(x, self.num_levels, seed=seed)
        return x

    def encoder_input(self, observed):
        """Observed values -> [-1, 1], what the encoder sees."""
        if self.observation == "bernoulli":
            return 2.0 * observed - 1.0
        return to_symmetric(observed, self.num_levels)

    def posterior(self, observed):
        """q(z|x): (mean, log_scale), each (batch, latent_dim)."""
        params = self.encoder(self.encoder_input(observed))
        mean, log_scale = tf.split(params, 2, axis=-1)
        return mean, log_scale

    @staticmethod
    def kl_divergence(mean, log_scale):
        """KL(N(mean, exp(log_scale)^2) || N(0, I)) per example, in closed form:
        1/2 sum(mean^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling, Appendix B)."""
        return 0.5 * tf.reduce_sum(
            tf.square(mean) + tf.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale, axis=-1
        )

    def decoder_log_prob(self, observed, z):
        """log p(x|z) per example (nats), summed over pixels."""
        params = self.decoder(z)
        if self.observation == "bernoulli":
            log_p = bernoulli_log_prob(observed, params)
        else:
            loc, log_scale = tf.split(params, 2, axis=-1)
            log_p = discretized_logistic_log_prob(observed, loc, log_scale, self.num_levels)
        return tf.reduce_sum(tf.reshape(log_p, [tf.shape(observed)[0], -1]), axis=-1)

    def elbo_terms(self, x, seed=None):
        """(reconstruction, kl) per example: -log p(x|z) at one z ~ q(z|x), and the KL.

        The draws (binarization, posterior sample) come from the stateless `seed`
        (an int or shape [2]), or from the training stream ``self.rng`` if None.
        """
        if seed is None:
            binarize_seed, eps_seed = self.rng.next_seed(), self.rng.next_seed()
        else:
            binarize_seed, eps_seed = tf.unstack(
                tf.random.experimental.stateless_split(self.stateless_seed(seed), 2))
        eps = tf.random.stateless_normal([tf.shape(x)[0], self.latent_dim], seed=eps_seed)
        observed = self.observed(x, seed=binarize_seed)
        mean, log_scale = self.posterior(observed)
        z = mean + tf.exp(log_scale) * eps
        return -self.decoder_log_prob(observed, z), self.kl_divergence(mean, log_scale)

    def compute_losses(self, x, training=False):
        reconstruction, kl = self.elbo_terms(x)
        reconstruction, kl = tf.reduce_mean(reconstruction), tf.reduce_mean(kl)
        return {
            "loss": reconstruction + self.beta * kl,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": bits_per_dim(reconstruction + kl, self.event_size),
        }

    def call(self, x):
        """The decoded posterior mean (touches every weight; used to build)."""
        mean, _ = self.posterior(self.observed(x, seed=tf.constant([0, 0])))
        return self.decoder(mean)

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def evidence(self, x, seed=None):
        """The ELBO per example and its two terms: ``{"elbo", "reconstruction",
        "kl"}`` (nats), from one posterior sample drawn statelessly from `seed` (a
        random one if None). Images are raw integer levels."""
        reconstruction, kl = self.elbo_terms(self.validate_levels(x, "elbo"),
                                             self.stateless_seed(seed))
        return {"elbo": -reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def elbo(self, x, seed=None):
        """The evidence lower bound on log p(x), per example (nats; a bound, not
        the log-likelihood), from one posterior sample drawn statelessly from
        `seed` (a random one if None). Images are raw integer levels."""
        return self.evidence(x, seed)["elbo"]

    def nll(self, x, seed=None):
        """The negative ELBO per example (nats), an upper bound on -log p(x)."""
        return -self.elbo(x, seed)

    @on_batches("data")
    def importance_weighted_bound(self, x, num_samples=64, seed=None):
        """The importance-weighted bound (Burda et al. 2016,
        https://arxiv.org/abs/1509.00519) on log p(x), per example:

            log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x),

        which is >= the ELBO in expectation and tightens to log p(x) as K grows.
        """
        x = self.validate_levels(x, "importance_weighted_bound")
        seed = self.stateless_seed(seed)
        binarize_seed, eps_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        observed = self.observed(x, seed=binarize_seed)
        mean, log_scale = self.posterior(observed)
        batch = tf.shape(x)[0]
        eps = tf.random.stateless_normal([num_samples, batch, self.latent_dim], seed=eps_seed)
        z = mean + tf.exp(log_scale) * eps
        log_prior = -0.5 * tf.reduce_sum(tf.square(z) + math.log(2 * math.pi), axis=-1)
        log_q = -0.5 * tf.reduce_sum(tf.square(eps) + math.log(2 * math.pi), axis=-1) \
            - tf.reduce_sum(log_scale, axis=-1)
        repeated = tf.tile(observed[None], [num_samples] + [1] * (len(self.data_shape) + 1))
        flat = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
        log_likelihood = tf.reshape(
            self.decoder_log_prob(flat(repeated), flat(z)), [num_samples, batch])
        log_weights = log_likelihood + log_prior - log_q
        return tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)

    @on_batches("data")
    def encode(self, x):
        """The posterior q(z|x) of raw levels `x`: (mean, log_scale). Bernoulli
        models see the pixels thresholded at half range (deterministic)."""
        x = self.validate_levels(x, "encode")
        if self.observation == "bernoulli":
            observed = tf.cast(x > (self.num_levels - 1) / 2.0, tf.float32)
        else:
            observed = x
        return self.posterior(observed)

    @on_batches("latent")
    def decode(self, z):
        """Latent z -> the decoder's mean image in levels [0, num_levels - 1]
        (logistic: its location; Bernoulli: (L - 1) times the pixel's probability)."""
        params = self.decoder(self.check_batch(z, "decode", (self.latent_dim,), what="z"))
        if self.observation == "bernoulli":
            return (self.num_levels - 1.0) * tf.sigmoid(params)
        loc, _ = tf.split(params, 2, axis=-1)
        return tf.clip_by_value((loc + 1.0) * (self.num_levels - 1.0) / 2.0,
                                0.0, self.num_levels - 1.0)

    def draw_samples(self, n, seed):
        """Images drawn from the model: z ~ N(0, I), then x ~ p(x|z), as integer
        levels (Bernoulli: 0 or num_levels - 1)."""
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed=z_seed)
        params = self.decoder(z)
        if self.observation == "bernoulli":
            u = tf.random.stateless_uniform(tf.shape(params), seed=x_seed)
            return (self.num_levels - 1.0) * tf.cast(u < tf.sigmoid(params), tf.float32)
        loc, log_scale = tf.split(params, 2, axis=-1)
        return discretized_logistic_sample(loc, log_scale, self.num_levels, x_seed)

    @classmethod
    def from_config(cls, config):
        # Checkpoints written before zoo 0.2 name the observation model `likelihood`.
        if "likelihood" in config:
            config = {**config, "observation": config["likelihood"]}
            del config["likelihood"]
        return super().from_config(config)

    def data_signatures(self):
        def encode(x):
            mean, log_scale = self.encode(x)
            return {"mean": mean, "log_scale": log_scale}

        return {
            "elbo": (lambda x, seed: self.evidence(x, seed),
                     [self.data_spec(), tf.TensorSpec([], tf.int32, name="seed")]),
            "encode": (encode, [self.data_spec()]),
            "decode": (lambda z: {"x": self.decode(z)},
                       [tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")]),
        }
