"""Squeeze: (H, W, C) -> (H/2, W/2, 4C), a permutation with log|det J| = 0."""

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


class Squeeze(tfb.Bijector):
    """Space-to-depth on 2x2 blocks (RealNVP Sec. 3.6), volume preserving.

    Forward squeezes ``(..., H, W, C)`` to ``(..., H/2, W/2, 4C)``; H and W must be even.
    """

    def __init__(self, name="squeeze"):
        super().__init__(
            forward_min_event_ndims=3,
            is_constant_jacobian=True,
            validate_args=False,
            parameters=dict(locals()),
            name=name,
        )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @staticmethod
    def _flat(x, fn):
        shape = tf.shape(x)
        y = fn(tf.reshape(x, tf.concat([[-1], shape[-3:]], 0)), 2)
        return tf.reshape(y, tf.concat([shape[:-3], tf.shape(y)[1:]], 0))

    def _check(self, shape, direction):
        """A clear error for static shapes the 2x2 blocks cannot take."""
        if shape.rank is not None and shape.rank < 3:
            raise ValueError(f"Squeeze.{direction}: expected (..., H, W, C) events, got {shape}")
        h, w, c = shape[-3:] if shape.rank is not None else (None, None, None)
        if direction == "forward" and ((h is not None and h % 2) or (w is not None and w % 2)):
            raise ValueError(
                f"Squeeze.forward: expected even H and W for 2x2 blocks, got (H, W, C) = "
                f"{(h, w, c)}")
        if direction == "inverse" and c is not None and c % 4:
            raise ValueError(
                f"Squeeze.inverse: expected channels divisible by 4, got (H, W, C) = {(h, w, c)}")

    def _forward(self, x):
        self._check(x.shape, "forward")
        return self._flat(x, tf.nn.space_to_depth)

    def _inverse(self, y):
        self._check(y.shape, "inverse")
        return self._flat(y, tf.nn.depth_to_space)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], x.dtype)

    def _forward_event_shape(self, shape):
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([h // 2 if h else None, w // 2 if w else None, 4 * c if c else None])

    def _inverse_event_shape(self, shape):
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([2 * h if h else None, 2 * w if w else None, c // 4 if c else None])

    def _forward_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:-1] // 2, shape[-1:] * 4], 0)

    def _inverse_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:-1] * 2, shape[-1:] // 4], 0)
