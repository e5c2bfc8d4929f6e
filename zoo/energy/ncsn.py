"""NCSN: a noise-conditional score network sampled by annealed Langevin dynamics."""

import keras
import numpy as np
import tensorflow as tf

from zoo.base import LIKELIHOODS, SampleOption
from zoo.datasets.toy import for_each_density
from zoo.energy import langevin, score_matching
from zoo.energy.base import TOY_TRAINING, EnergyModel
from zoo.energy.networks import NoiseConditionalScoreNetwork
from zoo.registry import register
from zoo.validation import on_batches

OBJECTIVES = ("denoising", "sliced")


@register(
    "ncsn",
    presets={
        **for_each_density(hidden_units=128, num_hidden=3, sigma_max=3.0, sigma_min=0.01,
                           num_noise_levels=10, step_size=2e-5, num_steps=50),
        "digits": dict(filters=32, sigma_max=1.0, sigma_min=0.01, num_noise_levels=10,
                       step_size=2e-5, num_steps=20),
        "fashion_mnist": dict(filters=32, sigma_max=1.0, sigma_min=0.01, num_noise_levels=10,
                              step_size=2e-5, num_steps=20),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class NCSN(EnergyModel):
    """A noise-conditional score network ``s(x, sigma)``, trained by denoising
    score matching over a geometric ladder of noise levels and sampled by
    annealed Langevin dynamics.

    Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
    Distribution", NeurIPS 2019, https://arxiv.org/abs/1907.05600: the loss
    ``sigma^2 / 2 |s(x + sigma z, sigma) + z / sigma|^2`` with ``sigma`` drawn
    per example from the ladder (Eq. 5-6), and Algorithm 1's sampler: for each
    level from the largest, ``num_steps`` Langevin steps of size
    ``step_size * sigma_i^2 / sigma_L^2``. The chains then take one denoising
    step ``x + sigma_L^2 s(x, sigma_L)`` (Song & Ermon 2020, "Improved
    Techniques for Training Score-Based Generative Models",
    https://arxiv.org/abs/2006.09011; Jolicoeur-Martineau et al. 2021,
    https://arxiv.org/abs/2009.05475): by Tweedie's formula the posterior mean
    of the data given the chains' last noise level, which annealed Langevin
    leaves in them (the sampler option ``denoise``, 1 by default; 0: the
    chains' ends). With ``objective="sliced"`` the score is
    fitted by sliced score matching instead (Song, Garg, Shi & Ermon 2019,
    https://arxiv.org/abs/1905.07088), on the same noisy data. The objective
    is the diffusion family's denoising one (a noise predictor is a scaled
    score); the sampler differs. There is no energy, so no likelihood.

    Args:
        sigma_max, sigma_min, num_noise_levels: the geometric ladder.
        sigmas: an explicit ladder (decreasing), instead of the geometric one.
        objective: ``"denoising"`` or ``"sliced"`` score matching.
        hidden_units, num_hidden: the score MLP (points).
        filters: the score U-Net's channels (images).
        step_size, num_steps, noise: the sampler's defaults (``num_steps`` per
            noise level), as :class:`~zoo.energy.base.EnergyModel`.
        denoise: the sampler option ``denoise``'s default: the final denoising
            step on (True) or off.
    """

    loss_names = ("loss",)

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, sigma_max=1.0, sigma_min=0.01,
                 num_noise_levels=10, sigmas=None, objective="denoising", hidden_units=128,
                 num_hidden=3, filters=32, denoise=True, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        if not isinstance(denoise, (bool, np.bool_)) and denoise not in (0, 1):
            raise ValueError(f"NCSN: expected denoise True or False, got {denoise!r}")
        self.denoise = bool(denoise)
        self.sample_options = {
            **self.sample_options,
            "denoise": SampleOption(int(self.denoise), "int32", at_least=0, at_most=1,
                                    doc="1: a final denoising step at the last noise "
                                        "level (Tweedie's formula); 0: none")}
        self.sigma_max = float(sigma_max)
        self.sigma_min = float(sigma_min)
        self.num_noise_levels = int(num_noise_levels)
        if sigmas is None:
            if not (self.sigma_max > self.sigma_min > 0) or self.num_noise_levels < 2:
                raise ValueError(f"NCSN: expected a decreasing ladder, sigma_max > sigma_min "
                                 f"> 0 and num_noise_levels >= 2, got {sigma_max}, "
                                 f"{sigma_min} and {num_noise_levels}")
            ladder = langevin.geometric_ladder(self.sigma_max, self.sigma_min,
                                               self.num_noise_levels)
        else:
            ladder = langevin.check_ladder(sigmas, "NCSN")
        self.sigmas = None if sigmas is None else [float(s) for s in sigmas]
        self.ladder = np.asarray(ladder, np.float32)
        if objective not in OBJECTIVES:
            raise ValueError(f"NCSN: expected objective one of {list(OBJECTIVES)}, got "
                             f"{objective!r}")
        self.objective = objective
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.filters = int(filters)
        self.score_network = NoiseConditionalScoreNetwork(
            self.hidden_units, self.num_hidden, self.filters, name="score_network")
        self.build_model()

    @property
    def likelihood(self):
        return "none"

    @classmethod
    def likelihood_kinds(cls):
        return ("none",)

    @property
    def likelihood_description(self):
        return LIKELIHOODS["none"]

    def call(self, x):
        return self.score_network(self.to_model(x), self.ladder[0])

    def score(self, x, sigma):
        """s(x, sigma) on scaled data."""
        return self.score_network(x, sigma)

    def compute_losses(self, x, training=False):
        scaled = self.to_model(x)
        batch = tf.shape(x)[0]
        seeds = [self.rng.next_seed() for _ in range(3)] if training else \
            [tf.constant([0, k], tf.int32) for k in range(3)]
        level = tf.random.stateless_uniform(tf.reshape(batch, [1]), seeds[0], 0,
                                            len(self.ladder), tf.int32)
        sigmas = tf.gather(tf.constant(self.ladder), level)
        z = tf.random.stateless_normal(tf.shape(scaled), seeds[1])
        if self.objective == "denoising":
            losses = score_matching.denoising_loss(self.score, scaled, sigmas, z)
        else:
            v = tf.random.stateless_normal(tf.shape(scaled), seeds[2])
            losses = score_matching.sliced_loss(self.score, scaled, sigmas, z, v)
        return {"loss": tf.reduce_mean(losses)}

    def langevin_chains(self, start, seed, step_size, num_steps, noise, labels, keep,
                        denoise=None):
        """Annealed Langevin dynamics (Algorithm 1), `num_steps` per level, then
        the denoising step where `denoise` is 1 (the model's default if None)."""
        return langevin.annealed_langevin(
            self.score, start, self.ladder, step_size, num_steps, seed, noise, self.bounds,
            keep, self.denoise if denoise is None else denoise)

    def langevin_steps(self, options):
        return int(options["num_steps"]) * len(self.ladder)

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """The base's, and whether the samples took the final denoising step."""
        options = {**{k: o.default for k, o in self.sample_options.items()},
                   **settings.get("sample_options", {})}
        return {**super().extra_metrics(data, settings, seed, batch_size, run_dir),
                "denoised": bool(options["denoise"])}

    def data_signatures(self):
        return {"score": (lambda x: {"score": self.score_of(x)}, [self.data_spec()])}

    @on_batches("data")
    def score_of(self, x):
        """The score at the smallest noise level of raw data (in the model's scaled
        units), per value."""
        return self.score(self.to_model(self.validate_inputs(x, "score")), self.ladder[-1])
