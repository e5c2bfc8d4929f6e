"""Inverse autoregressive flow (Kingma et al. 2016)."""

import keras
import tensorflow_probability as tfp

from zoo.flows.base import TOY_TRAINING
from zoo.flows.maf import MAF
from zoo.datasets.toy import for_each_density
from zoo.registry import register

tfb = tfp.bijectors


@register(
    "iaf",
    presets={
        **for_each_density(num_layers=5, hidden_units=64, num_hidden=2),
        "digits": dict(num_layers=5, hidden_units=256, num_hidden=1),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
    },
    default_dataset="moons",
)
@keras.saving.register_keras_serializable(package="zoo")
class IAF(MAF):
    """Inverse autoregressive flow.

    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved Variational
    Inference with Inverse Autoregressive Flow", NeurIPS 2016,
    https://arxiv.org/abs/1606.04934.

    The inverse of :class:`MAF`: each of the ``num_layers`` transforms inverts a
    ``tfb.MaskedAutoregressiveFlow`` transform around a Keras :class:`MADE` whose
    input is the latent side, ``x = (z - t(z)) exp(-s(z))`` with ``(t, s)``
    autoregressive in ``z`` (the affine IAF step of Sec. 3 / eq. 10, with the scale
    written as ``exp(-s)``); the order is reversed (``tfb.Permute``) between
    transforms, and images are flattened inside the flow (``tfb.Reshape``).

    Directions: sampling and ``decode`` are the fast ones, one MADE pass per
    transform. Density evaluation of arbitrary data (``log_prob``, ``encode``, and
    so maximum-likelihood training with ``fit``) must invert each transform: D
    sequential MADE passes per transform (the first on a single row, the log-det
    coming with the last), D the number of dimensions. It is exact, just about D
    times slower than MAF's; IAF's main use is as a flexible posterior (or a sampler
    whose samples' densities come almost for free).

    Args:
        data_shape: shape of one example, ``(D,)`` or ``(H, W, C)``.
        num_levels: intensity levels of raw images (None for continuous data).
        num_layers: number of autoregressive transforms (MADEs).
        hidden_units: width of each MADE's hidden layers.
        num_hidden: number of hidden layers of each MADE.
        logit_alpha: alpha of the logit preprocessing (images only).
    """

    def __init__(self, *args, **kwargs):  # MAF's arguments
        kwargs.setdefault("name", "iaf")
        super().__init__(*args, **kwargs)

    def step_bijectors(self):
        """The inverted autoregressive transforms, latent side first."""
        return [tfb.Invert(transform.bijector()) for transform in self.transforms]
