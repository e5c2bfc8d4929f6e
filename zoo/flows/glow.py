"""Glow (Kingma & Dhariwal 2018)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from zoo.flows.base import FlowModel, TOY_TRAINING
from zoo.datasets.toy import for_each_density
from zoo.flows.steps.act_norm import ActNorm
from zoo.flows.steps.glow_affine_coupling import GlowAffineCoupling
from zoo.flows.steps.invertible_conv_1x1 import InvertibleConv1x1
from zoo.flows.steps.learned_prior_split import LearnedPriorSplit
from zoo.flows.steps.squeeze import Squeeze
from zoo.preprocessing import dequantize, logit_bijector
from zoo.registry import register

tfb = tfp.bijectors


@register(
    "glow",
    presets={
        **for_each_density(num_steps=8, hidden_units=64),
        "digits": dict(num_scales=2, num_steps=6, hidden_units=64),
        "fashion_mnist": dict(num_scales=2, num_steps=8, hidden_units=128),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class Glow(FlowModel):
    """Generative flow with invertible 1x1 convolutions.

    Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
    NeurIPS 2018, https://arxiv.org/abs/1807.03039.

    In the paper's direction (data -> latent), each of the ``num_scales`` scales
    (L) squeezes, applies ``num_steps`` (K) steps of flow -- :class:`ActNorm`, an
    :class:`InvertibleConv1x1` (LU-decomposed), a :class:`GlowAffineCoupling` --
    and, but the last, factors out half the channels with a learned prior
    (:class:`LearnedPriorSplit`); the latent is arranged back in the data's shape.
    The top of the flow has a standard normal prior. ActNorm is initialised from
    the first training batch (``initialize``); ``sample(temperature=T)`` is Glow's
    reduced-temperature sampling. On vectors (2-D densities) the flow is
    ``num_steps`` steps of ActNorm, a C x C LU linear map and an MLP coupling.

    Args:
        data_shape: ``(D,)`` with D >= 2, or ``(H, W, C)`` with H and W divisible
            by 2**num_scales.
        num_levels: intensity levels of raw images (None for continuous data).
        num_scales: L, the scales on images (ignored on vectors).
        num_steps: K, steps of flow per scale.
        hidden_units: width (channels on images) of the coupling networks.
        logit_alpha: alpha of the logit preprocessing.
    """

    def __init__(
        self,
        data_shape=(8, 8, 1),
        num_levels=None,
        num_scales=2,
        num_steps=4,
        hidden_units=32,
        logit_alpha=0.05,
        **kwargs,
    ):
        kwargs.setdefault("name", "glow")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        self.num_scales = num_scales
        self.num_steps = num_steps
        self.hidden_units = hidden_units
        if len(self.data_shape) == 1:
            if self.data_shape[0] < 2:
                raise ValueError(f"Glow: expected vectors of length >= 2, got {self.data_shape}")
            shapes = [self.data_shape]
        elif len(self.data_shape) == 3:
            shapes = self._scale_shapes()
        else:
            raise ValueError(f"Glow: expected data_shape (D,) or (H, W, C), got {self.data_shape}")
        # Flat lists, scale by scale: steps[scale * num_steps + k].
        self.act_norms, self.convs, self.couplings = [], [], []
        for scale, shape in enumerate(shapes):
            for k in range(num_steps):
                prefix = f"scale_{scale}_step_{k}"
                self.act_norms.append(ActNorm(shape, name=f"{prefix}_act_norm"))
                self.convs.append(InvertibleConv1x1(shape[-1], name=f"{prefix}_conv_1x1"))
                self.couplings.append(GlowAffineCoupling(shape, hidden_units,
                                                         name=f"{prefix}_coupling"))
        self.splits = [LearnedPriorSplit(shape, name=f"scale_{scale}_split")
                       for scale, shape in enumerate(shapes[:-1])]
        self.build_model()

    def _scale_shapes(self):
        """The (squeezed) event shape the steps of each scale see."""
        h, w, c = self.data_shape
        factor = 2 ** self.num_scales
        if self.num_scales < 1 or h % factor or w % factor:
            raise ValueError(
                f"Glow: {self.num_scales} scales need H and W divisible by {factor}, "
                f"got data_shape {self.data_shape}"
            )
        shapes = []
        for _ in range(self.num_scales):
            h, w, c = h // 2, w // 2, 4 * c
            shapes.append((h, w, c))
            c //= 2
        return shapes

    # ------------------------------------------------------------- the flow
    def flow_step(self, index, data_init=False):
        """Step of flow ``index``, data -> latent: actnorm, 1x1 conv, coupling."""
        return tfb.Chain([
            self.couplings[index].bijector(),
            self.convs[index].bijector(),
            self.act_norms[index].bijector(data_init),
        ])

    def scale_bijector(self, scale, data_init=False):
        """Scale ``scale`` and those below it, data -> latent (Chain: right to left)."""
        steps = [self.flow_step(scale * self.num_steps + k, data_init)
                 for k in range(self.num_steps)]
        if len(self.data_shape) == 1:
            return tfb.Chain(steps[::-1])
        if scale < self.num_scales - 1:
            steps.append(self.splits[scale].bijector(self.scale_bijector(scale + 1, data_init)))
        return tfb.Chain([tfb.Invert(Squeeze())] + steps[::-1] + [Squeeze()])

    def normalizing_bijector(self, data_init=False):
        """Preprocessed data -> latent, the paper's z = f(x).

        With ``data_init``, its ``forward`` also initialises every ActNorm from
        the batch it sees.
        """
        return self.scale_bijector(0, data_init)

    def flow_bijector(self):
        """Latent -> preprocessed data: the inverse of :meth:`normalizing_bijector`."""
        return tfb.Invert(self.normalizing_bijector())

    # ------------------------------------------------ data-dependent init
    @property
    def initialized(self):
        """True once every ActNorm has been initialised from data."""
        flags = [tf.convert_to_tensor(a.initialized) for a in self.act_norms]
        return tf.reduce_all(tf.stack(flags))

    def initialize(self, x):
        """Initialises every ActNorm from the raw batch `x`, unless done already.

        Called by the training step on every batch, where it does something only
        on the first; call it yourself to initialise from a larger batch before
        ``fit``. Under a ``tf.distribute`` strategy the statistics are those of the
        global batch (the replicas' batches gathered in a cross-replica context),
        so every replica holds the same parameters. Returns whether it initialised.
        """
        return self._initialize(self.validate_inputs(x, "initialize"))

    def _initialize(self, x):
        context = tf.distribute.get_replica_context()
        if context is None:  # already in a cross-replica context
            return self._initialize_cross_replica(tf.distribute.get_strategy(), x)
        # A tf.cond may not hold a cross-replica synchronisation point, so the
        # merge_call is outside and the cond inside it.
        return context.merge_call(self._initialize_cross_replica, args=(x,))

    def _initialize_cross_replica(self, strategy, x):
        def initialize():
            batch = tf.concat(strategy.experimental_local_results(x), axis=0)
            if self.num_levels is not None:
                # Noise from a fixed seed: initialisation is not a draw of the step.
                batch = logit_bijector(self.num_levels, self.logit_alpha).forward(
                    dequantize(batch, tf.constant([0x61, 0x0])))
            z = self.normalizing_bijector(data_init=True).forward(batch)
            with tf.control_dependencies([z]):
                return tf.constant(True)

        return tf.cond(self.initialized, lambda: tf.constant(False), initialize)

    def compute_losses(self, x, training=False, labels=None):
        if training:
            self._initialize(x)
        return super().compute_losses(x, training=training, labels=labels)
