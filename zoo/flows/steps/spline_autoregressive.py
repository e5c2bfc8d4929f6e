"""A rational-quadratic spline autoregressive step: a Keras MADE in a MaskedAutoregressive bijector."""

import keras

from zoo.flows.steps.masked_autoregressive import MaskedAutoregressive
from zoo.nn.made import MADE
from zoo.flows.steps.spline_coupling import rational_quadratic_spline, spline_params_per_dim


@keras.saving.register_keras_serializable(package="zoo")
class SplineAutoregressive(keras.layers.Layer):
    """y_i = RQS(x_i; theta_i(y_<i)), with the spline parameters from a MADE.

    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    https://arxiv.org/abs/1906.04019, Sec. 3.2 (autoregressive transform).

    A :class:`MaskedAutoregressive` bijector (``tfb.MaskedAutoregressiveFlow``'s
    transform) around our Keras :class:`MADE` with ``3K - 1`` parameters per
    dimension, each set made into a monotonic rational-quadratic spline on
    [-bound, bound] with identity tails
    (:func:`zoo.flows.steps.spline_coupling.rational_quadratic_spline`). As with
    :class:`AutoregressiveAffine`: the inverse and its log-det take one MADE pass,
    the forward D sequential passes, the first on a single row. The MADE's output layer starts at zero, so
    the step starts as the identity.

    Args:
        event_size: D, the size of the (flat) event.
        hidden_units: width of the MADE's hidden layers.
        num_hidden: number of hidden layers of the MADE.
        num_bins: K, bins of each spline.
        bound: B, the splines act on [-B, B] and are the identity outside.
        input_order: the MADE's input order (see :func:`zoo.nn.made.input_degrees`).
    """

    def __init__(self, event_size, hidden_units, num_hidden=1, num_bins=8, bound=3.0,
                 input_order="left-to-right", **kwargs):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.num_bins = int(num_bins)
        self.bound = float(bound)
        self.input_order = input_order
        if self.num_bins < 2 or self.bound <= 0:
            raise ValueError(f"SplineAutoregressive: expected num_bins >= 2 and bound > 0, got "
                             f"{self.num_bins}, {self.bound}")
        self.made = MADE(self.event_size, hidden_units, num_hidden,
                         params=spline_params_per_dim(self.num_bins), input_order=input_order,
                         name="made")
        self.built = True  # the MADE builds itself; this layer has no weights of its own

    def bijector(self):
        """A :class:`MaskedAutoregressive` bijector whose network is this layer's MADE."""
        return MaskedAutoregressive(
            lambda y: rational_quadratic_spline(self.made(y), self.num_bins, self.bound),
            self.event_size, name=self.name)

    def call(self, x):
        return self.bijector().inverse(x)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "num_bins": self.num_bins,
            "bound": self.bound,
            "input_order": self.input_order,
        }
