"""WGAN-GP: Wasserstein GAN with gradient penalty (Gulrajani et al. 2017)."""

import keras

from zoo.datasets.toy import for_each_density
from zoo.gan.base import AdversarialModel
from zoo.registry import register


@register(
    "wgan_gp",
    presets={
        **for_each_density(latent_dim=2, hidden_units=128, num_hidden=3),
        "digits": dict(latent_dim=32, filters=32),
        "fashion_mnist": dict(latent_dim=64, filters=32),
    },
    training={
        # Learning rates for Adam(lr, beta_1=0, beta_2=0.9): WGANGP.default_optimizer.
        **for_each_density(batch_size=256, epochs=50, learning_rate=1e-3, steps_per_epoch=400),
        "digits": dict(batch_size=64, epochs=300, learning_rate=2e-4),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=2e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class WGANGP(AdversarialModel):
    """Wasserstein GAN with gradient penalty.

    Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of
    Wasserstein GANs", NeurIPS 2017, https://arxiv.org/abs/1704.00028
    (Algorithm 1); the Wasserstein GAN itself: Arjovsky, Chintala & Bottou 2017,
    https://arxiv.org/abs/1701.07875.

    The :class:`~zoo.gan.base.AdversarialModel` with the Wasserstein loss and the
    gradient penalty: the critic minimises
    ``E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2]`` with
    ``x_hat`` uniformly on the segments between real and generated examples, so
    that ``E[D(x)] - E[D(G(z))]`` estimates the Wasserstein-1 distance (up to the
    Lipschitz constant); the generator minimises ``-E[D(G(z))]``. Each
    ``train_step`` makes one critic update on one real batch, and every
    ``n_critic``-th step also one generator update, so that ``fit`` runs
    Algorithm 1 with one graph per step. The DCGAN critic has no batch norm
    (Sec. 4 of the paper: the penalty is per example, which batch norm would
    break).

    Losses (``loss_names``): ``critic_loss``; ``generator_loss`` (-E[D(G(z))],
    reported on each step's generated batch); ``gradient_penalty`` (before its
    weight ``gp_weight``); ``wasserstein`` (E[D(x)] - E[D(G(z))], the critic's
    estimate of W1, which falls as the generator improves).

    ``compile(optimizer=None, critic_optimizer=None, **kwargs)`` takes the
    generator's optimizer (default Adam(1e-4, beta_1=0, beta_2=0.9), as in the
    paper) and the critic's (default: a fresh copy of the generator's).

    Args:
        data_shape: ``(2,)`` for 2-D data or ``(H, W, C)`` for images with H and
            W divisible by 4.
        num_levels: intensity levels of raw images (None for continuous data).
        latent_dim: dimension of the latent z ~ N(0, I).
        filters: channels of the DCGAN networks (images).
        hidden_units: width of the MLPs (2-D data).
        num_hidden: hidden layers of the MLPs (2-D data).
        n_critic: critic updates per generator update.
        gp_weight: lambda, the weight of the gradient penalty.
        ema_decay: decay of the generator's weight average (0: none, the paper's).
    """

    loss_names = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")
    fixed_parameters = ("adversarial_loss", "divergence", "regularizer", "regularizer_weight",
                        "weight_clip", "bandwidths", "num_projections", "learned_critic",
                        "critic_outputs")

    @staticmethod
    def default_optimizer(learning_rate=1e-4):
        """Adam(learning_rate, beta_1=0, beta_2=0.9), the optimizer of Algorithm 1.

        Momentum (beta_1 = 0.9, Keras' default) makes WGAN-GP train markedly
        worse; pass this (or your own) to ``compile``.
        """
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.0, beta_2=0.9)

    def __init__(self, data_shape=(2,), num_levels=None, latent_dim=32, filters=32,
                 hidden_units=128, num_hidden=3, n_critic=5, gp_weight=10.0, **kwargs):
        kwargs.setdefault("name", "wgan_gp")
        if float(gp_weight) < 0:
            raise ValueError(f"WGANGP: expected gp_weight >= 0, got {gp_weight}")
        self.gp_weight = float(gp_weight)
        super().__init__(data_shape=data_shape, num_levels=num_levels, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, num_hidden=num_hidden,
                         n_critic=n_critic, adversarial_loss="wasserstein",
                         regularizer="gradient_penalty", regularizer_weight=gp_weight,
                         **kwargs)

    def gradient_penalty(self, real, fake, eps=None):
        """E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps real + (1 - eps) fake.

        ``eps ~ U[0, 1]`` per example (Algorithm 1, lines 4-8) unless given
        (shape ``(batch,)``); ``real`` and ``fake`` are in model space.
        """
        return self.penalty(self.scores, real, fake, self.rng, eps=eps)
