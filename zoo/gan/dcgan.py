"""DCGAN under its own name: the paper's all-convolutional networks, any distance.

    zoo.get("dcgan", dataset="digits")                          # non-saturating loss
    zoo.get("dcgan", dataset="fashion_mnist", distance="hinge_sn")
"""

import keras

from zoo.gan import regularizers
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.distances import DISTANCES, GAN
from zoo.registry import register


def image_training(learning_rate, digits_epochs=300, fashion_epochs=10):
    """`zoo train`'s defaults on the two image datasets (batch 64)."""
    return {"digits": dict(batch_size=64, epochs=digits_epochs, learning_rate=learning_rate),
            "fashion_mnist": dict(batch_size=64, epochs=fashion_epochs,
                                  learning_rate=learning_rate)}


@register("dcgan", presets={"digits": dict(latent_dim=32, filters=64),
                            "fashion_mnist": dict(latent_dim=100, filters=64)},
          training=image_training(2e-4), default_dataset="digits")
@keras.saving.register_keras_serializable(package="zoo")
class DCGAN(GAN):
    """Deep convolutional GAN.

    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", ICLR 2016,
    https://arxiv.org/abs/1511.06434 (Sec. 3, "Architecture guidelines"): no
    pooling, strided convolutions in the discriminator and fractionally strided
    (transposed) ones in the generator, batch norm in both networks (not on the
    generator's output nor the discriminator's input layer), ReLU in the
    generator with ``tanh`` on its output, LeakyReLU (slope 0.2) in the
    discriminator, Adam(2e-4, beta_1=0.5), the non-saturating loss.

    The architecture is a plug-in of :class:`~zoo.gan.distances.GAN`: any
    ``distance`` of ``DISTANCES`` trains it. The critic's batch norm couples the
    examples of a batch, so it is left out (``critic_batch_norm=False``) under a
    distance whose regularizer penalises per-example gradients (WGAN-GP's, R1,
    Sobolev), and asking for it there is an error.

    Images only (the networks are convolutional).

    Args:
        distance: a name in ``DISTANCES`` (default ``non_saturating``).
        critic_batch_norm: batch norm in the critic; None: on unless the
            distance has a penalty.
        Others: as :class:`~zoo.gan.distances.GAN` (``latent_dim``, ``filters``).
    """

    default_distance = "non_saturating"

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, critic_batch_norm=None, **kwargs):
        distance = kwargs.get("distance") or self.default_distance
        recipe = DISTANCES.get(distance, ({},))[0]
        penalised = regularizers.REGULARIZERS.get(recipe.get("regularizer", "none")) is not None
        if critic_batch_norm is None:
            critic_batch_norm = not penalised
        self.critic_batch_norm = bool(critic_batch_norm)
        kind = type(self).__name__
        if self.critic_batch_norm and penalised:
            raise ValueError(f"{kind}: critic_batch_norm couples a batch's examples, which the "
                             f"per-example penalty of distance={distance!r} forbids; expected "
                             f"critic_batch_norm=False (or None) with it")
        if len(tuple(data_shape)) != 3:
            raise ValueError(f"{kind}: expected images, data_shape (H, W, C), got "
                             f"{tuple(data_shape)}")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)

    def build_critic(self):
        return DCGANCritic(self.filters, batch_norm=self.critic_batch_norm,
                           spectral_norm=self.spectral_norm, outputs=self.critic_outputs,
                           num_classes=self.num_classes, score_bias=self.objective.score_bias,
                           name="critic")
