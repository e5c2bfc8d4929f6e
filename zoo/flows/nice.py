"""NICE (Dinh, Krueger & Bengio 2014)."""

import keras
import tensorflow_probability as tfp

from zoo.flows.base import FlowModel, TOY_TRAINING
from zoo.datasets.toy import for_each_density
from zoo.flows.steps.additive_coupling import AdditiveCoupling
from zoo.flows.steps.diagonal_scaling import DiagonalScaling
from zoo.registry import register

tfb = tfp.bijectors
tfd = tfp.distributions

PRIORS = ("normal", "logistic")


@register(
    "nice",
    presets={
        **for_each_density(num_couplings=4, hidden_units=64, num_hidden=3),
        "digits": dict(num_couplings=4, hidden_units=256, num_hidden=4),
        # The paper's MNIST architecture: 4 couplings, m with 5 hidden layers of 1000.
        "fashion_mnist": dict(num_couplings=4, hidden_units=1000, num_hidden=5),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class NICE(FlowModel):
    """Non-linear Independent Components Estimation.

    Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation",
    ICLR 2015 workshop, https://arxiv.org/abs/1410.8516.

    In the paper's direction (data -> latent), h = S(c_K(...c_1(x))): ``num_couplings``
    additive couplings (Sec. 3.2) whose fixed half alternates between the odd and
    the even coordinates (they interleave), then the diagonal scaling
    ``S = diag(exp(s))`` (Sec. 3.3), the only step that changes volume, so
    log p(x) = log p_H(h) + sum(s). Images are flattened to vectors (after the
    logit preprocessing of the base class) and the latent is reshaped back to the
    data's shape.

    Args:
        data_shape: ``(D,)`` with D >= 2, or ``(H, W, C)`` (flattened).
        num_levels: intensity levels of raw images (None for continuous data).
        num_couplings: additive coupling layers (4 in the paper).
        hidden_units: width of each coupling function's hidden layers.
        num_hidden: hidden ReLU layers of each coupling function (5 in the paper).
        prior: ``"normal"`` (the zoo's base) or ``"logistic"`` (the paper's choice
            on MNIST, SVHN and CIFAR-10): the distribution of each latent dimension.
        logit_alpha: alpha of the logit preprocessing.
    """

    def __init__(
        self,
        data_shape=(2,),
        num_levels=None,
        num_couplings=4,
        hidden_units=64,
        num_hidden=3,
        prior="normal",
        logit_alpha=0.05,
        **kwargs,
    ):
        kwargs.setdefault("name", "nice")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        self.num_couplings = num_couplings
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.prior = prior
        if prior not in PRIORS:
            raise ValueError(f"NICE: expected prior in {PRIORS}, got {prior!r}")
        if len(self.data_shape) not in (1, 3) or self.event_size < 2:
            raise ValueError(f"NICE: expected data_shape (D,) with D >= 2 or (H, W, C), "
                             f"got {self.data_shape}")
        self.couplings = [
            AdditiveCoupling(self.event_size, i % 2, hidden_units, num_hidden,
                             name=f"coupling_{i}")
            for i in range(num_couplings)
        ]
        self.scaling = DiagonalScaling(self.event_size, name="scaling")
        self.build_model()

    def coupling_bijector(self):
        """The volume-preserving part, data -> latent: c_K o ... o c_1 (on vectors)."""
        return tfb.Chain([c.bijector() for c in reversed(self.couplings)])

    def normalizing_bijector(self):
        """Preprocessed data -> latent, the paper's h = f(x)."""
        steps = [self.scaling.bijector(), self.coupling_bijector()]
        if len(self.data_shape) > 1:
            flat = (self.event_size,)
            steps = ([tfb.Reshape(self.data_shape, flat)] + steps
                     + [tfb.Reshape(flat, self.data_shape)])
        return tfb.Chain(steps)

    def flow_bijector(self):
        """Latent -> preprocessed data: the inverse of :meth:`normalizing_bijector`."""
        return tfb.Invert(self.normalizing_bijector())

    @property
    def base_distribution(self):
        if self.prior == "logistic":
            return tfd.Sample(tfd.Logistic(0.0, 1.0), sample_shape=self.data_shape)
        return super().base_distribution
