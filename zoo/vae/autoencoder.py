"""The encoder-decoder models' base class: q(z|x), p(z) and p(x|z), without a bound.

The VAEs (:class:`~zoo.vae.base.VariationalAutoencoder`) add the evidence lower
bound that they train; VAE-GAN trains its encoder and decoder by other losses and
takes only this.
"""

import math
import os

import numpy as np
import tensorflow as tf

from zoo.base import GenerativeModel
from zoo.distributions import OBSERVATIONS, observation_model
from zoo.nn.class_conditional_gaussian import ClassConditionalGaussian
from zoo.vae.conv_decoder import ConvDecoder
from zoo.vae.conv_encoder import ConvEncoder
from zoo.validation import on_batches

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z):
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


class Autoencoder(GenerativeModel):
    """An encoder q(z|x), a prior p(z) and a decoder p(x|z) over images' levels.

    The default pieces are those of the Gaussian VAE: a convolutional encoder
    giving q(z|x) = N(mean, diag(exp(log_scale))^2), the prior N(0, I), a
    convolutional decoder giving the parameters of the observation model
    (``observation``, an object of :mod:`zoo.distributions`). A subclass changes
    a piece by overriding :meth:`infer` or the hooks it calls
    (:meth:`transform_posterior`, :meth:`log_prior`, :meth:`draw_prior`,
    :meth:`kl_estimates`). This class gives ``encode``, ``decode``,
    ``reconstruct``, sampling (z ~ p(z), then x ~ p(x|z)) and their signatures;
    what the model trains and the likelihood it reports are its subclass's.

    Args:
        data_shape: ``(H, W, C)`` with H and W divisible by 4.
        num_levels: intensity levels of the raw images (17 for digits, 256 for
            8-bit images).
        latent_dim: dimension of z.
        filters: channels of the first encoder convolution (and of the last
            decoder feature map).
        hidden_units: width of the dense layers of encoder and decoder.
        observation: the model of p(x|z), one of :data:`OBSERVATIONS`.
        observation_scale: the scale of ``"gaussian_fixed"`` (in [0, 1] units).
    """

    family = "vae"
    draws_training_noise = True
    # The KL terms, reported one by one (a hierarchical model has one per layer).
    kl_names = ("kl",)
    # The KL in closed form (True only for a Gaussian q and the prior N(0, I)).
    analytic_kl = True

    def __init__(
        self,
        data_shape=(8, 8, 1),
        num_levels=17,
        latent_dim=8,
        filters=32,
        hidden_units=256,
        observation="logistic",
        observation_scale=0.1,
        **kwargs,
    ):
        kwargs.setdefault("name", "autoencoder")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.observation = str(observation)
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
        if not self.observation_scale > 0:
            raise ValueError(f"{where}: expected observation_scale > 0, got "
                             f"{self.observation_scale}")
        self.observation_model = observation_model(self.observation, self.num_levels,
                                                   scale=self.observation_scale)
        if self.latent_dim < 1:
            raise ValueError(f"{where}: expected latent_dim >= 1, got {self.latent_dim}")
        # A conditional model's prior p(z | y) (the classes' own Gaussians).
        self.class_prior = (ClassConditionalGaussian(self.num_classes, (self.latent_dim,),
                                                     name="class_prior")
                            if self.num_classes else None)
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
        self.decoder = ConvDecoder((h, w, self.observation_model.params_per_channel * c),
                                   self.filters,
                                   self.hidden_units, name="decoder")

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
        return self.observation_model.observe(x, seed)

    def deterministic_observed(self, x):
        """``observed`` without noise (for ``encode``/``reconstruct``): pixels
        thresholded at half range, or the bins' centres."""
        return self.observation_model.observe_deterministic(x)

    def encoder_input(self, observed):
        """Observed values -> [-1, 1], what the encoder sees."""
        return self.observation_model.to_symmetric(observed)

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
        log_p = self.observation_model.log_prob(observed, params)
        return tf.reduce_sum(log_p, axis=[-3, -2, -1])

    def decoder_params(self, z):
        """The decoder's per-pixel parameters for a batch of latents (B, ...)."""
        return self.decoder(z)

    def decoder_mean(self, params):
        """The decoder's mean image in levels [0, num_levels - 1]."""
        return self.observation_model.mean(params)

    def decoder_sample(self, params, seed):
        """Integer levels drawn from p(x|z) (Bernoulli: 0 or num_levels - 1)."""
        return self.observation_model.sample(params, seed)

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

    def log_prior(self, z, labels=None):
        """log p(z), summed over the latent's dimensions: N(0, I) here; a
        conditional model's p(z | y) for classes `labels`."""
        if labels is not None:
            return self.class_prior.log_prob(z, labels)
        return standard_normal_log_prob(z)

    def draw_prior(self, n, seed, labels=None):
        """`n` latents from the prior (of the classes `labels`, if given)."""
        eps = tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed=seed)
        if labels is None:
            return eps
        loc, log_scale = self.class_prior(labels)
        return loc + tf.exp(log_scale) * eps

    def kl_estimates(self, mean, log_scale, log_q, log_p, labels=None):
        """The KL terms per sample: in closed form where ``analytic_kl`` (a Gaussian
        posterior and prior N(0, I), or a class's Gaussian for `labels`), else the
        Monte Carlo ``log q(z|x) - log p(z)`` at the sample."""
        if self.analytic_kl:
            kl = (self.kl_divergence(mean, log_scale) if labels is None
                  else self.class_prior.kl_from(mean, log_scale, labels))
            return {"kl": tf.broadcast_to(kl, tf.shape(log_q))}
        return {"kl": log_q - log_p}

    def infer(self, observed, seed, num_samples, training=False, labels=None):
        """`num_samples` draws from q(z|x) for each example of `observed`.

        `training` is True in the training step (a relaxed posterior may differ
        there from the one the bounds use).

        Returns a dict of ``z`` (S, B, latent_dim), ``log_q`` and ``log_prior``
        (S, B), and one (S, B) estimate per name of ``kl_names``, whose sum has the
        expectation KL(q(z|x) || p(z)); for a conditional model with `labels`,
        against the classes' prior p(z | y).
        """
        params = self.encoder(self.encoder_input(observed))
        mean, log_scale = tf.split(params[:, : 2 * self.latent_dim], 2, axis=-1)
        eps = tf.random.stateless_normal(
            tf.stack([num_samples, tf.shape(observed)[0], self.latent_dim]), seed=seed)
        z = mean + tf.exp(log_scale) * eps
        log_q = standard_normal_log_prob(eps) - tf.reduce_sum(log_scale, axis=-1)
        z, log_det = self.transform_posterior(z, observed, params)
        log_q = log_q - log_det
        given = {} if labels is None else {"labels": labels}  # (variants take none)
        log_p = self.log_prior(z, **given)
        return {"z": z, "log_q": log_q, "log_prior": log_p,
                **self.kl_estimates(mean, log_scale, log_q, log_p, **given)}

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

    # ---------------------------------------------------------- evaluation
    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``active_units`` (:func:`zoo.metrics.latent.active_units`) and, for images
        given a `run_dir`, the pictures of :meth:`evaluation_pictures` under
        ``pictures``."""
        from zoo.metrics import latent

        metrics = {"active_units": latent.active_units(self, data)}
        if self.data_kind == "images" and run_dir is not None:
            metrics["pictures"] = self.evaluation_pictures(data, run_dir)
        return metrics

    def evaluation_pictures(self, data, run_dir, count=16):
        """Writes ``run_dir/evaluation/reconstructions.png`` (originals in the odd
        rows, their reconstructions below) and, for latents that are vectors,
        ``traversals.png`` (:func:`zoo.metrics.latent.traversals`); returns
        {name: path relative to `run_dir`}."""
        from zoo import plotting
        from zoo.metrics import latent

        folder = os.path.join(os.fspath(run_dir), "evaluation")
        x = latent.examples(data, count)
        cols = min(8, len(x))
        x = x[:len(x) - len(x) % cols]  # whole rows, so each reconstruction is below its image
        rows = []
        for start in range(0, len(x), cols):
            rows += [x[start:start + cols], np.asarray(self.reconstruct(x[start:start + cols]))]
        paths = {"reconstructions": plotting.image_grid(
            np.concatenate(rows), self.num_levels, os.path.join(folder, "reconstructions.png"),
            cols=cols)}
        if len(self.latent_shape) == 1:
            steps = 9
            paths["traversals"] = plotting.image_grid(
                latent.traversals(self, x, steps=steps), self.num_levels,
                os.path.join(folder, "traversals.png"), cols=steps)
        return {k: os.path.relpath(v, run_dir) for k, v in paths.items()}

    def draw_samples(self, n, seed, label=-1):
        """Images drawn from the model: z ~ p(z) (a conditional model's p(z | y) of
        `label`, or of classes drawn uniformly for -1), then x ~ p(x|z), as integer
        levels (Bernoulli: 0 or num_levels - 1)."""
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        labels = None
        if self.num_classes:
            labels = self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, 1),
                                        label)
        given = {} if labels is None else {"labels": labels}  # (variants take none)
        return self.decoder_sample(self.decoder_params(self.draw_prior(n, z_seed, **given)),
                                   x_seed)

    def latent_spec(self):
        return tf.TensorSpec((None,) + tuple(self.latent_shape), tf.float32, name="z")

    def encode_signature(self):
        def encode(x):
            mean, log_scale = self.encode(x)
            return {"mean": mean, "log_scale": log_scale}
        return encode, [self.data_spec()]

    def data_signatures(self):
        return {
            "encode": self.encode_signature(),
            "decode": (lambda z: {"x": self.decode(z)}, [self.latent_spec()]),
            "reconstruct": (lambda x: {"x": self.reconstruct(x)}, [self.data_spec()]),
        }
