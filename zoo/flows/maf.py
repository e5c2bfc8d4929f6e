"""Masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017)."""

import keras
import tensorflow_probability as tfp

from zoo.flows.base import FlowModel, TOY_TRAINING
from zoo.datasets.toy import for_each_density
from zoo.flows.steps.autoregressive_affine import AutoregressiveAffine
from zoo.flows.steps.batch_norm import BatchNormBijectorLayer
from zoo.registry import register

tfb = tfp.bijectors


@register(
    "maf",
    presets={
        **for_each_density(num_layers=5, hidden_units=64, num_hidden=2),
        "digits": dict(num_layers=5, hidden_units=256, num_hidden=1),
        "fashion_mnist": dict(num_layers=5, hidden_units=1024, num_hidden=1),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class MAF(FlowModel):
    """Masked autoregressive flow.

    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density
    Estimation", NeurIPS 2017, https://arxiv.org/abs/1705.07057.

    ``num_layers`` affine autoregressive transforms (Sec. 3.1), each
    ``x_i = z_i exp(s_i(x_<i)) + t_i(x_<i)`` with ``(t, s)`` from a MADE
    (Germain et al. 2015, https://arxiv.org/abs/1502.03509): the transform of
    ``tfb.MaskedAutoregressiveFlow``, written as a
    :class:`~zoo.flows.steps.masked_autoregressive.MaskedAutoregressive` bijector
    around our Keras :class:`MADE`; the order of
    the variables is reversed (``tfb.Permute``) between transforms. Images are
    flattened inside the flow (``tfb.Reshape``), so the latent keeps the data's
    shape. With ``batch_norm``, a :class:`BatchNormBijectorLayer` follows each
    transform in the normalizing direction (the paper's "MAF with BN", Sec. 3.4):
    batch statistics while training, moving averages in evaluation, ``log_prob``
    and sampling.

    Directions: density evaluation (``log_prob``, ``encode``, training) is the
    fast one, a single MADE pass per transform; sampling and ``decode`` are
    sequential, D MADE passes per transform (the first on a single row; a
    ``tf.while_loop`` beyond 10), D the number of dimensions (784 for
    Fashion-MNIST: slow). :class:`IAF` is the reverse.

    Args:
        data_shape: shape of one example, ``(D,)`` or ``(H, W, C)``.
        num_levels: intensity levels of raw images (None for continuous data).
        num_layers: number of autoregressive transforms (MADEs).
        hidden_units: width of each MADE's hidden layers.
        num_hidden: number of hidden layers of each MADE.
        logit_alpha: alpha of the logit preprocessing (images only).
        batch_norm: a batch-normalisation bijector after each transform.
    """

    def __init__(
        self,
        data_shape=(2,),
        num_levels=None,
        num_layers=5,
        hidden_units=64,
        num_hidden=2,
        logit_alpha=0.05,
        batch_norm=False,
        **kwargs,
    ):
        kwargs.setdefault("name", "maf")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        self.num_layers = num_layers
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: expected num_layers >= 1, got {num_layers}")
        self.transforms = [
            AutoregressiveAffine(self.event_size, hidden_units, num_hidden, name=f"made_{i}")
            for i in range(num_layers)
        ]
        self.batch_norm = bool(batch_norm)
        self.batch_norms = [BatchNormBijectorLayer(self.event_size, name=f"batch_norm_{i}")
                            for i in range(num_layers)] if self.batch_norm else []
        self.build_model()

    def step_bijectors(self):
        """The autoregressive transforms' bijectors, latent side first."""
        return [transform.bijector() for transform in self.transforms]

    def flow_bijector(self):
        steps = self.step_bijectors()
        if self.batch_norm:  # latent side first: normalizing, the BN comes after the step
            steps = [tfb.Chain([step, bn.bijector()]) for step, bn in zip(steps, self.batch_norms)]
        return self.on_data_shape(self.reversing_chain(steps))

    def compute_losses(self, x, training=False, labels=None):
        # Read while the step is traced: batch statistics in the training step only.
        for bn in self.batch_norms:
            bn.batch_statistics = training
        try:
            return super().compute_losses(x, training=training, labels=labels)
        finally:
            for bn in self.batch_norms:
                bn.batch_statistics = False
