"""The adversarial autoencoder (Makhzani et al. 2016)."""

import keras
import tensorflow as tf

from zoo.adversarial import MultiNetworkTraining
from zoo.gan.losses import NonSaturatingLoss
from zoo.metrics.likelihood import bits_per_dim
from zoo.nn.mlp import MLP
from zoo.registry import register
from zoo.vae.autoencoder_networks import AutoencoderNetworks
from zoo.vae.base import VariationalAutoencoder


@register(
    "aae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256,
                       discriminator_units=128),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512,
                              discriminator_units=512),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class AdversarialAutoencoder(MultiNetworkTraining, AutoencoderNetworks, VariationalAutoencoder):
    """An autoencoder whose aggregated posterior is matched to the prior by a GAN on z.

    Makhzani, Shlens, Jaitly, Goodfellow & Frey, "Adversarial Autoencoders",
    ICLR 2016 workshop, https://arxiv.org/abs/1511.05644, Sec. 2 and Fig. 1. The
    KL term of the VAE is replaced by an adversarial game in latent space: a
    discriminator D tells prior draws z ~ p(z) = N(0, I) (real) from codes
    z ~ q(z|x) of the data (fake), and the encoder, as the GAN's generator,
    makes the aggregated posterior q(z) = E_x q(z|x) match p(z). The encoder is
    the paper's Gaussian-posterior variant, q(z|x) = N(mean, diag(sigma^2)),
    sampled with the reparameterisation trick.

    Each ``train_step`` updates, from one forward pass on a batch (the paper's
    two phases in one step, each network by its own optimizer, simultaneously):

    * the discriminator on ``discriminator_loss``, the non-saturating GAN
      cross-entropy (:class:`zoo.gan.losses.NonSaturatingLoss`);
    * the decoder on ``reconstruction`` (-log p(x|z), the observation model's);
    * the encoder on ``loss = reconstruction + adversarial_weight *
      generator_loss`` (the reconstruction phase and the regularisation phase
      summed, rather than alternated).

    The model is still a latent-variable model p(z) p(x|z) with an encoder, so
    its ELBO (reported as ``kl`` and ``bits_per_dim``, never optimised) is a
    bound on its log-likelihood, usually a loose one since nothing asks q(z|x)
    to be close to p(z) per example: ``likelihood = "bound"`` and every bound
    of :class:`~zoo.vae.base.VariationalAutoencoder` holds.

    Args:
        discriminator_units: width of the discriminator's two hidden layers.
        adversarial_weight: the weight of the encoder's adversarial term.
        (others): as :class:`~zoo.vae.base.VariationalAutoencoder` but ``beta``
            and ``kl_warmup_steps`` (no KL is trained).
    """

    extra_loss_names = ("discriminator_loss", "generator_loss")
    optimizer_terms = {"encoder": "loss", "decoder": "reconstruction",
                       "discriminator": "discriminator_loss"}
    critic_networks = ("discriminator",)
    fixed_parameters = ("beta", "kl_warmup_steps")

    def __init__(self, discriminator_units=128, adversarial_weight=1.0, **kwargs):
        kwargs.setdefault("name", "aae")
        self.discriminator_units = int(discriminator_units)
        self.adversarial_weight = float(adversarial_weight)
        if kwargs.get("beta", 1.0) != 1.0 or kwargs.get("kl_warmup_steps", 0):
            raise ValueError("AdversarialAutoencoder: no KL term is trained: expected beta = 1 "
                             "and kl_warmup_steps = 0")
        if not self.adversarial_weight >= 0:
            raise ValueError(f"AdversarialAutoencoder: expected adversarial_weight >= 0, got "
                             f"{adversarial_weight}")
        self.game = NonSaturatingLoss()
        super().__init__(**kwargs)
        self.check_optimizer_terms()

    def make_networks(self):
        super().make_networks()
        self.discriminator_network = MLP(self.discriminator_units, 2, 1, zero_init=False,
                                         name="discriminator")

    def call(self, x):
        """The decoded posterior and the discriminator's score of it (builds every
        weight)."""
        observed = self.observed(x, seed=tf.constant([0, 0]))
        z = self.infer(observed, tf.constant([0, 0]), 1)["z"][0]
        return self.decoder_params(z), self.discriminator_network(z)

    def scores(self, z):
        """D's logits that z is a prior draw, (batch,)."""
        return self.discriminator_network(z)[:, 0]

    def compute_losses(self, x, training=False):
        """Every term on one batch: the reconstruction and KL at z ~ q(z|x), and the
        game between prior draws and those codes."""
        data_seed, z_seed, prior_seed = self.split_seed(None, 3)
        observed = self.observed(x, seed=data_seed)
        latents = self.infer(observed, z_seed, 1, training=training)
        z = latents["z"][0]
        reconstruction = -tf.reduce_mean(self.decoder_log_prob(observed, z))
        kl = tf.reduce_mean(latents["kl"])
        prior = self.draw_prior(tf.shape(x)[0], prior_seed)
        fake = self.scores(z)
        generator_loss = self.game.generator_loss(fake)
        return {
            "loss": reconstruction + self.adversarial_weight * generator_loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": bits_per_dim(reconstruction + kl, self.event_size),
            "discriminator_loss": self.game.critic_loss(self.scores(prior), fake),
            "generator_loss": generator_loss,
        }
