"""The base of the zoo's bijectors that read Keras weights."""

import weakref

import tensorflow_probability as tfp


class TensorCache:
    """A bijector's own results per tensor, kept while the tensor lives, without
    keeping it alive; keys are tensors or ``(tensor, extra)`` pairs.

    TFP's cache of results is one for all bijectors and holds each bijector for as
    long as a tensor it has seen lives. A cache keyed by ``tensor.ref()`` holds the
    tensor, so the two made a cycle through that global: each eager call kept its
    bijectors and their tensors for good (a digits RealNVP's ``log_prob``, about
    1,000 objects a call, its sample grid and probe 1 MB an epoch of ``zoo
    train``). An entry goes when its tensor does (an id is reused only after that).
    """

    def __init__(self):
        self._items = {}

    @staticmethod
    def _key(key):
        tensor, extra = key if isinstance(key, tuple) else (key, None)
        return tensor, (id(tensor), extra)

    def __contains__(self, key):
        tensor, k = self._key(key)
        item = self._items.get(k)
        return item is not None and item[0]() is tensor

    def __getitem__(self, key):
        if key not in self:
            raise KeyError(key)
        return self._items[self._key(key)[1]][1]

    def __setitem__(self, key, value):
        tensor, k = self._key(key)
        items = self._items
        items[k] = (weakref.ref(tensor, lambda _, k=k: items.pop(k, None)), value)

    def __len__(self):
        return len(self._items)

    def clear(self):
        self._items.clear()


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
        self._log_dets = TensorCache()  # (tensor, inverse?) -> that direction's log-det
        super().__init__(parameters, forward_min_event_ndims, name, is_constant_jacobian)

    def _transform(self, v, inverse):
        raise NotImplementedError

    def _move(self, v, inverse):
        out, log_det = self._transform(v, inverse)
        self._log_dets[(v, inverse)] = log_det
        self._log_dets[(out, not inverse)] = -log_det
        return out

    def _log_det(self, v, inverse):
        if (v, inverse) not in self._log_dets:
            self._move(v, inverse)
        return self._log_dets[(v, inverse)]

    def _forward(self, x):
        return self._move(x, inverse=False)

    def _inverse(self, y):
        return self._move(y, inverse=True)

    def _forward_log_det_jacobian(self, x):
        return self._log_det(x, inverse=False)

    def _inverse_log_det_jacobian(self, y):
        return self._log_det(y, inverse=True)
