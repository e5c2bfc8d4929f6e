"""The base of the zoo's bijectors that read Keras weights."""

import tensorflow_probability as tfp


class LayerBijector(tfp.bijectors.Bijector):
    """A TFP bijector whose transform reads a Keras layer's weights or calls its
    networks, with no batch parameters of its own.

    TFP caches a bijector's results by input tensor and treats bijectors whose
    parameters compare equal as one. These bijectors' parameters (layers, bound
    methods, constants) compare equal across weight updates, so each instance adds
    a distinct object to its parameters: a new bijector (after a weight update)
    never returns an old one's cached results for the same tensor.

    Args:
        parameters: the subclass constructor's arguments, ``dict(locals())`` taken
            first thing in its ``__init__``.
        forward_min_event_ndims, name, is_constant_jacobian: as ``tfb.Bijector``'s.
    """

    def __init__(self, parameters, forward_min_event_ndims, name, is_constant_jacobian=False):
        super().__init__(
            forward_min_event_ndims=forward_min_event_ndims,
            is_constant_jacobian=is_constant_jacobian,
            validate_args=False,
            parameters=dict(parameters, instance=object()),
            name=name,
        )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}
