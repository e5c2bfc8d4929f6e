"""The importance-weighted autoencoder (Burda et al. 2016)."""

import math

import keras
import tensorflow as tf

from zoo.metrics.likelihood import bits_per_dim
from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder


@register(
    "iwae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, num_importance_samples=5),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512,
                              num_importance_samples=5),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class IWAE(VariationalAutoencoder):
    """The Gaussian VAE trained on the importance-weighted bound.

    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016,
    https://arxiv.org/abs/1509.00519. The network is the Gaussian VAE's; the
    training step maximises

        L_k(x) = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],  z_1..z_k ~ q(z|x)

    (eq. 8) with k = ``num_importance_samples`` reparameterised draws, whose
    gradient weights each sample by its normalised importance weight (eq. 14).
    L_1 is the ELBO, and L_k rises with k towards log p(x) (Theorem 1).

    Losses: ``loss`` = -L_k (optimised), ``negative_iwae_bound`` = -L_k
    again, in nats, named for what it is; ``reconstruction`` and ``kl`` are the
    ELBO's terms averaged over the k samples, and ``bits_per_dim`` is their sum,
    the negative ELBO (as every VAE of the zoo reports it; ``nll`` is the same
    bound; ``importance_weighted_bound(x, k)`` gives the tighter one).

    Args:
        num_importance_samples: k of the training bound (>= 1).
        (others): as :class:`~zoo.vae.base.VariationalAutoencoder` but ``beta``
            and ``kl_warmup_steps``.
    """

    extra_loss_names = ("negative_iwae_bound",)
    # The bound has no KL weight to set.
    fixed_parameters = ("beta", "kl_warmup_steps")

    def __init__(self, num_importance_samples=5, **kwargs):
        kwargs.setdefault("name", "iwae")
        self.num_importance_samples = int(num_importance_samples)
        if self.num_importance_samples < 1:
            raise ValueError(f"IWAE: expected num_importance_samples k >= 1, got "
                             f"{num_importance_samples}")
        if kwargs.get("beta", 1.0) != 1.0 or kwargs.get("kl_warmup_steps", 0):
            raise ValueError("IWAE: the importance-weighted bound has no KL weight: expected "
                             "beta = 1 and kl_warmup_steps = 0 (use beta_vae for those)")
        super().__init__(**kwargs)

    def compute_losses(self, x, training=False):
        k = self.num_importance_samples
        data_seed, z_seed = self.split_seed(None, 2)
        observed = self.observed(x, seed=data_seed)
        latents = self.infer(observed, z_seed, k, training=training)
        log_likelihood = self.decoder_log_prob(observed, latents["z"])
        log_weights = log_likelihood + latents["log_prior"] - latents["log_q"]
        bound = tf.reduce_mean(tf.reduce_logsumexp(log_weights, axis=0)) - math.log(k)
        reconstruction = -tf.reduce_mean(log_likelihood)
        kl = tf.reduce_mean(latents["kl"])
        return {
            "loss": -bound,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": bits_per_dim(reconstruction + kl, self.event_size),
            "negative_iwae_bound": -bound,
        }
