"""The VAE family's base class: an encoder q(z|x), a prior p(z) and a decoder p(x|z),
trained by a bound on log p(x).

Every VAE of the zoo maximises a lower bound on log p(x) (Kingma & Welling 2014,
https://arxiv.org/abs/1312.6114). A variant changes one piece: the posterior (a
flow on it, discrete codes), the prior (a mixture, the VampPrior), the bound (the
importance-weighted one), or the weights of its terms (beta, a KL warm-up). The
encoder, prior, decoder, sampling and their signatures are
:class:`~zoo.vae.autoencoder.Autoencoder`'s; this class adds the Monte Carlo
ELBO with each KL term reported, the importance-weighted bound and the ``elbo``
signature.

A subclass overrides :meth:`VariationalAutoencoder.infer` (or the hooks it calls:
:meth:`transform_posterior`, :meth:`log_prior`, :meth:`draw_prior`,
:meth:`kl_estimates`); everything else follows from it.
"""

import math

import numpy as np
import tensorflow as tf

from zoo.metrics.likelihood import bits_per_dim
from zoo.vae.autoencoder import LOG_2PI, Autoencoder, standard_normal_log_prob
from zoo.validation import on_batches

# Samples per pass of the importance-weighted bound (it loops over chunks of them).
IWAE_CHUNK = 64

__all__ = ["IWAE_CHUNK", "LOG_2PI", "VariationalAutoencoder", "for_images",
           "standard_normal_log_prob"]


class VariationalAutoencoder(Autoencoder):
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

    Observation models p(x|z) (``observation``, the shared objects of
    :mod:`zoo.distributions`), each giving a bound on the NLL of the data it names:

    * ``"logistic"``: a discretized logistic per pixel over the ``num_levels``
      levels (Salimans et al. 2017): a bound for the raw discrete data;
      ``"logistic_mixture"`` a mixture of five of them, ``"categorical"`` a
      softmax over the levels.
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
        beta: weight of the KL terms in the training loss (1: the ELBO).
        kl_warmup_steps: optimizer steps over which the KL weight rises linearly
            from 0 to ``beta`` (0: none).
        (others): as :class:`~zoo.vae.autoencoder.Autoencoder` (data shape and
            levels, latent size, networks, observation model).
    """

    likelihood = "bound"
    # Other terms a variant reports (after bits_per_dim).
    extra_loss_names = ()

    def __init_subclass__(cls, **kwargs):
        # The terms of the bound, unless the class names its own.
        super().__init_subclass__(**kwargs)
        if "loss_names" not in cls.__dict__:
            cls.loss_names = ("loss", "reconstruction", *cls.kl_names, "bits_per_dim",
                              *cls.extra_loss_names)

    def __init__(self, beta=1.0, kl_warmup_steps=0, **kwargs):
        kwargs.setdefault("name", "vae")
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        where = type(self).__name__
        if not self.beta >= 0:
            raise ValueError(f"{where}: expected beta >= 0, got {self.beta}")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"{where}: expected kl_warmup_steps >= 0, got "
                             f"{self.kl_warmup_steps}")
        super().__init__(**kwargs)

    def elbo_terms(self, x, seed=None, training=False, labels=None):
        """(reconstruction, {kl name: kl}) per example, from one z ~ q(z|x).

        The draws (data noise, posterior sample) come from the stateless `seed`
        (an int or shape [2]), or from the training stream ``self.rng`` if None.
        A conditional model's bound is on log p(x | y) for the classes `labels`.
        """
        data_seed, z_seed = self.split_seed(seed, 2)
        observed = self.observed(x, seed=data_seed)
        latents = self.infer(observed, z_seed, 1, training=training, **self.with_labels(labels))
        log_likelihood = self.decoder_log_prob(observed, latents["z"])[0]
        return -log_likelihood, {k: latents[k][0] for k in self.kl_names}

    def kl_weight(self, training):
        """beta_t: beta, ramped up over the first ``kl_warmup_steps`` steps of training."""
        if not training or not self.kl_warmup_steps or getattr(self, "optimizer", None) is None:
            return tf.constant(self.beta)
        step = tf.cast(self.optimizer.iterations, tf.float32) + 1.0
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def compute_losses(self, x, training=False, labels=None):
        if self.num_classes and labels is None:  # a batch without its classes
            labels = self.random_labels(tf.shape(x)[0])
        reconstruction, kls = self.elbo_terms(x, training=training, labels=labels)
        reconstruction = tf.reduce_mean(reconstruction)
        kls = {k: tf.reduce_mean(v) for k, v in kls.items()}
        kl = tf.add_n(list(kls.values()))
        return {
            "loss": reconstruction + self.kl_weight(training) * kl,
            "reconstruction": reconstruction,
            **kls,
            "bits_per_dim": bits_per_dim(reconstruction + kl, self.event_size),
        }

    def log_weights(self, observed, seed, num_samples, labels=None):
        """log p(x, z_s) - log q(z_s|x) for `num_samples` posterior draws: (S, B)
        (a conditional model's log p(x, z_s | y) with `labels`)."""
        latents = self.infer(observed, seed, num_samples, **self.with_labels(labels))
        return self.decoder_log_prob(observed, latents["z"]) + latents["log_prior"] \
            - latents["log_q"]

    def check_num_samples(self, num_samples, where):
        value = np.asarray(num_samples)
        if value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < 1:
            raise ValueError(f"{self.name}.{where}: expected num_samples k >= 1 (an integer), "
                             f"got {num_samples!r}")
        return int(value)

    def bound_from_observed(self, observed, seed, num_samples, labels=None):
        """The importance-weighted bound of `observed`, in chunks of at most
        ``IWAE_CHUNK`` samples (a running log-sum-exp), so k = 1000 fits in memory."""
        chunk = min(num_samples, IWAE_CHUNK)
        chunks = -(-num_samples // chunk)
        batch = tf.shape(observed)[0]

        def body(i, total):
            log_w = self.log_weights(observed, tf.random.experimental.stateless_fold_in(seed, i),
                                     chunk, labels)
            keep = tf.range(chunk)[:, None] + i * chunk < num_samples
            log_w = tf.where(keep, log_w, -np.inf)
            return i + 1, tf.reduce_logsumexp(tf.stack([total, tf.reduce_logsumexp(log_w, 0)]),
                                              axis=0)

        _, total = tf.while_loop(lambda i, _: i < chunks, body,
                                 (tf.constant(0), tf.fill([batch], -np.inf)))
        return total - math.log(num_samples)

    @on_batches("data")
    def importance_weighted_bound(self, x, num_samples=64, seed=None, labels=None):
        """The importance-weighted bound (Burda et al. 2016,
        https://arxiv.org/abs/1509.00519, eq. 8) on log p(x), per example (nats):

            L_k(x) = log (1/k) sum_s p(x, z_s) / q(z_s|x),  z_s ~ q(z|x),

        E L_1 = ELBO <= E L_k <= E L_{k+1} <= log p(x) (their Theorem 1). A
        conditional model's bound is on log p(x | y) for `labels`, and without
        them on log p(x) under uniform classes (:meth:`over_classes`).
        """
        num_samples = self.check_num_samples(num_samples, "importance_weighted_bound")
        x = self.validate_levels(x, "importance_weighted_bound")
        labels = None if labels is None else self.check_labels(labels, x,
                                                                "importance_weighted_bound")
        data_seed, z_seed = tf.unstack(
            tf.random.experimental.stateless_split(self.stateless_seed(seed), 2))
        observed = self.observed(x, seed=data_seed)
        return self.over_classes(
            lambda y: self.bound_from_observed(observed, z_seed, num_samples, y), x, labels)

    def over_classes(self, bound, x, labels):
        """``bound(labels)`` per example; for a conditional model without labels,
        ``logsumexp_y bound(y) - log K``: with each ``bound(y) <= log p(x | y)``, a
        bound on log p(x) under classes uniform a priori."""
        if not self.num_classes or labels is not None:
            return bound(labels)
        batch = tf.shape(x)[0]
        per_class = tf.stack([bound(tf.fill(tf.stack([batch]), k))
                              for k in range(self.num_classes)])
        return tf.reduce_logsumexp(per_class, axis=0) - math.log(self.num_classes)

    # ---------------------------------------------------------- evaluation
    def evaluation_defaults(self):
        """Adds k and the examples of the importance-weighted bound
        (``zoo evaluate --iwae-samples``, ``--iwae-examples``)."""
        return {**super().evaluation_defaults(), "iwae_samples": 1000, "iwae_examples": 1000}

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``importance_weighted``: the bound with k = ``iwae_samples`` over the
        first ``iwae_examples`` examples
        (:func:`zoo.metrics.latent.evaluate_importance_weighted`), then the
        autoencoder's metrics and pictures."""
        from zoo.metrics import latent

        return {"importance_weighted": latent.evaluate_importance_weighted(
                    self, data, num_samples=settings["iwae_samples"],
                    max_examples=settings["iwae_examples"], batch_size=batch_size, seed=seed),
                **super().extra_metrics(data, settings, seed, batch_size, run_dir)}

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def evidence(self, x, seed=None, labels=None):
        """The ELBO per example and its terms: ``{"elbo", "reconstruction", <each
        KL term>}`` (nats), from one posterior sample drawn statelessly from `seed`
        (a random one if None). Images are raw integer levels. A conditional
        model needs the classes `labels` (its bound is on log p(x | y))."""
        x = self.validate_levels(x, "elbo")
        labels = self.check_labels(labels, x, "elbo")
        reconstruction, kls = self.elbo_terms(x, self.stateless_seed(seed), labels=labels)
        return {"elbo": -reconstruction - tf.add_n(list(kls.values())),
                "reconstruction": reconstruction, **kls}

    def elbo(self, x, seed=None, labels=None):
        """The evidence lower bound on log p(x), per example (nats; a bound, not
        the log-likelihood), from one posterior sample drawn statelessly from
        `seed` (a random one if None). Images are raw integer levels. A
        conditional model's bound is on log p(x | y) for `labels`, and without
        them on log p(x) under uniform classes."""
        if not self.num_classes or labels is not None:
            return self.evidence(x, seed, labels)["elbo"]
        seed = self.stateless_seed(seed)
        return self.over_classes(lambda y: self.evidence(x, seed, y)["elbo"],
                                 self.validate_levels(x, "elbo"), None)

    def nll(self, x, seed=None, labels=None):
        """The negative ELBO per example (nats), an upper bound on -log p(x) (on
        -log p(x | y) for a conditional model's `labels`)."""
        return -self.elbo(x, seed, labels)

    def data_signatures(self):
        seed = tf.TensorSpec([], tf.int32, name="seed")
        if self.num_classes:
            elbo = (lambda x, seed, label: self.evidence(x, seed, label),
                    [self.data_spec(), seed, self.label_spec()])
        else:
            elbo = (lambda x, seed: self.evidence(x, seed), [self.data_spec(), seed])
        return {"elbo": elbo, **super().data_signatures()}


def for_images(**config):
    """The same preset for ``digits`` and ``fashion_mnist``."""
    return {"digits": dict(config), "fashion_mnist": dict(config)}

