"""Planar flow (Rezende & Mohamed 2015) as a density model."""

import keras

from zoo.flows.base import TOY_TRAINING, TransformStackFlow
from zoo.datasets.toy import for_each_density
from zoo.flows.steps.planar import PlanarTransform
from zoo.registry import register


@register(
    "planar",
    presets=for_each_density(num_layers=32),
    training=for_each_density(TOY_TRAINING, learning_rate=3e-3),
    default_dataset="moons",
)
@keras.saving.register_keras_serializable(package="zoo")
class PlanarFlow(TransformStackFlow):
    """A stack of planar transformations, ``f(z) = z + u_hat tanh(w^T z + b)``.

    Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
    https://arxiv.org/abs/1505.05770, Sec. 4.1 and Appendix A.1 (the constraint
    ``w^T u_hat > -1`` that keeps each step invertible).

    Directions: sampling and ``decode`` are closed form, one cheap step per
    layer. The paper needs only that direction (a posterior); as a density model
    of data, ``log_prob``, ``encode`` and training must invert each step, which has
    no closed form: a scalar equation solved by bisection (40 steps) plus one
    Newton step per layer, so density evaluation is iterative, about 40 times the
    work of sampling (still cheap, and exact to float32 round-off; the gradient is
    the implicit-function one). Vector data only.

    Args:
        data_shape: ``(D,)``.
        num_levels: intensity levels of raw (flattened) images, None for
            continuous data (the presets are the 2-D densities).
        num_layers: number of planar transformations.
        logit_alpha: alpha of the logit preprocessing (images only).
    """

    transform_layer = PlanarTransform

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "planar")
        super().__init__(*args, **kwargs)
