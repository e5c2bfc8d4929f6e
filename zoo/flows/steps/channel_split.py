"""Apply a bijector to the second half of the channels only (multi-scale factor-out)."""

import tensorflow as tf

from zoo.flows.steps.bijector import LayerBijector, TensorCache


class ChannelSplit(LayerBijector):
    """y = concat(x[..., :k], inner(x[..., k:])), the factor-out of a multi-scale flow.

    The first ``k`` channels are "factored out" (RealNVP Sec. 3.6): they leave the
    flow here and go straight to the Gaussian prior, while ``inner`` (the next scale)
    transforms the rest. log|det J| is that of ``inner``.

    Args:
        inner: a bijector on (H, W, C - k) events.
        num_factored: k, the channels left untouched.
    """

    def __init__(self, inner, num_factored, name="channel_split"):
        parameters = dict(locals())
        self._inner = inner
        self._k = int(num_factored)
        self._halves = TensorCache()
        super().__init__(parameters, forward_min_event_ndims=3, name=name)

    def _split(self, x):
        """The halves of `x`, sliced once per tensor.

        TFP asks for the transform and its log-det separately, on the input or on
        the output; handing ``inner`` the very tensors it was given or made lets
        its own caches hit, so the next scales' networks run once.
        """
        if x not in self._halves:
            self._halves[x] = (x[..., : self._k], x[..., self._k :])
        return self._halves[x]

    def _forward(self, x):
        kept, rest = self._split(x)
        rest = self._inner.forward(rest)
        y = tf.concat([kept, rest], axis=-1)
        self._halves[y] = (kept, rest)
        return y

    def _inverse(self, y):
        kept, rest = self._split(y)
        rest = self._inner.inverse(rest)
        x = tf.concat([kept, rest], axis=-1)
        self._halves[x] = (kept, rest)
        return x

    def _forward_log_det_jacobian(self, x):
        return self._inner.forward_log_det_jacobian(self._split(x)[1], event_ndims=3)

    def _inverse_log_det_jacobian(self, y):
        return self._inner.inverse_log_det_jacobian(self._split(y)[1], event_ndims=3)
