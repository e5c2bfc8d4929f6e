"""The two-stage VAE (Dai & Wipf 2019): a flow prior over a trained VAE's latents."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from zoo.base import GenerativeModel, SampleOption
from zoo.flows.steps.coupling import AffineCoupling
from zoo.registry import register
from zoo.two_stage import TwoStage
from zoo.validation import on_batches

tfb = tfp.bijectors
tfd = tfp.distributions


@register(
    "two_stage_vae",
    presets={
        "digits": dict(num_couplings=8, hidden_units=64, num_blocks=2),
        "fashion_mnist": dict(num_couplings=8, hidden_units=128, num_blocks=2),
    },
    training={
        "digits": dict(batch_size=64, epochs=50, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class TwoStageVAE(TwoStage, GenerativeModel):
    """A RealNVP prior fitted to the latents of a trained, frozen VAE.

    Dai & Wipf, "Diagnosing and Improving Variational Autoencoders", ICLR 2019,
    https://arxiv.org/abs/1903.05789. A VAE's aggregate posterior q(z) = E_x q(z|x)
    need not match its prior N(0, I), so decoding prior draws gives worse images
    than decoding encoded ones. The paper's second stage learns q(z) with a second,
    small VAE; this model uses the usual variant, a normalizing flow (RealNVP
    couplings on vectors, Dinh et al. 2017, https://arxiv.org/abs/1605.08803) fitted
    by maximum likelihood to the first stage's posterior means E_q[z|x] of the
    training data. Only the flow is trained: the first stage is a frozen sub-layer
    (its weights are in every checkpoint and export, and are not trainable).

    Sampling draws z from the flow (its base draw scaled by ``temperature``) and
    then x ~ p(x|z) through the first stage's decoder. The model has no likelihood
    (``"none"``): the flow's density is over the first stage's latents, and no
    bound on log p(x) is derived here; it is evaluated by its samples.

    Build it with a trained first stage: ``zoo.get("two_stage_vae",
    dataset="digits", first_stage=vae)`` (the model is copied, not changed), or
    ``zoo train two_stage_vae --first-stage RUN`` (:func:`zoo.runs.load_first_stage`).

    Args:
        data_shape, num_levels: the dataset's (the first stage's).
        first_stage: the first stage: a model of ``first_stage_kinds`` (its
            weights are copied), or ``{"model": name, "config": config}`` as
            ``get_config`` gives it (a model built from the config; the weights
            then come from a checkpoint).
        num_couplings: affine couplings of the flow, alternating halves fixed.
        hidden_units: the width of each coupling's MLP.
        num_blocks: the hidden layers of each coupling's MLP.

    Losses (``loss_names``): ``loss``, the flow's negative log-density of the
    latents (nats per example).
    """

    family = "vae"
    likelihood = "none"
    loss_names = ("loss",)
    first_stage_kinds = ("vae",)
    sample_options = {
        "temperature": SampleOption(1.0, above=0.0,
                                    doc="scale of the flow's base draw (Glow, Sec. 5)"),
    }

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, first_stage=None,
                 num_couplings=8, hidden_units=64, num_blocks=2, **kwargs):
        kwargs.setdefault("name", "two_stage_vae")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.first_stage_model = self.make_first_stage(first_stage, self.data_shape,
                                                       self.num_levels)
        self.first_stage_model.trainable = False
        self.num_couplings = int(num_couplings)
        self.hidden_units = int(hidden_units)
        self.num_blocks = int(num_blocks)
        if self.num_couplings < 1:
            raise ValueError(f"TwoStageVAE: expected num_couplings >= 1, got {num_couplings}")
        self.couplings = [
            AffineCoupling(self.latent_shape, "channel", i % 2, self.hidden_units,
                           self.num_blocks, name=f"coupling_{i}")
            for i in range(self.num_couplings)
        ]
        self.build_model()

    # ------------------------------------------------------------ the first stage
    @classmethod
    def check_first_stage(cls, model, data_shape, num_levels):
        """:meth:`TwoStage.check_first_stage`, and a first stage with latent vectors
        of 2 or more dimensions (what the couplings split in halves)."""
        super().check_first_stage(model, data_shape, num_levels)
        if len(model.latent_shape) != 1 or model.latent_shape[0] < 2:
            raise ValueError(f"{cls.__name__}: expected a first stage with latent vectors of "
                             f"2 or more dimensions, got latent_shape {model.latent_shape}")

    @property
    def latent_shape(self):
        return tuple(self.first_stage_model.latent_shape)

    # ------------------------------------------------------------ the flow prior
    @property
    def prior(self):
        """The flow's distribution over the first stage's latents."""
        flow = tfb.Chain([c.bijector() for c in reversed(self.couplings)])
        base = tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=self.latent_shape)
        return tfd.TransformedDistribution(base, flow)

    def call(self, x):
        """The flow's log-density of the latents of `x` (touches every weight; used
        to build)."""
        return self.prior.log_prob(self.latents(x))

    def latents(self, x):
        """The first stage's posterior means E_q[z|x] of raw levels `x`."""
        return tf.stop_gradient(self.first_stage_model.latent_mean(x))

    # ----------------------------------------------------------- public API
    def compute_losses(self, x, training=False):
        return {"loss": -tf.reduce_mean(self.prior.log_prob(self.latents(x)))}

    @on_batches("data")
    def encode(self, x):
        """The first stage's posterior means of raw levels `x`: what the flow models."""
        return self.latents(self.validate_inputs(x, "encode"))

    @on_batches("latent")
    def latent_log_prob(self, z):
        """log p(z) of latents under the flow prior (nats)."""
        return self.prior.log_prob(self.check_batch(z, "latent_log_prob", self.latent_shape,
                                                    what="z"))

    @on_batches("latent")
    def decode(self, z):
        """Latents -> the first stage decoder's mean image."""
        return self.first_stage_model.decode(
            self.check_batch(z, "decode", self.latent_shape, what="z"))

    def draw_samples(self, n, seed, temperature=1.0):
        """z from the flow (its base draw scaled by `temperature`), then x ~ p(x|z)
        of the first stage, as integer levels."""
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        eps = temperature * tf.random.stateless_normal(
            tf.concat([[n], self.latent_shape], 0), seed=z_seed)
        z = self.prior.bijector.forward(eps)
        first = self.first_stage_model
        return first.decoder_sample(first.decoder_params(z), x_seed)

    def data_signatures(self):
        z = tf.TensorSpec((None,) + self.latent_shape, tf.float32, name="z")
        return {
            "encode": (lambda x: {"z": self.encode(x)}, [self.data_spec()]),
            "latent_log_prob": (lambda z: {"log_prob": self.latent_log_prob(z)}, [z]),
            "decode": (lambda z: {"x": self.decode(z)}, [z]),
        }
