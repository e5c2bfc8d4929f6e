"""Diffusion-GAN: the critic sees real and generated images diffused to a timestep
of an adaptive range, on top of any distance."""

import keras
import numpy as np
import tensorflow as tf

from zoo.diffusion import schedules
from zoo.gan.dcgan import image_training
from zoo.gan.distances import GAN
from zoo.registry import register


@register("diffusion_gan", presets={
    "digits": dict(latent_dim=32, filters=32),
    "fashion_mnist": dict(latent_dim=64, filters=32),
}, training=image_training(2e-4), default_dataset="digits")
@keras.saving.register_keras_serializable(package="zoo")
class DiffusionGAN(GAN):
    """A GAN whose critic compares diffused data.

    Wang, Zheng, He, Chen & Zhou, "Diffusion-GAN: Training GANs with Diffusion",
    ICLR 2023 (arXiv 2022), https://arxiv.org/abs/2206.02262, Sec. 3: real and
    generated images (in the networks' [-1, 1] space) are both diffused,
    ``y_t = sqrt(abar_t) y + sqrt(1 - abar_t) sigma eps``, each to its own
    timestep ``t`` drawn uniformly from ``{0, ..., T}`` (the paper's "uniform"
    distribution), with the linear schedule of betas from 1e-4 to 2e-2 over
    ``t_max`` steps (``zoo.diffusion.schedules``, the zoo's one forward process;
    ``t = 0`` is no noise). The critic is trained, and the generator's loss
    taken, on the diffused batches, through any ``distance`` of ``DISTANCES``
    that scores examples (default ``non_saturating``); gradients reach the
    generator through the diffusion (reparametrised).

    The adaptive range (Sec. 3.3, Eq. 7): the critic's overfitting
    ``r_d = E[sign(D(y_real) - 1/2)]`` (the sign of its score, a logit) is
    averaged over ``adjust_interval`` critic steps, and then
    ``T <- clip(T + sign(r_d - d_target) * t_step, t_min, t_max)``: T grows
    when the critic is too sure of the real data. ``T`` and the running sums
    are weights of the model, so checkpoints hold them and a resumed run
    continues from its T. Timesteps and noise come from the model's stream
    (``rng``) and are drawn only while ``T >= 1``: below, every timestep is 0, so
    that at ``T = 0`` a training step is the base GAN's step exactly (the same
    weights and the same draws).

    Left out: the paper's conditioning of the critic on t (the critic here sees
    y_t alone) and its "priority" timestep distribution.

    Args:
        t_min, t_max: the range of T (``t_max`` also sizes the schedule).
        t_step: C of the update.
        d_target: the target of ``r_d`` (0.6 in the paper).
        adjust_interval: critic steps per update of T (4 in the paper).
        noise_std: sigma of the diffusion's noise (0.05 in the paper's code).
        distance: a name in ``DISTANCES`` with a critic that scores examples.
        Others: as :class:`~zoo.gan.distances.GAN` (DCGAN networks).
    """

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, t_min=5, t_max=500, t_step=1.0,
                 d_target=0.6, adjust_interval=4, noise_std=0.05, **kwargs):
        kind = type(self).__name__
        self.t_min, self.t_max = int(t_min), int(t_max)
        self.t_step = float(t_step)
        self.d_target = float(d_target)
        self.adjust_interval = int(adjust_interval)
        self.noise_std = float(noise_std)
        if not 0 <= self.t_min <= self.t_max or self.t_max < 1:
            raise ValueError(f"{kind}: expected 0 <= t_min <= t_max and t_max >= 1, got t_min="
                             f"{t_min}, t_max={t_max}")
        if self.t_step < 0 or not -1.0 <= self.d_target <= 1.0 or self.adjust_interval < 1 \
                or self.noise_std <= 0:
            raise ValueError(f"{kind}: expected t_step >= 0, d_target in [-1, 1], "
                             f"adjust_interval >= 1 and noise_std > 0, got {t_step}, "
                             f"{d_target}, {adjust_interval}, {noise_std}")
        if len(tuple(data_shape)) != 3:
            raise ValueError(f"{kind}: expected images, data_shape (H, W, C), got "
                             f"{tuple(data_shape)}")
        abar = schedules.tables(np.linspace(1e-4, 2e-2, self.t_max))["alphas_cumprod"]
        # index t: t diffusion steps; t = 0 is the data itself
        self.alphas_cumprod = np.concatenate([[1.0], abar]).astype(np.float32)
        kwargs.setdefault("name", "diffusion_gan")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        if self.objective.pairwise:
            raise ValueError(f"{kind}: the adaptive T reads a critic's scores of examples; "
                             f"expected a distance on scores, got {self.distance!r}")

    def build_model(self):
        weight = dict(shape=(), trainable=False, aggregation="mean")
        self.diffusion_T = self.add_weight(
            initializer=keras.initializers.Constant(float(self.t_min)), name="diffusion_T",
            **weight)
        self.overfitting_sum = self.add_weight(initializer="zeros", name="overfitting_sum",
                                               **weight)
        self.overfitting_count = self.add_weight(initializer="zeros", name="overfitting_count",
                                                 **weight)
        super().build_model()

    # ------------------------------------------------------------ diffusion
    def diffuse(self, y):
        """Each example of a model-space batch diffused to a timestep drawn
        uniformly from {0, ..., floor(T)}; below T = 1, the batch itself (and
        nothing drawn)."""

        def draw():
            batch = tf.shape(y)[0]
            top = tf.cast(tf.floor(self.diffusion_T), tf.int32) + 1
            t = tf.random.stateless_uniform(tf.stack([batch]), self.rng.next_seed(),
                                            minval=0, maxval=top, dtype=tf.int32)
            noise = self.noise_std * self.rng.normal(tf.shape(y))
            return schedules.q_sample(y, t, noise, self.alphas_cumprod)

        return tf.cond(self.diffusion_T >= 1.0, draw, lambda: tf.identity(y))

    def adapt(self, real, labels=None):
        """Accumulates ``r_d`` on the diffused real batch; every
        ``adjust_interval``-th call, moves T by ``sign(r_d - d_target) t_step``."""
        signs = tf.reduce_mean(tf.sign(tf.stop_gradient(self.scores(real, False, labels))))
        total = self.overfitting_sum + signs
        count = self.overfitting_count + 1.0
        due = count >= self.adjust_interval
        r_d = total / count
        moved = tf.clip_by_value(self.diffusion_T + tf.sign(r_d - self.d_target) * self.t_step,
                                 float(self.t_min), float(self.t_max))
        self.diffusion_T.assign(tf.where(due, moved, self.diffusion_T))
        self.overfitting_sum.assign(tf.where(due, 0.0, total))
        self.overfitting_count.assign(tf.where(due, 0.0, count))

    # ------------------------------------------------------------ the losses
    def compute_losses(self, x, training=False, labels=None):
        """The base GAN's terms on diffused batches (training), adapting T."""
        if not training:
            return super().compute_losses(x, training, labels)
        if self.num_classes and labels is None:
            labels = self.random_labels(tf.shape(x)[0])
        real = self.to_model_space(x, noise=True)
        fake = self.generate_from(self.latent_noise(tf.shape(x)[0]), labels, training)
        real, fake = self.diffuse(real), self.diffuse(fake)
        terms = self.critic_terms(real, fake, training, labels)
        self.adapt(real, labels)
        return terms

    def generator_losses(self, x, labels=None):
        fake = self.diffuse(self.generate_from(self.latent_noise(tf.shape(x)[0]), labels, True))
        return {"generator_loss": self.objective.generator_loss(self.scores(fake, True, labels))}
