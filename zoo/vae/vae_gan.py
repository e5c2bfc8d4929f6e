"""VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction is measured by a GAN's
discriminator."""

import keras
import tensorflow as tf

from zoo.adversarial import MultiNetworkTraining
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.losses import NonSaturatingLoss
from zoo.preprocessing import dequantize
from zoo.registry import register
from zoo.vae.autoencoder import Autoencoder
from zoo.vae.autoencoder_networks import AutoencoderNetworks

FEATURE_EPSILON = 1e-5


@register(
    "vae_gan",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=3e-4),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=3e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class VAEGAN(MultiNetworkTraining, AutoencoderNetworks, Autoencoder):
    """A VAE whose decoder is a GAN's generator, its reconstruction error measured
    in the discriminator's features.

    Larsen, Sonderby, Larochelle & Winther, "Autoencoding beyond pixels using a
    learned similarity metric", ICML 2016, https://arxiv.org/abs/1512.09300,
    Sec. 2 and Algorithm 1. With Dis_l(x) the features of the discriminator's
    last hidden layer (here its last convolution, flattened, each feature
    standardized over the batch of real, reconstructed and generated images)
    and
    x_tilde = Dec(z), z ~ q(z|x), x_p = Dec(z_p), z_p ~ N(0, I):

        L_prior = KL(q(z|x) || p(z))                                   (eq. 5)
        L_llike = -log N(Dis_l(x); Dis_l(x_tilde), I)
                = 1/2 ||Dis_l(x) - Dis_l(x_tilde)||^2 + const          (eq. 6-7)
        L_GAN   = log D(x) + log(1 - D(x_tilde)) + log(1 - D(x_p))     (eq. 9)

    and each network minimises its own term, all from one forward pass (the
    updates of Algorithm 1): the encoder ``encoder_loss = L_prior + L_llike``,
    the decoder ``decoder_loss = gamma L_llike + generator_loss``, the
    discriminator ``discriminator_loss``, the cross-entropy of real data against
    both kinds of generated images (:class:`zoo.gan.losses.NonSaturatingLoss`).
    The decoder's adversarial term is the non-saturating ``-log D(x_tilde) -
    log D(x_p)`` rather than the paper's ``-L_GAN``: the same fixed point with
    stronger gradients early on, as for the zoo's GANs.

    The standardization plays the part of the batch normalization in the
    paper's discriminator, whose Dis_l follows a batch-normalized convolution:
    it sets the scale of L_llike against L_prior. Without it the critic's raw
    features are small (their L_llike a few nats on digits), the KL wins, the
    posterior collapses onto the prior (KL < 0.1 nats after 1,500 steps) and
    reconstructions ignore their input; with it, on digits at the same budget,
    KL is about 14 nats, all 8 units are active and FID falls from 211 to 64.

    Images: the decoder's output through ``tanh`` is the image in [-1, 1], the
    discriminator's input (real images are dequantized and scaled there, as
    for the zoo's GANs); ``decode``, ``reconstruct`` and ``sample`` return it as levels.
    No pixel likelihood is trained, so the model reports none
    (``likelihood = "none"``): evaluate it by its samples and reconstructions.

    Loss terms: ``encoder_loss``, ``decoder_loss``, ``discriminator_loss``,
    ``kl`` (L_prior), ``feature_reconstruction`` (L_llike without its constant,
    nats per example) and ``generator_loss``.

    Args:
        gamma: the weight of L_llike in the decoder's loss (the paper's gamma).
        critic_filters: channels of the discriminator's first convolution.
        (others): as :class:`~zoo.vae.autoencoder.Autoencoder`; the
            observation model only sets the decoder's output width.
    """

    likelihood = "none"
    loss_names = ("encoder_loss", "decoder_loss", "discriminator_loss", "kl",
                  "feature_reconstruction", "generator_loss")
    optimizer_terms = {"encoder": "encoder_loss", "decoder": "decoder_loss",
                       "discriminator": "discriminator_loss"}
    critic_networks = ("discriminator",)
    fixed_parameters = ("observation", "observation_scale")

    def __init__(self, gamma=1.0, critic_filters=32, **kwargs):
        kwargs.setdefault("name", "vae_gan")
        self.gamma = float(gamma)
        self.critic_filters = int(critic_filters)
        if not self.gamma >= 0:
            raise ValueError(f"VAEGAN: expected gamma >= 0, got {gamma}")
        unknown = sorted(set(kwargs) & set(self.fixed_parameters))
        if unknown:
            raise ValueError(f"VAEGAN: {unknown} cannot be set: the model trains no pixel "
                             "likelihood")
        self.game = NonSaturatingLoss()
        super().__init__(observation="gaussian_fixed", **kwargs)
        self.check_optimizer_terms()

    def make_networks(self):
        super().make_networks()
        self.discriminator_network = DCGANCritic(self.critic_filters, score_bias=True,
                                                 name="discriminator")

    # ----------------------------------------------------------- the images
    def generated(self, z):
        """Dec(z): images in [-1, 1]."""
        return tf.tanh(self.decoder_params(z))

    def decoder_mean(self, params):
        """Dec(z) in levels: [-1, 1] -> [0, L), the inverse of the scaling of the
        real images (dequantized, times 2 / L, minus 1), at the bins' centres."""
        levels = (tf.tanh(params) + 1.0) * self.num_levels / 2.0 - 0.5
        return tf.clip_by_value(levels, 0.0, self.num_levels - 1.0)

    def decoder_sample(self, params, seed):
        """The generator's image, rounded to the nearest level (deterministic)."""
        return tf.round(self.decoder_mean(params))

    def call(self, x):
        """The discriminator's score of the reconstruction (builds every weight)."""
        z = self.infer(self.observed(x, seed=tf.constant([0, 0])), tf.constant([0, 0]), 1)
        return self.discriminator_network(self.generated(z["z"][0]))

    # --------------------------------------------------------------- losses
    @staticmethod
    def standardized(features):
        """Each feature standardized over the batch (batch normalization without
        its learned scale and shift, the same in training and evaluation)."""
        mean, variance = tf.nn.moments(features, axes=[0], keepdims=True)
        return (features - mean) * tf.math.rsqrt(variance + FEATURE_EPSILON)

    def compute_losses(self, x, training=False):
        z_seed, prior_seed, noise_seed = self.split_seed(None, 3)
        real = 2.0 * dequantize(x, noise_seed) / self.num_levels - 1.0
        latents = self.infer(self.deterministic_observed(x), z_seed, 1, training=training)
        reconstructed = self.generated(latents["z"][0])
        batch = tf.shape(x)[0]
        from_prior = self.generated(self.draw_prior(batch, prior_seed))
        features = self.standardized(self.discriminator_network.features(
            tf.concat([real, reconstructed, from_prior], 0)))
        real_features, fake_features = features[:batch], features[batch:2 * batch]
        feature_reconstruction = 0.5 * tf.reduce_mean(
            tf.reduce_sum(tf.square(real_features - fake_features), axis=-1))
        scores = tf.cast(self.discriminator_network.score(features)[:, 0], tf.float32)  # mixed policies
        real_scores, fake_scores = scores[:batch], scores[batch:]
        kl = tf.reduce_mean(latents["kl"])
        generator_loss = self.game.generator_loss(fake_scores)
        return {
            "encoder_loss": kl + feature_reconstruction,
            "decoder_loss": self.gamma * feature_reconstruction + generator_loss,
            "discriminator_loss": self.game.critic_loss(real_scores, fake_scores),
            "kl": kl,
            "feature_reconstruction": feature_reconstruction,
            "generator_loss": generator_loss,
        }
