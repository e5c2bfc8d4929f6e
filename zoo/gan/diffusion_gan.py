"""Diffusion-GAN: the critic sees real and generated images diffused to a timestep
of an adaptive range, and the timestep, on top of any distance."""

import keras
import numpy as np
import tensorflow as tf

from zoo.diffusion import schedules
from zoo.gan.dcgan import image_training
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.distances import GAN
from zoo.registry import register


@register("diffusion_gan", presets={
    "digits": dict(latent_dim=32, filters=32),
    "fashion_mnist": dict(latent_dim=64, filters=32),
}, training=image_training(2e-4), default_dataset="digits")
@keras.saving.register_keras_serializable(package="zoo")
class DiffusionGAN(GAN):
    """A GAN whose critic compares diffused data, told the timestep.

    Wang, Zheng, He, Chen & Zhou, "Diffusion-GAN: Training GANs with Diffusion",
    ICLR 2023 (arXiv 2022), https://arxiv.org/abs/2206.02262, Sec. 3: real and
    generated images (in the networks' [-1, 1] space) are both diffused,
    ``y_t = sqrt(abar_t) y + sqrt(1 - abar_t) sigma eps``, with the linear
    schedule of betas from 1e-4 to 2e-2 over ``t_max`` steps
    (``zoo.diffusion.schedules``, the zoo's one forward process; ``t = 0`` is no
    noise), to timesteps drawn from ``{0, ..., T}`` by ``t_sampling``:
    ``"priority"`` (the paper's default, ``p(t) = t / sum_s s``, so t >= 1)
    or ``"uniform"``. Each real example and the generated one beside it in the
    batch share their t (so that a penalty's points between them have one t);
    the generator's step draws its own. The critic is ``D(y, t)``: the DCGAN
    critic with a projection of t's embedding (``timestep_dim`` wide; see
    :class:`~zoo.gan.critic.Critic`), zero at t = 0, where the paper's code maps
    t through StyleGAN2's conditioning network instead. It is trained, and the
    generator's loss taken, on the diffused batches at their timesteps, through
    any ``distance`` of ``DISTANCES`` that scores examples (default
    ``non_saturating``); gradients reach the generator through the diffusion
    (reparametrised). The ``critic`` method and signature score undiffused data
    at t = 0.

    The adaptive range (Sec. 3.3, Eq. 7): the critic's overfitting
    ``r_d = E[sign(D(y_real, t) - 1/2)]`` (the sign of its score, a logit) is
    averaged over ``adjust_interval`` critic steps, and then
    ``T <- clip(T + sign(r_d - d_target) * t_step, t_min, t_max)``: T grows
    when the critic is too sure of the real data. ``T`` and the running sums
    are weights of the model, so checkpoints hold them and a resumed run
    continues from its T. Timesteps and noise come from the model's stream
    (``rng``) and are drawn only while ``T >= 1``: below, every timestep is 0, so
    that at ``T = 0`` a training step is the base GAN's step exactly (the same
    draws, the same weights; the timestep projection sees t = 0 and stays as
    it is).

    Left out: the paper's code also draws t = 0 for half of the examples (its
    table of 64 timesteps, 32 of them 0), and weights priority by ``t - 1``.

    Args:
        t_min, t_max: the range of T (``t_max`` also sizes the schedule).
        t_step: C of the update.
        d_target: the target of ``r_d`` (0.6 in the paper).
        adjust_interval: critic steps per update of T (4 in the paper).
        noise_std: sigma of the diffusion's noise (0.05 in the paper's code).
        t_sampling: ``"priority"`` or ``"uniform"``, the distribution of t.
        timestep_dim: width of the critic's timestep embedding; 0: a critic
            that sees ``y_t`` alone.
        distance: a name in ``DISTANCES`` with a critic that scores examples.
        Others: as :class:`~zoo.gan.distances.GAN` (DCGAN networks).
    """

    t_samplings = ("priority", "uniform")

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, t_min=5, t_max=500, t_step=1.0,
                 d_target=0.6, adjust_interval=4, noise_std=0.05, t_sampling="priority",
                 timestep_dim=32, **kwargs):
        kind = type(self).__name__
        self.t_min, self.t_max = int(t_min), int(t_max)
        self.t_step = float(t_step)
        self.d_target = float(d_target)
        self.adjust_interval = int(adjust_interval)
        self.noise_std = float(noise_std)
        self.t_sampling = t_sampling
        self.timestep_dim = int(timestep_dim)
        if t_sampling not in self.t_samplings:
            raise ValueError(f"{kind}: expected t_sampling in {list(self.t_samplings)}, got "
                             f"{t_sampling!r}")
        if self.timestep_dim < 0:
            raise ValueError(f"{kind}: expected timestep_dim >= 0 (0: a critic not told t), "
                             f"got {timestep_dim}")
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

    def build_critic(self):
        return DCGANCritic(self.filters, timestep_dim=self.timestep_dim, **self.critic_options())

    # ------------------------------------------------------------ diffusion
    def draw_timesteps(self, batch):
        """`batch` timesteps in {0, ..., floor(T)} by ``t_sampling`` (int32),
        from the stream (the caller draws only while T >= 1): by the inverse of
        the distribution function over the fixed range {0, ..., t_max} (whose
        weights above floor(T) are 0), so that the shapes do not depend on T
        (XLA)."""
        top = tf.floor(self.diffusion_T)
        ts = tf.range(self.t_max + 1, dtype=tf.float32)
        # priority: p(t) proportional to t (t = 0 never drawn); uniform: 1 each
        weights = ts if self.t_sampling == "priority" else tf.ones_like(ts)
        return self.rng.categorical(tf.where(ts <= top, weights, 0.0), batch)

    def diffuse(self, *batches):
        """Model-space batches (of one size) diffused, example i of each to the
        same timestep ``t_i`` (drawn by :meth:`draw_timesteps`): the diffused
        batches and t. Below T = 1, the batches themselves and t = 0 (nothing
        drawn)."""
        batch = tf.shape(batches[0])[0]

        def draw():
            t = self.draw_timesteps(batch)
            return [schedules.q_sample(y, t, self.noise_std * self.rng.normal(tf.shape(y)),
                                       self.alphas_cumprod) for y in batches] + [t]

        def undiffused():
            return [tf.identity(y) for y in batches] + [tf.zeros(tf.stack([batch]), tf.int32)]

        *diffused, t = tf.cond(self.diffusion_T >= 1.0, draw, undiffused)
        return (*diffused, t)

    def timestep_input(self, t):
        """What the critic is given for timesteps t: t, or None for a critic not
        conditioned on them."""
        return t if self.timestep_dim else None

    def adapt(self, real, labels=None, timesteps=None):
        """Accumulates ``r_d`` on the diffused real batch; every
        ``adjust_interval``-th call, moves T by ``sign(r_d - d_target) t_step``."""
        scores = self.scores(real, False, labels, timesteps)
        signs = tf.reduce_mean(tf.sign(tf.stop_gradient(scores)))
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
        """The base GAN's terms on diffused batches at their timesteps
        (training), adapting T."""
        if not training:
            return super().compute_losses(x, training, labels)
        if self.num_classes and labels is None:
            labels = self.random_labels(tf.shape(x)[0])
        real = self.to_model_space(x, noise=True)
        fake = self.generate_from(self.latent_noise(tf.shape(x)[0]), labels, training)
        real, fake, t = self.diffuse(real, fake)
        t = self.timestep_input(t)
        terms = self.critic_terms(real, fake, training, labels, t)
        self.adapt(real, labels, t)
        return terms

    def generator_losses(self, x, labels=None):
        fake, t = self.diffuse(self.generate_from(self.latent_noise(tf.shape(x)[0]), labels,
                                                  True))
        scores = self.scores(fake, True, labels, self.timestep_input(t))
        return {"generator_loss": self.objective.generator_loss(scores)}
