"""The Gaussian VAE (Kingma & Welling 2014) and the beta-VAE (Higgins et al. 2017)."""

import keras

from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder


@register(
    "vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class GaussianVAE(VariationalAutoencoder):
    """Variational autoencoder with a diagonal Gaussian posterior and prior N(0, I).

    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    https://arxiv.org/abs/1312.6114; the beta weight on the KL term: Higgins et
    al., "beta-VAE", ICLR 2017, https://openreview.net/forum?id=Sy2fzU9gl.

    An encoder gives q(z|x) = N(mean, diag(exp(log_scale))^2); a decoder gives
    p(x|z) over the image's discrete levels. The evidence lower bound

        ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) <= log p(x)

    is estimated with one reparameterised sample z = mean + exp(log_scale) eps
    for the first term, and the KL in closed form (Appendix B of the paper).
    Training minimises ``reconstruction + beta * kl``; with ``beta = 1`` that is
    the negative ELBO, an upper bound on the NLL, and ``bits_per_dim`` reports
    the negative ELBO (not the beta-weighted loss) in bits per dimension.

    The observation models, the KL warm-up and the arguments are those of
    :class:`~zoo.vae.base.VariationalAutoencoder`.

    Losses (``loss_names``): ``loss`` (reconstruction + beta kl, optimised),
    ``reconstruction`` (-E_q log p(x|z), nats per example), ``kl`` (nats per
    example), ``bits_per_dim`` ((reconstruction + kl) / (D ln 2)).

    Class-conditional (``num_classes > 0``): the prior is the class's own
    Gaussian p(z | y) (:class:`~zoo.nn.class_conditional_gaussian.ClassConditionalGaussian`,
    learned, starting at N(0, I)), the encoder and decoder shared, so that
    ``ELBO(x | y) = E_q[log p(x|z)] - KL(q(z|x) || p(z|y)) <= log p(x | y)`` (the
    KL in closed form); ``sample(label=y)`` draws z from p(z | y). ``elbo`` takes
    ``labels``; without them ``nll`` bounds -log p(x) under uniform classes.
    """

    conditional = True

    def __init__(self, *args, **kwargs):  # VariationalAutoencoder's arguments
        kwargs.setdefault("name", "vae")
        super().__init__(*args, **kwargs)

    @classmethod
    def from_config(cls, config):
        # Checkpoints written before zoo 0.2 name the observation model `likelihood`.
        if "likelihood" in config:
            config = {**config, "observation": config["likelihood"]}
            del config["likelihood"]
        return super().from_config(config)


@register(
    "beta_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, beta=4.0,
                       kl_warmup_steps=2000),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512, beta=4.0,
                              kl_warmup_steps=5000),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class BetaVAE(GaussianVAE):
    """The beta-VAE: the Gaussian VAE with the KL term weighted by beta > 1.

    Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
    Variational Framework", ICLR 2017, https://openreview.net/forum?id=Sy2fzU9gl,
    eq. 4: ``E_q log p(x|z) - beta KL(q(z|x) || p(z))``. With beta > 1 the
    training objective is no longer a bound on log p(x); the model still reports
    the ELBO itself (``bits_per_dim``, ``nll``), which is. The KL weight rises
    linearly from 0 over ``kl_warmup_steps`` optimizer steps (Bowman et al. 2016,
    https://arxiv.org/abs/1511.06349, Sec. 3.1; Sonderby et al. 2016).

    Arguments: those of :class:`~zoo.vae.base.VariationalAutoencoder`; the
    presets set beta = 4 and a warm-up.
    """

    def __init__(self, beta=4.0, **kwargs):
        kwargs.setdefault("name", "beta_vae")
        super().__init__(beta=beta, **kwargs)
