"""The discrete-latent VAE trained with the Gumbel-softmax (concrete) relaxation
(Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017)."""

import math

import keras
import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder
from zoo.validation import on_batches

# Tolerance on the sums along K of the latents ``decode`` takes (float32 softmaxes
# sum to 1 within a few 1e-7).
SIMPLEX_ATOL = 1e-3


def check_temperature(temperature, where):
    """A temperature as a Python float, or a ValueError unless it is finite and > 0."""
    value = np.asarray(temperature.numpy() if tf.is_tensor(temperature) else temperature,
                       dtype=object if temperature is None else None)
    if value.ndim != 0 or value.dtype.kind not in "iuf" or not np.isfinite(value.item()) \
            or not value.item() > 0:
        raise ValueError(f"{where}: expected temperature > 0 (a finite number), got "
                         f"{temperature!r}")
    return float(value.item())


def gumbel_noise(shape, seed):
    """Gumbel(0, 1) noise g = -log(-log u), u ~ U(tiny, 1), from the stateless `seed`."""
    u = tf.random.stateless_uniform(shape, seed=seed, minval=np.finfo(np.float32).tiny,
                                    maxval=1.0)
    return -tf.math.log(-tf.math.log(u))


def relax(logits, gumbel, temperature):
    """The Gumbel-softmax sample y = softmax((logits + g) / tau) along the last axis
    (Jang et al., eq. 2; the concrete distribution of Maddison et al., eq. 10)."""
    return tf.nn.softmax((logits + gumbel) / temperature, axis=-1)


def straight_through(relaxed):
    """The one-hot argmax of `relaxed` forward, the gradient of `relaxed` backward
    (the straight-through Gumbel estimator of Jang et al., Sec. 2.2)."""
    hard = tf.one_hot(tf.argmax(relaxed, axis=-1), tf.shape(relaxed)[-1], dtype=relaxed.dtype)
    return relaxed + tf.stop_gradient(hard - relaxed)


def gumbel_softmax(logits, temperature, seed, hard=False):
    """Gumbel-softmax samples of categorical `logits` (..., K) at `temperature` > 0,
    drawn from the stateless `seed` (shape [2]); `hard`: straight-through one-hot.

    Their argmax is an exact sample of softmax(logits) (the Gumbel-max trick),
    and as the temperature falls they approach one-hot vectors.
    """
    temperature = check_temperature(temperature, "gumbel_softmax")
    logits = tf.convert_to_tensor(logits, tf.float32)
    relaxed = relax(logits, gumbel_noise(tf.shape(logits), seed), temperature)
    return straight_through(relaxed) if hard else relaxed


@register(
    "gumbel_vae",
    presets={
        # digits: 100 epochs of 24 steps (2,400 steps); tau reaches 0.5 at step 1,386.
        "digits": dict(num_variables=8, num_categories=8, filters=32, hidden_units=256,
                       anneal_rate=5e-4),
        # The paper's 20 ten-way variables; 10 epochs of 938 steps (9,380 steps),
        # tau reaches 0.5 at step 6,931.
        "fashion_mnist": dict(num_variables=20, num_categories=10, filters=32,
                              hidden_units=512, anneal_rate=1e-4),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class GumbelSoftmaxVAE(VariationalAutoencoder):
    """A VAE with N categorical latents of K categories, trained with the
    Gumbel-softmax (concrete) relaxation.

    Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR
    2017, https://arxiv.org/abs/1611.01144; Maddison, Mnih & Teh, "The Concrete
    Distribution", ICLR 2017, https://arxiv.org/abs/1611.00712.

    The latent z is N one-hot vectors of K categories (``latent_shape`` (N, K)).
    The encoder gives the logits of q(z|x) = prod_n Cat(z_n; softmax(logits_n));
    the prior is uniform, p(z) = K^-N; the decoder takes z flattened to N*K.

    Training (``infer(..., training=True)``): the sample is relaxed,

        y = softmax((logits + g) / tau),  g ~ Gumbel(0, 1)        (eq. 1-2)

    a point of the simplex that is differentiable in the logits, with
    ``straight_through`` its one-hot argmax forward and its gradient backward
    (Sec. 2.2). The KL term is the analytic KL of the categorical q(z|x) to the
    uniform prior, ``sum_n sum_k q_nk log q_nk + N log K`` (as in the paper's
    code), reported as ``kl``. The temperature anneals with the optimizer step t,

        tau_t = max(min_temperature, temperature * exp(-anneal_rate * t))

    (the schedule of Sec. 4, there with r in {1e-5, 1e-4} and tau_0 = 1, updated
    every N steps; here every step), reported as the loss term ``temperature``
    (tau_0 while no optimizer is attached).

    Evaluation (``evidence``/``elbo``/``nll``, ``importance_weighted_bound``,
    ``infer(..., training=False)``): the relaxation is not the model. The bounds
    draw exact categorical samples (the one-hot argmax of logits + g, the
    Gumbel-max trick) with log q(z|x) the categorical log-probabilities of the
    drawn categories and log p(z) = -N log K, so the ELBO and the
    importance-weighted bound are honest bounds on log p(x) of the
    discrete-latent model, whatever the temperature. Samples (``sample``) are
    one-hot draws of the uniform prior, decoded and then drawn from p(x|z).

    ``encode(x)`` gives the categorical probabilities (batch, N, K);
    ``decode(z)`` takes (batch, N, K) one-hot or relaxed vectors (entries in
    [0, 1] summing to 1 along K); ``reconstruct`` decodes the posterior's mode.

    Args:
        num_variables: N, the number of categorical latent variables.
        num_categories: K (>= 2), the categories of each.
        temperature: tau_0 > 0, the relaxation's temperature at step 0.
        min_temperature: the floor of the annealed temperature, in (0, tau_0].
        anneal_rate: r >= 0 per optimizer step (0: a constant temperature). The
            default 1e-4 is the paper's; the presets pick r so that tau reaches
            0.5 about two thirds of the way through their training.
        straight_through: train with the straight-through estimator.
        (others): as :class:`~zoo.vae.base.VariationalAutoencoder` but
            ``latent_dim`` (N * K here).

    Losses (``loss_names``): ``loss`` (reconstruction + beta kl, optimised, on
    the relaxed sample), ``reconstruction``, ``kl`` (nats per example),
    ``bits_per_dim`` ((reconstruction + kl) / (D ln 2)), ``temperature``.
    """

    extra_loss_names = ("temperature",)
    fixed_parameters = ("latent_dim",)
    # What ``decode`` takes: per variable, a distribution over its K categories.
    latent_support = "simplex"

    def __init__(
        self,
        num_variables=8,
        num_categories=8,
        temperature=1.0,
        min_temperature=0.5,
        anneal_rate=1e-4,
        straight_through=False,
        **kwargs,
    ):
        kwargs.setdefault("name", "gumbel_vae")
        where = type(self).__name__
        if "latent_dim" in kwargs:
            raise TypeError(f"{where}: latent_dim is num_variables * num_categories; pass "
                            "those instead")
        self.num_variables = int(num_variables)
        self.num_categories = int(num_categories)
        self.temperature = check_temperature(temperature, f"{where}")
        self.min_temperature = float(min_temperature)
        self.anneal_rate = float(anneal_rate)
        self.straight_through = bool(straight_through)
        if self.num_variables < 1:
            raise ValueError(f"{where}: expected num_variables >= 1, got {num_variables}")
        if self.num_categories < 2:
            raise ValueError(f"{where}: expected num_categories >= 2, got {num_categories}")
        if not 0 < self.min_temperature <= self.temperature:
            raise ValueError(f"{where}: expected 0 < min_temperature <= temperature "
                             f"({self.temperature:g}), got {min_temperature!r}")
        if not (np.isfinite(self.anneal_rate) and self.anneal_rate >= 0):
            raise ValueError(f"{where}: expected anneal_rate >= 0, got {anneal_rate!r}")
        super().__init__(latent_dim=self.num_variables * self.num_categories, **kwargs)

    # ------------------------------------------------------------- networks
    def posterior_units(self):
        """Encoder outputs: N * K logits."""
        return self.num_variables * self.num_categories

    def decoder_params(self, z):
        """The decoder's parameters for latents (B, N, K), flattened to N * K."""
        return self.decoder(tf.reshape(z, [-1, self.num_variables * self.num_categories]))

    @property
    def latent_shape(self):
        return (self.num_variables, self.num_categories)

    # ---------------------------------------------------- posterior, prior
    def posterior_log_probs(self, observed):
        """log q(z_n = k | x): the encoder's logits, normalised, (B, N, K)."""
        logits = self.encoder(self.encoder_input(observed))
        logits = tf.reshape(logits, [-1, self.num_variables, self.num_categories])
        return tf.nn.log_softmax(logits, axis=-1)

    def posterior(self, observed):
        """The categorical probabilities of q(z|x), (B, N, K)."""
        return tf.exp(self.posterior_log_probs(observed))

    def categorical_kl(self, log_probs):
        """KL(q(z|x) || uniform) per example, in closed form:
        sum_n sum_k q_nk log q_nk + N log K."""
        return tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=[-2, -1]) \
            + self.num_variables * math.log(self.num_categories)

    def log_prior(self, z):
        """log p(z) = -N log K, the uniform prior, for (one-hot) z (..., N, K)."""
        return tf.fill(tf.shape(z)[:-2], -self.num_variables * math.log(self.num_categories))

    def draw_prior(self, n, seed):
        """`n` one-hot latents (n, N, K) from the uniform prior."""
        categories = tf.random.stateless_uniform(
            tf.stack([n, self.num_variables]), seed=seed, minval=0,
            maxval=self.num_categories, dtype=tf.int32)
        return tf.one_hot(categories, self.num_categories)

    def current_temperature(self):
        """tau_t = max(min_temperature, temperature * exp(-anneal_rate * t)) at
        optimizer step t (the steps taken so far); tau_0 without an optimizer."""
        if getattr(self, "optimizer", None) is None:
            return tf.constant(self.temperature)
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return tf.maximum(self.min_temperature,
                          self.temperature * tf.exp(-self.anneal_rate * step))

    def infer(self, observed, seed, num_samples, training=False):
        """`num_samples` draws of z for each example of `observed`.

        One Gumbel noise g per draw gives the exact categorical sample
        argmax(log q + g) (Gumbel-max); with `training`, z is its relaxation
        softmax((log q + g) / tau_t) (straight-through: one-hot forward), else the
        one-hot sample itself. ``log_q`` and ``log_prior`` are those of the
        categorical sample (the relaxation has no part in the bounds).

        Returns a dict of ``z`` (S, B, N, K), ``log_q``, ``log_prior`` and ``kl``
        (the analytic KL), each (S, B).
        """
        log_probs = self.posterior_log_probs(observed)
        shape = tf.concat([[num_samples], tf.shape(log_probs)], 0)
        perturbed = log_probs + gumbel_noise(shape, seed)
        categories = tf.argmax(perturbed, axis=-1)
        hard = tf.one_hot(categories, self.num_categories)
        if training:
            relaxed = tf.nn.softmax(perturbed / self.current_temperature(), axis=-1)
            z = straight_through(relaxed) if self.straight_through else relaxed
        else:
            z = hard
        log_q = tf.reduce_sum(hard * log_probs, axis=[-2, -1])
        kl = tf.broadcast_to(self.categorical_kl(log_probs), tf.shape(log_q))
        return {"z": z, "log_q": log_q, "log_prior": self.log_prior(hard), "kl": kl}

    def compute_losses(self, x, training=False):
        return {**super().compute_losses(x, training=training),
                "temperature": self.current_temperature()}

    def latent_mean(self, x):
        """E_q[z|x] of raw levels: the categorical probabilities (B, N, K)."""
        return self.posterior(self.deterministic_observed(x))

    def posterior_mode(self, observed):
        """The one-hot mode of q(z|x) (what ``reconstruct`` decodes)."""
        return tf.one_hot(tf.argmax(self.posterior_log_probs(observed), axis=-1),
                          self.num_categories)

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def encode(self, x):
        """The categorical probabilities of q(z|x) of raw levels `x`, (batch, N, K)
        (Bernoulli models see the pixels thresholded at half range, Gaussian ones
        the bins' centres)."""
        x = self.validate_levels(x, "encode")
        return self.posterior(self.deterministic_observed(x))

    def check_latents(self, z, where):
        """A batch (batch, N, K) of distributions over the K categories: entries in
        [0, 1] summing to 1 along K (within ``SIMPLEX_ATOL``)."""
        z = self.check_batch(z, where, self.latent_shape, value_range=(0.0, 1.0), what="z")
        expected = (f"{self.name}.{where}: expected z of one-hot or relaxed vectors, entries "
                    f"in [0, 1] summing to 1 along its {self.num_categories} categories")

        def sums(z):
            return tf.reduce_sum(z, axis=-1)

        return validation.check(
            z, lambda a: np.all(np.abs(sums(a).numpy() - 1.0) <= SIMPLEX_ATOL),
            lambda t: tf.reduce_all(tf.abs(sums(t) - 1.0) <= SIMPLEX_ATOL), expected,
            got=lambda a: f"sums in [{np.min(sums(a))}, {np.max(sums(a))}]")

    def decode(self, z):
        """Latents (batch, N, K), one-hot or relaxed -> the decoder's mean image in
        levels [0, num_levels - 1] (logistic: its location; Bernoulli: (L - 1)
        times the pixel's probability)."""
        return self.decode_distributions(self.check_latents(z, "decode"))

    @on_batches("latent")
    def decode_distributions(self, z):
        # Checked before the empty-batch handling, whose stand-in (zeros) sums to 0.
        return self.decoder_mean(self.decoder_params(z))

    def encode_signature(self):
        return (lambda x: {"probs": self.encode(x)}), [self.data_spec()]
