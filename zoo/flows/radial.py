"""Radial flow (Rezende & Mohamed 2015) as a density model."""

import keras

from zoo.flows.base import TOY_TRAINING, TransformStackFlow
from zoo.datasets.toy import for_each_density
from zoo.flows.steps.radial import RadialTransform
from zoo.registry import register


@register(
    "radial",
    presets=for_each_density(num_layers=32),
    training=for_each_density(TOY_TRAINING, learning_rate=1e-2),
    default_dataset="moons",
)
@keras.saving.register_keras_serializable(package="zoo")
class RadialFlow(TransformStackFlow):
    """A stack of radial transformations, ``f(z) = z + beta (z - z0) / (alpha + ||z - z0||)``.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
    https://arxiv.org/abs/1505.05770, Sec. 4.1 and Appendix A.2 (the constraint
    ``beta >= -alpha`` that keeps each step invertible).

    Directions: sampling and ``decode`` are closed form. The paper needs only
    that direction (a posterior); as a density model of data, ``log_prob``,
    ``encode`` and training invert each step. The paper gives no inverse, but it
    reduces to a scalar equation for the radius ``r = ||z - z0||`` which is a
    quadratic with one non-negative root, so the inverse here is closed form too
    (no iteration), about as cheap as the forward. Vector data only.

    Args:
        data_shape: ``(D,)``.
        num_levels: intensity levels of raw (flattened) images, None for
            continuous data (the presets are the 2-D densities).
        num_layers: number of radial transformations.
        logit_alpha: alpha of the logit preprocessing (images only).
    """

    transform_layer = RadialTransform

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "radial")
        super().__init__(*args, **kwargs)
