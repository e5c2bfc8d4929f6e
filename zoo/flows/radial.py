"""Radial flow (Rezende & Mohamed 2015) as a density model."""

import keras
import tensorflow_probability as tfp

from zoo.flows.base import FlowModel
from zoo.datasets.toy import TOY_NAMES as TOY_2D
from zoo.layers.radial import RadialTransform
from zoo.registry import register

tfb = tfp.bijectors


@register(
    "radial",
    family="flow",
    losses=FlowModel.loss_names,
    presets={name: dict(data_shape=(2,), num_layers=32) for name in TOY_2D},
    training={name: dict(batch_size=256, epochs=20, learning_rate=1e-2, steps_per_epoch=200)
              for name in TOY_2D},
    default_dataset="moons",
)
@keras.saving.register_keras_serializable(package="zoo")
class RadialFlow(FlowModel):
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

    def __init__(self, data_shape=(2,), num_levels=None, num_layers=32, logit_alpha=0.05,
                 **kwargs):
        kwargs.setdefault("name", "radial")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        if len(self.data_shape) != 1:
            raise ValueError(f"RadialFlow: expected data_shape (D,), got {self.data_shape}")
        if num_layers < 1:
            raise ValueError(f"RadialFlow: expected num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.transforms = [RadialTransform(self.event_size, name=f"radial_{i}")
                           for i in range(num_layers)]
        self.build_model()

    def flow_bijector(self):
        """Latent -> data; TFP's Chain applies its list right to left."""
        return tfb.Chain([t.bijector() for t in reversed(self.transforms)])
