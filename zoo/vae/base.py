"""The VAE family's base class: an encoder q(z|x), a prior p(z) and a decoder p(x|z).

Every VAE of the zoo maximises a lower bound on log p(x) (Kingma & Welling 2014,
https://arxiv.org/abs/1312.6114). A variant changes one piece: the posterior (a
flow on it, discrete codes), the prior (a mixture, the VampPrior), the bound (the
importance-weighted one), or the weights of its terms (beta, a KL warm-up). The
base class holds the rest: the observation models over the data's discrete levels,
the Monte Carlo ELBO with each KL term reported, the importance-weighted bound,
sampling, and the serving signatures.

A subclass overrides :meth:`VariationalAutoencoder.infer` (or the hooks it calls:
:meth:`transform_posterior`, :meth:`log_prior`, :meth:`draw_prior`,
:meth:`kl_estimates`); everything else follows from it.
"""

import math

import numpy as np
import tensorflow as tf

from zoo.base import GenerativeModel
from zoo.metrics.likelihood import bits_per_dim
from zoo.preprocessing import binarize, dequantize, to_symmetric
from zoo.vae.conv_decoder import ConvDecoder
from zoo.vae.conv_encoder import ConvEncoder
from zoo.vae.likelihoods import (
    bernoulli_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_sample,
    gaussian_log_prob,
)
from zoo.validation import on_batches

# The observation models p(x|z) and their decoder outputs per channel.
OBSERVATIONS = {"logistic": 2, "bernoulli": 1, "gaussian": 2, "gaussian_fixed": 1}
LOG_2PI = math.log(2.0 * math.pi)
# Samples per pass of the importance-weighted bound (it loops over chunks of them).
IWAE_CHUNK = 64


def standard_normal_log_prob(z):
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


class VariationalAutoencoder(GenerativeModel):
    """Base class of the VAEs: a convolutional encoder and decoder, a bound on log p(x).

    The default pieces are those of the Gaussian VAE: q(z|x) = N(mean,
    diag(exp(log_scale))^2) from the encoder, prior N(0, I), the KL in closed
    form. For a batch of raw levels x the model estimates

        ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x)

    with one reparameterised posterior sample, and reports the reconstruction
    term and each KL term (``kl_names``) on its own. Training minimises
    ``reconstruction + beta_t * sum(kl)``, ``beta_t = beta * min(1, t /
    kl_warmup_steps)`` at optimizer step t (the warm-up of Bowman et al. 2016 and
    Sonderby et al. 2016; ``kl_warmup_steps = 0``: no warm-up); ``bits_per_dim``
    is always the negative ELBO itself, whatever the weights.

    Observation models p(x|z) (``observation``), each a bound on the NLL of the
    data it names:

    * ``"logistic"``: a discretized logistic per pixel over the ``num_levels``
      levels (Salimans et al. 2017): a bound for the raw discrete data.
    * ``"bernoulli"``: pixels binarized with probability level / (L - 1)
      (dynamic binarization), a Bernoulli per pixel: a bound for the binarized
      data, not comparable with the others.
    * ``"gaussian"`` / ``"gaussian_fixed"``: a Gaussian per pixel, with a learned
      per-pixel scale or the fixed ``observation_scale``, on the uniformly
      dequantized levels scaled to [0, 1): y = (x + u) / L. Since
      ``log P(x) >= E_u log p(y) - D log L`` (Theis et al. 2016), the
      reconstruction term adds ``D log L``, the Jacobian of the scaling: a bound
      for the raw discrete data, in the logistic's units.

    Args:
        data_shape: ``(H, W, C)`` with H and W divisible by 4.
        num_levels: intensity levels of the raw images (17 for digits, 256 for
            8-bit images).
        latent_dim: dimension of z.
        filters: channels of the first encoder convolution (and of the last
            decoder feature map).
        hidden_units: width of the dense layers of encoder and decoder.
        observation: the model of p(x|z), one of :data:`OBSERVATIONS`.
        beta: weight of the KL terms in the training loss (1: the ELBO).
        kl_warmup_steps: optimizer steps over which the KL weight rises linearly
            from 0 to ``beta`` (0: none).
        observation_scale: the scale of ``"gaussian_fixed"`` (in [0, 1] units).
    """

    family = "vae"
    likelihood = "bound"
    # The KL terms, reported one by one (a hierarchical model has one per layer).
    kl_names = ("kl",)
    # Other terms a variant reports (after bits_per_dim).
    extra_loss_names = ()
    # The KL in closed form (True only for a Gaussian q and the prior N(0, I)).
    analytic_kl = True

    def __init_subclass__(cls, **kwargs):
        # The terms of the bound, unless the class names its own.
        super().__init_subclass__(**kwargs)
        if "loss_names" not in cls.__dict__:
            cls.loss_names = ("loss", "reconstruction", *cls.kl_names, "bits_per_dim",
                              *cls.extra_loss_names)

    def __init__(
        self,
        data_shape=(8, 8, 1),
        num_levels=17,
        latent_dim=8,
        filters=32,
        hidden_units=256,
        observation="logistic",
        beta=1.0,
        kl_warmup_steps=0,
        observation_scale=0.1,
        **kwargs,
    ):
        kwargs.setdefault("name", "vae")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.observation = str(observation)
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.observation_scale = float(observation_scale)
        where = type(self).__name__
        if len(self.data_shape) != 3:
            raise ValueError(f"{where}: expected data_shape (H, W, C), got {self.data_shape}")
        if self.num_levels is None or self.num_levels < 2:
            raise ValueError(
                f"{where}: expected num_levels >= 2 (raw image levels), got {num_levels}")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"{where}: expected observation in {tuple(OBSERVATIONS)}, got "
                             f"{self.observation!r}")
        if self.latent_dim < 1:
            raise ValueError(f"{where}: expected latent_dim >= 1, got {self.latent_dim}")
        if not self.beta >= 0:
            raise ValueError(f"{where}: expected beta >= 0, got {self.beta}")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"{where}: expected kl_warmup_steps >= 0, got "
                             f"{self.kl_warmup_steps}")
        if not self.observation_scale > 0:
            raise ValueError(f"{where}: expected observation_scale > 0, got "
                             f"{self.observation_scale}")
        self.make_networks()
        self.build_model()

    # ------------------------------------------------------------- networks
    def posterior_units(self):
        """Encoder outputs: the Gaussian's mean and log-scale (subclasses add more)."""
        return 2 * self.latent_dim

    def make_networks(self):
        """The encoder and decoder (subclasses add their own layers after them)."""
        h, w, c = self.data_shape
        self.encoder = ConvEncoder(self.filters, self.hidden_units, self.posterior_units(),
                                   name="encoder")
        self.decoder = ConvDecoder((h, w, OBSERVATIONS[self.observation] * c), self.filters,
                                   self.hidden_units, name="decoder")

    @property
    def encoder_network(self):
        """The encoder, by the name ``optimizer_terms`` uses (aae, vae_gan)."""
        return self.encoder

    @property
    def decoder_network(self):
        return self.decoder

    def call(self, x):
        """The decoded posterior (touches every weight; used to build)."""
        observed = self.observed(x, seed=tf.constant([0, 0]))
        latents = self.infer(observed, tf.constant([0, 0]), 1)
        return self.decoder_params(latents["z"][0])

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    # ------------------------------------------------------------ the data
    @property
    def value_range(self):
        """Raw levels: integers in [0, num_levels - 1]."""
        return (0.0, float(self.num_levels - 1))

    def validate_levels(self, x, where):
        """``validate_inputs`` plus a check that levels are integers (the VAE models
        the discrete data)."""
        return self.check_batch(x, where, self.data_shape, self.value_range,
                                what="raw pixel values", integers=True)

    def observed(self, x, seed):
        """What the decoder models, drawn from the stateless `seed`: the levels,
        their binarization, or (Gaussian) the dequantized levels in [0, 1)."""
        if self.observation == "bernoulli":
            return binarize(x, self.num_levels, seed=seed)
        if self.observation.startswith("gaussian"):
            return dequantize(x, seed) / self.num_levels
        return x

    def deterministic_observed(self, x):
        """``observed`` without noise (for ``encode``/``reconstruct``): pixels
        thresholded at half range, or the bins' centres."""
        if self.observation == "bernoulli":
            return tf.cast(x > (self.num_levels - 1) / 2.0, tf.float32)
        if self.observation.startswith("gaussian"):
            return (x + 0.5) / self.num_levels
        return x

    def encoder_input(self, observed):
        """Observed values -> [-1, 1], what the encoder sees."""
        if self.observation == "logistic":
            return to_symmetric(observed, self.num_levels)
        return 2.0 * observed - 1.0

    def decoder_log_prob(self, observed, z):
        """log p(x|z) per example (nats), summed over pixels.

        `observed` is a batch (B, H, W, C); `z` is (B, ...) or (S, B, ...) for S
        samples per example, which gives (S, B).
        """
        samples = z.shape.rank == len(self.latent_shape) + 2
        flat = tf.reshape(z, tf.concat([[-1], tf.shape(z)[2:]], 0)) if samples else z
        params = self.decoder_params(flat)
        if samples:
            params = tf.reshape(params, tf.concat([tf.shape(z)[:2], tf.shape(params)[1:]], 0))
        log_p = self.observation_log_prob(observed, params)
        return tf.reduce_sum(log_p, axis=[-3, -2, -1])

    def decoder_params(self, z):
        """The decoder's per-pixel parameters for a batch of latents (B, ...)."""
        return self.decoder(z)

    def observation_log_prob(self, observed, params):
        """log p per pixel of `observed` under the decoder's `params` (broadcasting)."""
        if self.observation == "bernoulli":
            return bernoulli_log_prob(tf.broadcast_to(observed, tf.shape(params)), params)
        if self.observation == "logistic":
            loc, log_scale = tf.split(params, 2, axis=-1)
            return discretized_logistic_log_prob(
                tf.broadcast_to(observed, tf.shape(loc)), loc, log_scale, self.num_levels)
        if self.observation == "gaussian":
            loc, log_scale = tf.split(params, 2, axis=-1)
        else:
            loc, log_scale = params, tf.fill(tf.shape(params), math.log(self.observation_scale))
        return gaussian_log_prob(observed, loc, log_scale) - math.log(self.num_levels)

    def decoder_mean(self, params):
        """The decoder's mean image in levels [0, num_levels - 1]."""
        top = self.num_levels - 1.0
        if self.observation == "bernoulli":
            return top * tf.sigmoid(params)
        loc = tf.split(params, 2, axis=-1)[0] if OBSERVATIONS[self.observation] == 2 else params
        if self.observation == "logistic":
            return tf.clip_by_value((loc + 1.0) * top / 2.0, 0.0, top)
        return tf.clip_by_value(loc * self.num_levels - 0.5, 0.0, top)

    def decoder_sample(self, params, seed):
        """Integer levels drawn from p(x|z) (Bernoulli: 0 or num_levels - 1)."""
        top = self.num_levels - 1.0
        if self.observation == "bernoulli":
            u = tf.random.stateless_uniform(tf.shape(params), seed=seed)
            return top * tf.cast(u < tf.sigmoid(params), tf.float32)
        if self.observation == "logistic":
            loc, log_scale = tf.split(params, 2, axis=-1)
            return discretized_logistic_sample(loc, log_scale, self.num_levels, seed)
        if self.observation == "gaussian":
            loc, log_scale = tf.split(params, 2, axis=-1)
        else:
            loc, log_scale = params, math.log(self.observation_scale)
        y = loc + tf.exp(log_scale) * tf.random.stateless_normal(tf.shape(loc), seed=seed)
        return tf.clip_by_value(tf.floor(y * self.num_levels), 0.0, top)

    # ---------------------------------------------------- posterior, prior
    def posterior(self, observed):
        """The encoder's Gaussian q0(z|x): (mean, log_scale), each (B, latent_dim)."""
        params = self.encoder(self.encoder_input(observed))
        mean, log_scale = tf.split(params[:, : 2 * self.latent_dim], 2, axis=-1)
        return mean, log_scale

    @staticmethod
    def kl_divergence(mean, log_scale):
        """KL(N(mean, exp(log_scale)^2) || N(0, I)) per example, in closed form:
        1/2 sum(mean^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling, Appendix B)."""
        return 0.5 * tf.reduce_sum(
            tf.square(mean) + tf.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale, axis=-1)

    def transform_posterior(self, z, observed, context):
        """A flow on the posterior sample: (z_K, log|det dz_K/dz_0|). None here."""
        return z, tf.zeros(tf.shape(z)[:-1])

    def log_prior(self, z):
        """log p(z), summed over the latent's dimensions: N(0, I) here."""
        return standard_normal_log_prob(z)

    def draw_prior(self, n, seed):
        """`n` latents from the prior."""
        return tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed=seed)

    def kl_estimates(self, mean, log_scale, log_q, log_p):
        """The KL terms per sample: in closed form where ``analytic_kl`` (a Gaussian
        posterior and prior N(0, I)), else the Monte Carlo ``log q(z|x) - log p(z)`` at the sample."""
        if self.analytic_kl:
            return {"kl": tf.broadcast_to(self.kl_divergence(mean, log_scale), tf.shape(log_q))}
        return {"kl": log_q - log_p}

    def infer(self, observed, seed, num_samples, training=False):
        """`num_samples` draws from q(z|x) for each example of `observed`.

        `training` is True in the training step (a relaxed posterior may differ
        there from the one the bounds use).

        Returns a dict of ``z`` (S, B, latent_dim), ``log_q`` and ``log_prior``
        (S, B), and one (S, B) estimate per name of ``kl_names``, whose sum has the
        expectation KL(q(z|x) || p(z)).
        """
        params = self.encoder(self.encoder_input(observed))
        mean, log_scale = tf.split(params[:, : 2 * self.latent_dim], 2, axis=-1)
        eps = tf.random.stateless_normal(
            tf.stack([num_samples, tf.shape(observed)[0], self.latent_dim]), seed=seed)
        z = mean + tf.exp(log_scale) * eps
        log_q = standard_normal_log_prob(eps) - tf.reduce_sum(log_scale, axis=-1)
        z, log_det = self.transform_posterior(z, observed, params)
        log_q = log_q - log_det
        log_p = self.log_prior(z)
        return {"z": z, "log_q": log_q, "log_prior": log_p,
                **self.kl_estimates(mean, log_scale, log_q, log_p)}

    def latent_mean(self, x):
        """E_q[z|x] of raw levels (for active units): the encoder's mean here."""
        return self.posterior(self.deterministic_observed(x))[0]

    # -------------------------------------------------------------- bounds
    def split_seed(self, seed, count):
        """`count` stateless seeds from `seed`, or from the training stream if None."""
        if seed is None:
            return [self.rng.next_seed() for _ in range(count)]
        return tf.unstack(tf.random.experimental.stateless_split(self.stateless_seed(seed),
                                                                 count))

    def elbo_terms(self, x, seed=None, training=False):
        """(reconstruction, {kl name: kl}) per example, from one z ~ q(z|x).

        The draws (data noise, posterior sample) come from the stateless `seed`
        (an int or shape [2]), or from the training stream ``self.rng`` if None.
        """
        data_seed, z_seed = self.split_seed(seed, 2)
        observed = self.observed(x, seed=data_seed)
        latents = self.infer(observed, z_seed, 1, training=training)
        log_likelihood = self.decoder_log_prob(observed, latents["z"])[0]
        return -log_likelihood, {k: latents[k][0] for k in self.kl_names}

    def kl_weight(self, training):
        """beta_t: beta, ramped up over the first ``kl_warmup_steps`` steps of training."""
        if not training or not self.kl_warmup_steps or getattr(self, "optimizer", None) is None:
            return tf.constant(self.beta)
        step = tf.cast(self.optimizer.iterations, tf.float32) + 1.0
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def compute_losses(self, x, training=False):
        reconstruction, kls = self.elbo_terms(x, training=training)
        reconstruction = tf.reduce_mean(reconstruction)
        kls = {k: tf.reduce_mean(v) for k, v in kls.items()}
        kl = tf.add_n(list(kls.values()))
        return {
            "loss": reconstruction + self.kl_weight(training) * kl,
            "reconstruction": reconstruction,
            **kls,
            "bits_per_dim": bits_per_dim(reconstruction + kl, self.event_size),
        }

    def log_weights(self, observed, seed, num_samples):
        """log p(x, z_s) - log q(z_s|x) for `num_samples` posterior draws: (S, B)."""
        latents = self.infer(observed, seed, num_samples)
        return self.decoder_log_prob(observed, latents["z"]) + latents["log_prior"] \
            - latents["log_q"]

    def check_num_samples(self, num_samples, where):
        value = np.asarray(num_samples)
        if value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < 1:
            raise ValueError(f"{self.name}.{where}: expected num_samples k >= 1 (an integer), "
                             f"got {num_samples!r}")
        return int(value)

    def bound_from_observed(self, observed, seed, num_samples):
        """The importance-weighted bound of `observed`, in chunks of at most
        ``IWAE_CHUNK`` samples (a running log-sum-exp), so k = 1000 fits in memory."""
        chunk = min(num_samples, IWAE_CHUNK)
        chunks = -(-num_samples // chunk)
        batch = tf.shape(observed)[0]

        def body(i, total):
            log_w = self.log_weights(observed, tf.random.experimental.stateless_fold_in(seed, i),
                                     chunk)
            keep = tf.range(chunk)[:, None] + i * chunk < num_samples
            log_w = tf.where(keep, log_w, -np.inf)
            return i + 1, tf.reduce_logsumexp(tf.stack([total, tf.reduce_logsumexp(log_w, 0)]),
                                              axis=0)

        _, total = tf.while_loop(lambda i, _: i < chunks, body,
                                 (tf.constant(0), tf.fill([batch], -np.inf)))
        return total - math.log(num_samples)

    @on_batches("data")
    def importance_weighted_bound(self, x, num_samples=64, seed=None):
        """The importance-weighted bound (Burda et al. 2016,
        https://arxiv.org/abs/1509.00519, eq. 8) on log p(x), per example (nats):

            L_k(x) = log (1/k) sum_s p(x, z_s) / q(z_s|x),  z_s ~ q(z|x),

        E L_1 = ELBO <= E L_k <= E L_{k+1} <= log p(x) (their Theorem 1).
        """
        num_samples = self.check_num_samples(num_samples, "importance_weighted_bound")
        x = self.validate_levels(x, "importance_weighted_bound")
        data_seed, z_seed = tf.unstack(
            tf.random.experimental.stateless_split(self.stateless_seed(seed), 2))
        return self.bound_from_observed(self.observed(x, seed=data_seed), z_seed, num_samples)

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def evidence(self, x, seed=None):
        """The ELBO per example and its terms: ``{"elbo", "reconstruction", <each
        KL term>}`` (nats), from one posterior sample drawn statelessly from `seed`
        (a random one if None). Images are raw integer levels."""
        reconstruction, kls = self.elbo_terms(self.validate_levels(x, "elbo"),
                                              self.stateless_seed(seed))
        return {"elbo": -reconstruction - tf.add_n(list(kls.values())),
                "reconstruction": reconstruction, **kls}

    def elbo(self, x, seed=None):
        """The evidence lower bound on log p(x), per example (nats; a bound, not
        the log-likelihood), from one posterior sample drawn statelessly from
        `seed` (a random one if None). Images are raw integer levels."""
        return self.evidence(x, seed)["elbo"]

    def nll(self, x, seed=None):
        """The negative ELBO per example (nats), an upper bound on -log p(x)."""
        return -self.elbo(x, seed)

    @on_batches("data")
    def encode(self, x):
        """The posterior q(z|x) of raw levels `x`: (mean, log_scale) of the
        encoder's Gaussian (before any flow). Bernoulli models see the pixels
        thresholded at half range, Gaussian ones the bins' centres."""
        x = self.validate_levels(x, "encode")
        return self.posterior(self.deterministic_observed(x))

    def check_latents(self, z, where):
        return self.check_batch(z, where, self.latent_shape, what="z")

    @on_batches("latent")
    def decode(self, z):
        """Latents -> the decoder's mean image in levels [0, num_levels - 1]
        (logistic: its location; Bernoulli: (L - 1) times the pixel's probability)."""
        return self.decoder_mean(self.decoder_params(self.check_latents(z, "decode")))

    @on_batches("data")
    def reconstruct(self, x):
        """The decoder's mean image at the posterior's mean (mode) of raw levels `x`."""
        x = self.validate_levels(x, "reconstruct")
        return self.decoder_mean(self.decoder_params(self.posterior_mode(
            self.deterministic_observed(x))))

    def posterior_mode(self, observed):
        """The latent ``reconstruct`` decodes: the encoder's mean pushed through any
        flow on the posterior."""
        mean, _ = self.posterior(observed)
        z, _ = self.transform_posterior(mean[None], observed,
                                        self.encoder(self.encoder_input(observed)))
        return z[0]

    def draw_samples(self, n, seed):
        """Images drawn from the model: z ~ p(z), then x ~ p(x|z), as integer
        levels (Bernoulli: 0 or num_levels - 1)."""
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        return self.decoder_sample(self.decoder_params(self.draw_prior(n, z_seed)), x_seed)

    def latent_spec(self):
        return tf.TensorSpec((None,) + tuple(self.latent_shape), tf.float32, name="z")

    def encode_signature(self):
        def encode(x):
            mean, log_scale = self.encode(x)
            return {"mean": mean, "log_scale": log_scale}
        return encode, [self.data_spec()]

    def data_signatures(self):
        return {
            "elbo": (lambda x, seed: self.evidence(x, seed),
                     [self.data_spec(), tf.TensorSpec([], tf.int32, name="seed")]),
            "encode": self.encode_signature(),
            "decode": (lambda z: {"x": self.decode(z)}, [self.latent_spec()]),
            "reconstruct": (lambda x: {"x": self.reconstruct(x)}, [self.data_spec()]),
        }


def for_images(**config):
    """The same preset for ``digits`` and ``fashion_mnist``."""
    return {"digits": dict(config), "fashion_mnist": dict(config)}
