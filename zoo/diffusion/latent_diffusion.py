"""Latent diffusion (Rombach et al. 2022): DDPM on the latents of a trained zoo autoencoder."""

import keras
import numpy as np
import tensorflow as tf

from zoo.base import GenerativeModel
from zoo.completion import Completion
from zoo.diffusion import schedules
from zoo.diffusion.base import DiffusionModel
from zoo.registry import register
from zoo.two_stage import TwoStage
from zoo.validation import on_batches

# The denoiser: an MLP on a VAE's latent vectors, a U-Net on a VQ-VAE's latent grid
# (digits 4x4: levels 4, 2; Fashion-MNIST 7x7: one level).
DIGITS = dict(hidden_units=256, num_hidden=3, channels=32, channel_mults=(1, 2),
              num_res_blocks=1, ema_decay=0.999, sampling_steps=100)
FASHION = dict(hidden_units=512, num_hidden=3, channels=32, channel_mults=(1,),
               num_res_blocks=1, ema_decay=0.999, sampling_steps=100)


@register(
    "latent_diffusion",
    presets={"digits": DIGITS, "fashion_mnist": FASHION},
    training={
        "digits": dict(batch_size=64, epochs=50, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class LatentDiffusion(TwoStage, DiffusionModel):
    """A diffusion model on the latents of a trained, frozen autoencoder.

    Rombach, Blattmann, Lorenz, Esser & Ommer, "High-Resolution Image Synthesis
    with Latent Diffusion Models", CVPR 2022, https://arxiv.org/abs/2112.10752.
    The first stage is a trained zoo autoencoder: a ``vae`` (its KL-regularised
    Gaussian posterior; the paper's "KL-reg.") or a ``vq_vae`` (its encoder's
    output before quantisation, with the quantisation "absorbed into the decoder",
    Sec. 3.1). DDPM (:class:`~zoo.diffusion.base.DiffusionModel`: epsilon
    prediction, ``L_simple``, the linear schedule, the samplers) runs on
    ``z' = latent_scale * z``: an MLP denoiser on a VAE's latent vectors, a U-Net
    on a VQ-VAE's (h, w, D) grid. Only the denoiser is trained; the first stage is
    a frozen sub-layer (in every checkpoint and export, not trainable).

    Latents: a VAE's are drawn from q(z|x) while training (as the paper's code
    does), its posterior mean otherwise (``encode``); a VQ-VAE's are z_e(x).

    ``latent_scale`` is the paper's (Sec. 4.3.2 and App. G): ``1 / std`` of the
    first training batch's latents (all values), fixed at the first training step
    and kept as a non-trainable weight (in every checkpoint and export); 0 until
    then, when 1 is used.

    Sampling draws x_T in the latent space, runs the sampler (no clipping of the
    predicted x_0: latents are unbounded) and decodes ``z' / latent_scale`` with
    the first stage: the decoder's mean image (the paper's D(z); a VQ-VAE's after
    the nearest codes). ``encode``/``decode`` are DDIM's ODE between the image's
    latent and x_T (``latent_shape``), through the first stage.

    Likelihood: with a VAE first stage, ``nll`` is a bound on -log p(x) through
    it (``likelihood = "bound"``): from one z ~ q(z|x),

        -log p(x|z) + log q(z|x) + L(latent_scale z) - dim(z) log latent_scale,

    where L is the diffusion's negative variational bound on -log p(z') (a
    continuous density: a Gaussian decoder at t = 0), the last term the change
    of variables to z: the VAE's ELBO with the diffusion model as its prior, whose
    log-density is itself bounded. A VQ-VAE's quantisation has no density over
    z_e, so with it the model has no likelihood (``"none"``) and is evaluated by
    its samples. No completion (the mask is over pixels, the diffusion over
    latents), and no class conditioning.

    Build it with a trained first stage: ``zoo.get("latent_diffusion",
    dataset="digits", first_stage=vae)`` (the model is copied, not changed), or
    ``zoo train latent_diffusion --first-stage RUN`` (:func:`zoo.runs.load_first_stage`).

    Args:
        data_shape, num_levels: the dataset's (the first stage's).
        first_stage: a trained model of ``first_stage_kinds`` (its weights are
            copied), or ``{"model": name, "config": config}`` as ``get_config``
            gives it (the weights then come from a checkpoint).
        timesteps, schedule: as :class:`~zoo.diffusion.base.DiffusionModel`.
        hidden_units, num_hidden: the MLP's (a VAE's latents).
        channels, channel_mults, num_res_blocks, dropout: the U-Net's (a VQ-VAE's).
        (others): as :class:`~zoo.diffusion.base.DiffusionModel`.
    """

    conditional = False
    probability_flow_of_data = False
    first_stage_kinds = ("vae", "vq_vae")
    # The first stages with a posterior density, through which ``nll`` bounds -log p(x).
    bounded_first_stages = ("vae",)
    fixed_parameters = ("label_dropout",)
    # No completion: the mask is over pixels, the diffusion over the first stage's latents.
    draw_completion = Completion.draw_completion
    complete_options = {}

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, first_stage=None, timesteps=1000,
                 schedule="linear", **kwargs):
        kwargs.setdefault("name", "latent_diffusion")
        stage = self.make_first_stage(first_stage, data_shape, num_levels)
        # The denoiser's shape, which the base class needs before the first stage is set.
        self._latent_shape = self.stage_latent_shape(stage)
        super().__init__(data_shape=data_shape, num_levels=num_levels, timesteps=timesteps,
                         schedule=schedule, label_dropout=0.0, **kwargs)
        self.first_stage_model = stage
        self.first_stage_model.trainable = False
        self.latent_scale = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            aggregation="mean", name="latent_scale")
        self.build_model()

    # ------------------------------------------------------------ the first stage
    @classmethod
    def quantized(cls, stage):
        """Whether the first stage quantises its latents (the VQ-VAE)."""
        return stage.registry_name not in cls.bounded_first_stages

    @classmethod
    def stage_latent_shape(cls, stage):
        """What the diffusion models: a VAE's latent vector, a VQ-VAE's grid of
        z_e vectors (h, w, D)."""
        if cls.quantized(stage):
            return tuple(stage.latent_shape) + (stage.latent_dim,)
        return tuple(stage.latent_shape)

    @property
    def latent_shape(self):
        return self._latent_shape

    @property
    def likelihood(self):
        """A bound through a VAE first stage; none through a VQ-VAE's quantisation."""
        return "none" if self.quantized(self.first_stage_model) else "bound"

    @classmethod
    def likelihood_kinds(cls):
        return ("bound", "none")

    # ------------------------------------------------------------ the latents
    def scale_factor(self):
        """``latent_scale``, or 1 before it is fixed."""
        return tf.where(self.latent_scale > 0.0, tf.convert_to_tensor(self.latent_scale), 1.0)

    def stage_latents(self, x, seed=None):
        """The first stage's latents of raw levels `x` (unscaled): with a stateless
        `seed`, a VAE's z ~ q(z|x) of the observed data; without, its posterior mean.
        A VQ-VAE's z_e(x) either way. Also log q(z|x) of the draw (None without)."""
        first = self.first_stage_model
        x = tf.convert_to_tensor(x, tf.float32)
        if self.quantized(first):
            return tf.stop_gradient(first.encoder_output(first.deterministic_observed(x))), None
        if seed is None:
            return tf.stop_gradient(first.latent_mean(x)), None
        data_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        latents = first.infer(first.observed(x, data_seed), z_seed, 1)
        return tf.stop_gradient(latents["z"][0]), latents["log_q"][0]

    def scale(self, x):
        """Raw levels -> the diffusion's space: ``latent_scale`` times the first
        stage's (mean) latents."""
        return self.scale_factor() * self.stage_latents(x)[0]

    def unscale(self, y):
        """The diffusion's space -> the first stage decoder's mean image (levels)."""
        first = self.first_stage_model
        z = y / self.scale_factor()
        if self.quantized(first):
            z = first.embed(first.nearest_codes(z))
        return first.decoder_mean(first.decoder_params(z))

    def fix_latent_scale(self, z):
        """Sets ``latent_scale`` to ``1 / std`` of the latents `z` if it is not yet
        set (the first training step's batch)."""
        std = tf.math.reduce_std(z)
        self.latent_scale.assign(tf.where(self.latent_scale > 0.0,
                                          tf.convert_to_tensor(self.latent_scale),
                                          1.0 / tf.maximum(std, 1e-12)))

    # ---------------------------------------------------------------- losses
    def loss_terms(self, x, training, labels=None):
        """DDPM's ``L_simple`` on the scaled latents (a VAE's drawn from q(z|x))."""
        z, _ = self.stage_latents(x, self.rng.next_seed())
        if training:
            self.fix_latent_scale(z)
        x0 = self.scale_factor() * z
        t, weights = self.draw_training_timesteps(tf.shape(x0)[0])
        noise = self.rng.normal(tf.shape(x0))
        xt = schedules.q_sample(x0, t, noise, self.const("alphas_cumprod"))
        eps, _ = self.split_output(self.network_output(xt, t))
        mse = tf.reduce_mean(tf.square(noise - eps), axis=list(range(1, len(x0.shape))))
        return {"loss": tf.reduce_mean(weights * mse)}, None

    def decoder_nll(self, x0, mean, log_variance):
        """-log p(z'_0 | z'_1): a Gaussian density (latents are continuous)."""
        return -tf.reduce_sum(schedules.gaussian_log_likelihood(x0, mean, log_variance),
                              axis=list(range(1, len(x0.shape))))

    @property
    def clips_x0(self):
        """Never: latents are unbounded (the sampler and the bound)."""
        return False

    # ------------------------------------------------------------ likelihood
    @on_batches("data")
    def nll(self, x, seed=None, labels=None):
        """The bound through a VAE first stage (see the class), per example in nats,
        from one z ~ q(z|x) and the diffusion bound's noise, drawn from `seed`."""
        if self.likelihood == "none":
            return GenerativeModel.nll(self, x, seed)
        x = self.validate_inputs(x, "nll")
        self.check_labels(labels, x, "nll")
        stage_seed, bound_seed, _ = tf.unstack(
            tf.random.experimental.stateless_split(self.stateless_seed(seed), 3))
        first = self.first_stage_model
        data_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(stage_seed, 2))
        observed = first.observed(x, data_seed)
        latents = first.infer(observed, z_seed, 1)
        z = latents["z"][0]
        reconstruction = -first.decoder_log_prob(observed, latents["z"])[0]
        scale = self.scale_factor()
        prior, terms, _ = self.vlb(scale * z, bound_seed)
        latent_nll = prior + tf.reduce_sum(terms, axis=1)
        dims = float(np.prod(self.latent_shape))
        return reconstruction + latents["log_q"][0] + latent_nll - dims * tf.math.log(scale)

    # ---------------------------------------------------------- DDIM's ODE
    @on_batches("latent")
    def decode(self, z, num_steps=None, labels=None):
        """DDIM's deterministic generation (``eta = 0``) from ``x_T`` = `z` over
        `num_steps` respaced steps (default T), decoded by the first stage (its
        decoder's mean image, in levels)."""
        z = self.check_batch(z, "decode", self.latent_shape, what="z")
        num_steps = self.check_steps(num_steps, "decode")
        self.check_labels(labels, z, "decode")
        return self.run_compiled("latent_decode", self.decoded_latents, z,
                                 tf.convert_to_tensor(num_steps, tf.int32))

    def decoded_latents(self, z, num_steps):
        """:meth:`decode`'s computation."""
        return self.unscale(self.run_sampler(z, tf.zeros([2], tf.int32), num_steps, 0.0))

    # ---------------------------------------------------------------- serving
    def data_signatures(self):
        signatures = super().data_signatures()
        if self.likelihood == "none":
            signatures.pop("nll")
        return signatures

    # ------------------------------------------------------------- evaluation
    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``latent_scale``, and with a likelihood the base's ``bound`` (how the
        diffusion bound sums its terms) and how ``nll`` goes through the first stage."""
        result = {"latent_scale": float(self.scale_factor())}
        if self.likelihood == "none":
            return result
        result.update(super().extra_metrics(data, settings, seed, batch_size, run_dir))
        result["bound"]["through"] = ("the first stage's ELBO with the diffusion bound on "
                                      "-log p(z) as its prior term, one z ~ q(z|x)")
        return result
