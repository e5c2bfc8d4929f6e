"""Neural spline flows (Durkan, Bekasov, Murray & Papamakarios 2019)."""

import keras
import tensorflow_probability as tfp

from zoo.datasets.toy import for_each_density
from zoo.flows.base import FlowModel, TOY_TRAINING
from zoo.flows.steps.spline_autoregressive import SplineAutoregressive
from zoo.flows.steps.spline_coupling import SplineCoupling
from zoo.registry import register

tfb = tfp.bijectors

VARIANTS = ("coupling", "autoregressive")


@register(
    "nsf",
    presets={
        **for_each_density(variant="coupling", num_layers=6, hidden_units=64,
                           num_hidden=2, num_bins=8, bound=4.0),
        "digits": dict(variant="coupling", num_layers=6, hidden_units=128, num_hidden=2,
                       num_bins=8, bound=4.0),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class NeuralSplineFlow(FlowModel):
    """Neural spline flow: monotonic rational-quadratic splines with linear tails.

    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    https://arxiv.org/abs/1906.04019.

    ``num_layers`` rational-quadratic spline transforms (Sec. 3.1) with K bins on
    [-B, B] and the identity outside (the linear tails, so the transform is defined
    on the whole real line; images' logit space is unbounded, the tails take the
    rest), the order of the variables reversed (``tfb.Permute``) between them:

    - ``variant="coupling"`` (RQ-NSF (C), Sec. 3.2): :class:`SplineCoupling`, the
      dimensions of one parity condition an MLP that gives the splines of the
      others. The kept parity alternates in the latent's coordinates (given the
      reversals, the layer's own parity is ``0`` on even layers and ``D % 2`` on
      odd ones). Both directions take one pass.
    - ``variant="autoregressive"`` (RQ-NSF (AR), Sec. 3.2):
      :class:`SplineAutoregressive`, a MADE in a ``MaskedAutoregressive`` bijector;
      like MAF, density evaluation takes one MADE pass per transform, sampling D.

    Images are flattened inside the flow (``tfb.Reshape``), so the latent keeps the
    data's shape. The paper's invertible linear layers between transforms (and its
    multi-scale image architecture) are replaced by reversals.

    Args:
        data_shape: shape of one example, ``(D,)`` with D >= 2 or ``(H, W, C)``.
        num_levels: intensity levels of raw images (None for continuous data).
        variant: ``"coupling"`` or ``"autoregressive"``.
        num_layers: number of spline transforms.
        hidden_units: width of each network's hidden layers.
        num_hidden: number of hidden layers of each network.
        num_bins: K, bins of each spline.
        bound: B, the splines act on [-B, B] and are the identity outside.
        logit_alpha: alpha of the logit preprocessing (images only).
    """

    def __init__(
        self,
        data_shape=(2,),
        num_levels=None,
        variant="coupling",
        num_layers=6,
        hidden_units=64,
        num_hidden=2,
        num_bins=8,
        bound=4.0,
        logit_alpha=0.05,
        **kwargs,
    ):
        kwargs.setdefault("name", "nsf")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        self.variant = variant
        self.num_layers = num_layers
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.num_bins = num_bins
        self.bound = float(bound)
        name = type(self).__name__
        if variant not in VARIANTS:
            raise ValueError(f"{name}: variant must be one of {VARIANTS}, got {variant!r}")
        if num_layers < 1:
            raise ValueError(f"{name}: expected num_layers >= 1, got {num_layers}")
        if len(self.data_shape) not in (1, 3):
            raise ValueError(f"{name}: expected data_shape (D,) or (H, W, C), "
                             f"got {self.data_shape}")
        if variant == "coupling" and self.event_size < 2:
            raise ValueError(f"{name}: a coupling needs >= 2 dimensions, got {self.data_shape}")
        self.transforms = [self.make_transform(i) for i in range(num_layers)]
        self.build_model()

    def coupling_parity(self, index):
        """The kept parity of coupling `index`, so that kept halves alternate in the
        latent's coordinates after `index` reversals."""
        return 0 if index % 2 == 0 else self.event_size % 2

    def make_transform(self, index):
        common = dict(hidden_units=self.hidden_units, num_hidden=self.num_hidden,
                      num_bins=self.num_bins, bound=self.bound)
        if self.variant == "coupling":
            return SplineCoupling(self.event_size, self.coupling_parity(index), **common,
                                  name=f"coupling_{index}")
        return SplineAutoregressive(self.event_size, **common, name=f"made_{index}")

    def flow_bijector(self):
        return self.on_data_shape(
            self.reversing_chain([t.bijector() for t in self.transforms]))
