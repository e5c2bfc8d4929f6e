"""Observation models shared by the families: p(x | params) over a dataset's
discrete levels, each an :class:`ObservationModel` (``observe``, ``log_prob``,
``mean``, ``sample``, the Jacobian it counts, the parameters it takes per value).

``observation_model(name, num_levels, **options)`` builds one by its name in
:data:`OBSERVATIONS`.
"""

import inspect

from zoo.distributions.base import ObservationModel
from zoo.distributions.bernoulli import Bernoulli
from zoo.distributions.categorical import Categorical
from zoo.distributions.discretized_logistic import DiscretizedLogistic
from zoo.distributions.discretized_logistic_mixture import DiscretizedLogisticMixture
from zoo.distributions.fixed_gaussian import FixedGaussian
from zoo.distributions.gaussian import Gaussian

OBSERVATIONS = {cls.name: cls for cls in (DiscretizedLogistic, Bernoulli, Gaussian, FixedGaussian,
                                          DiscretizedLogisticMixture, Categorical)}


def observation_model(name, num_levels, **options):
    """The observation model `name` (a key of :data:`OBSERVATIONS`) over
    `num_levels` levels; `options` are its own arguments (``scale`` of
    ``gaussian_fixed``, ``num_components`` of ``logistic_mixture``), the others'
    ignored."""
    if name not in OBSERVATIONS:
        raise ValueError(f"expected observation in {tuple(OBSERVATIONS)}, got {name!r}")
    cls = OBSERVATIONS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "num_levels"}
    return cls(num_levels, **{k: v for k, v in options.items() if k in accepted})


__all__ = ["OBSERVATIONS", "Bernoulli", "Categorical", "DiscretizedLogistic",
           "DiscretizedLogisticMixture", "FixedGaussian", "Gaussian", "ObservationModel",
           "observation_model"]
