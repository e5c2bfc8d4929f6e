"""BigGAN sized for 28x28 and 8x8 images, any distance (hinge with spectral norm
by default)."""

import keras
import tensorflow as tf

from zoo.base import SampleOption
from zoo.gan import regularizers
from zoo.gan.biggan_generator import BigGANGenerator
from zoo.gan.dcgan import image_training
from zoo.gan.distances import GAN
from zoo.gan.residual_critic import ResidualCritic
from zoo.registry import register

NUM_UPSAMPLINGS = 2  # 7 -> 28 (Fashion-MNIST), 2 -> 8 (digits)


@register("biggan", presets={
    "digits": dict(latent_dim=30, filters=32, num_classes=10, ema_decay=0.999),
    "fashion_mnist": dict(latent_dim=60, filters=64, num_classes=10, ema_decay=0.999),
}, training=image_training(2e-4), default_dataset="digits")
@keras.saving.register_keras_serializable(package="zoo")
class BigGAN(GAN):
    """A class-conditional BigGAN.

    Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity
    Natural Image Synthesis", ICLR 2019, https://arxiv.org/abs/1809.11096,
    sized for 28x28 and 8x8 images: the generator
    (:class:`~zoo.gan.biggan_generator.BigGANGenerator`) has class-conditional
    batch norm with a shared embedding, the hierarchical latent (a chunk of z
    per block) and self-attention after its first block (14x14 on 28x28, 4x4 on
    8x8); the critic (:class:`~zoo.gan.residual_critic.ResidualCritic`, ReLU)
    has self-attention after its first block and a projection head (Miyato &
    Koyama 2018) for the classes. Both networks are spectrally normalised; the
    loss is the hinge loss (distance ``hinge_sn``, any other of ``DISTANCES``
    may replace it); the generator's loss adds orthogonal regularization
    (:func:`~zoo.gan.regularizers.orthogonal_penalty`, weight
    ``orthogonal_weight``, 1e-4 in the paper); the presets keep an exponential
    moving average of the generator's weights (``ema_decay``), which sampling
    and export use; the truncation trick: sampler option ``truncation`` psi in
    [0, 1], z drawn from N(0, I) truncated to [-2, 2] and scaled by psi (as the
    authors' TF Hub models sample) where psi < 1, plain N(0, I) at psi = 1.

    ``num_classes=0`` gives an unconditional BigGAN (batch norm conditioned on
    the chunks of z alone).

    Args:
        latent_dim: the dimension of z (split into ``3`` chunks).
        filters: channels of the generator's last block and the critic's first.
        embedding_dim: the shared class embedding's dimension.
        orthogonal_weight: beta of orthogonal regularization; 0 turns it off.
        distance: a name in ``DISTANCES`` (default ``hinge_sn``).
        Others: as :class:`~zoo.gan.distances.GAN`.
    """

    default_distance = "hinge_sn"
    mixed_precision_refusal = "its conditional batch norm was not checked under a mixed policy"
    sample_options = {
        "truncation": SampleOption(1.0, at_least=0.0, at_most=1.0,
                                   doc="psi: z from N(0, I) truncated to [-2, 2], times psi; "
                                       "1: no truncation"),
    }

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, embedding_dim=16,
                 orthogonal_weight=1e-4, **kwargs):
        kind = type(self).__name__
        self.embedding_dim = int(embedding_dim)
        self.orthogonal_weight = float(orthogonal_weight)
        if self.embedding_dim < 1 or self.orthogonal_weight < 0:
            raise ValueError(f"{kind}: expected embedding_dim >= 1 and orthogonal_weight >= 0, "
                             f"got {embedding_dim} and {orthogonal_weight}")
        if len(tuple(data_shape)) != 3:
            raise ValueError(f"{kind}: expected images, data_shape (H, W, C), got "
                             f"{tuple(data_shape)}")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)

    def build_generator(self):
        return BigGANGenerator(self.data_shape, latent_dim=self.latent_dim, filters=self.filters,
                               num_classes=self.num_classes, embedding_dim=self.embedding_dim,
                               num_upsamplings=NUM_UPSAMPLINGS, attention_block=0,
                               spectral_norm=True, name="generator")

    def build_critic(self):
        return ResidualCritic(self.filters, num_downsamplings=NUM_UPSAMPLINGS,
                              negative_slope=0.0, attention_block=0,
                              spectral_norm=self.spectral_norm, outputs=self.critic_outputs,
                              num_classes=self.num_classes,
                              score_bias=self.objective.score_bias, name="critic")

    def generator_input(self, z, labels):
        """z and the classes apart: the generator embeds them itself."""
        if not self.num_classes:
            return z
        return {"z": z, "labels": labels}

    def orthogonal_penalty(self):
        """The orthogonal regularization of the generator's kernels (before its weight)."""
        return regularizers.orthogonal_penalty(self.generator_network.kernels())

    def generator_losses(self, x, labels=None):
        terms = super().generator_losses(x, labels)
        if self.orthogonal_weight > 0:
            terms["generator_loss"] = terms["generator_loss"] + \
                self.orthogonal_weight * self.orthogonal_penalty()
        return terms

    def draw_samples(self, n, seed, truncation=1.0, label=-1):
        shape = tf.stack([n, self.latent_dim])
        psi = tf.cast(truncation, tf.float32)
        truncated = psi * tf.random.stateless_truncated_normal(shape, seed=seed)
        z = tf.where(psi < 1.0, truncated, tf.random.stateless_normal(shape, seed=seed))
        if not self.num_classes:
            return self.generated(z)
        return self.generated(z, self.sample_labels(
            n, tf.random.experimental.stateless_fold_in(seed, 1), label))
