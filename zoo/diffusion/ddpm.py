"""DDPM (Ho, Jain & Abbeel 2020)."""

import keras

from zoo.datasets.toy import for_each_density
from zoo.diffusion.base import DiffusionModel
from zoo.registry import register

# 2-D densities: the MLP; digits (8x8): levels 8, 4; Fashion-MNIST (28x28): 28, 14, 7.
POINTS = dict(hidden_units=128, num_hidden=3, ema_decay=0.999)
DIGITS = dict(channels=32, channel_mults=(1, 2), num_res_blocks=1, ema_decay=0.999,
              sampling_steps=100)
FASHION = dict(channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, ema_decay=0.9995,
               bound_timesteps=50, sampling_steps=50)
TRAINING = {
    **for_each_density(batch_size=256, epochs=20, learning_rate=1e-3, steps_per_epoch=200),
    "digits": dict(batch_size=64, epochs=100, learning_rate=2e-4),
    "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=2e-4),
}


@register(
    "ddpm",
    presets={**for_each_density(POINTS), "digits": DIGITS, "fashion_mnist": FASHION},
    training=TRAINING,
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class DDPM(DiffusionModel):
    """Denoising diffusion probabilistic model.

    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    https://arxiv.org/abs/2006.11239. The network predicts the noise and is
    trained on ``L_simple = E_{t, x_0, eps} ||eps - eps_theta(x_t, t)||^2`` with t
    uniform (eq. 14; the mean over the values here), on the linear schedule
    (beta from 1e-4 to 0.02 at T = 1000). The reverse variance is fixed at the
    posterior's beta~_t (the paper's sigma_t^2 = beta~_t, which it found as good
    as beta_t). Sampling and export use an exponential moving average of the
    network's weights (``ema_decay``; 0.9999 in the paper, less for the short
    runs of the presets). Everything else (the bound with the discretized
    Gaussian decoder, the samplers, guidance, completion) is
    :class:`~zoo.diffusion.base.DiffusionModel`'s.

    Args:
        timesteps: T (1000 in the paper).
        schedule: ``"linear"`` (the paper's) or ``"cosine"``.
        (others): as :class:`~zoo.diffusion.base.DiffusionModel`.
    """

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, timesteps=1000, schedule="linear",
                 **kwargs):
        kwargs.setdefault("name", "ddpm")
        super().__init__(data_shape=data_shape, num_levels=num_levels, timesteps=timesteps,
                         schedule=schedule, **kwargs)
        self.build_model()
