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

    # TFP keys its caches by bijector, and hashes a bijector's parameters at each
    # lookup (a Chain hashes every bijector in it, each time). With ``instance``
    # among the parameters, two of these bijectors are equal only if they are the
    # same object: identity gives the same answers, without the hashing.
    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


class OnePassBijector(LayerBijector):
    """A :class:`LayerBijector` whose transform and log-det come from one pass:
    subclasses implement ``_transform(v, inverse) -> (out, log_det)``.

    TFP asks for a transform and its log-det separately (and its Chain asks for
    the forward log-det at the inverse's output), so each pass keeps its log-det
    under the input tensor, and minus it under the output for the other direction.
    """

    def __init__(self, parameters, forward_min_event_ndims, name, is_constant_jacobian=False):
        self._log_dets = {}  # (tensor ref, inverse?) -> log-det of that direction there
        super().__init__(parameters, forward_min_event_ndims, name, is_constant_jacobian)

    def _transform(self, v, inverse):
        raise NotImplementedError

    def _move(self, v, inverse):
        out, log_det = self._transform(v, inverse)
        self._log_dets[(v.ref(), inverse)] = log_det
        self._log_dets[(out.ref(), not inverse)] = -log_det
        return out

    def _log_det(self, v, inverse):
        if (v.ref(), inverse) not in self._log_dets:
            self._move(v, inverse)
        return self._log_dets[(v.ref(), inverse)]

    def _forward(self, x):
        return self._move(x, inverse=False)

    def _inverse(self, y):
        return self._move(y, inverse=True)

    def _forward_log_det_jacobian(self, x):
        return self._log_det(x, inverse=False)

    def _inverse_log_det_jacobian(self, y):
        return self._log_det(y, inverse=True)
