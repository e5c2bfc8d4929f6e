"""The observation model's interface: p(x | params) over a dataset's discrete levels."""

import tensorflow as tf


class ObservationModel:
    """p(x | params) per value of raw data given as integer levels in
    ``[0, num_levels)``, with the network's ``params`` (``params_per_channel``
    numbers per value, stacked on the last axis).

    A model sees the raw levels through :meth:`observe` (what it models: the
    levels themselves, their binarization, or dequantized values), scores them
    with :meth:`log_prob` (nats per value; a density where the observed values
    are continuous, in which case ``log_det_jacobian`` is the log-Jacobian per
    value of the map from the levels' dequantized space, so that ``log_prob`` is
    already in the units of the discrete data), and draws levels with
    :meth:`sample`. Every method broadcasts ``observed`` against ``params``.

    A discrete model's draw is a function of uniforms: :meth:`sample_from_noise`
    maps ``uniforms_per_value`` uniforms on [0, 1) per value to its level, and
    :meth:`sample` draws those uniforms (TF's stateless kernel, :meth:`noise`) and
    calls it, so that a sequential sampler can draw all its noise before its loop
    (and run the loop under XLA, whose random numbers differ from TF's kernels').

    Args:
        num_levels: the data's levels L >= 2.
    """

    name = None
    params_per_channel = 1
    # True where log_prob is the probability mass of the integer levels themselves.
    discrete = True
    # Uniforms on [0, 1) that one value's draw takes (:meth:`sample_from_noise`).
    uniforms_per_value = 1

    def __init__(self, num_levels):
        self.num_levels = int(num_levels)
        if self.num_levels < 2:
            raise ValueError(f"{type(self).__name__}: expected num_levels >= 2, got {num_levels}")

    @property
    def top(self):
        """The highest level, L - 1."""
        return self.num_levels - 1.0

    @property
    def log_det_jacobian(self):
        """The log-Jacobian per value counted in :meth:`log_prob` (0 for a mass)."""
        return 0.0

    def observe(self, x, seed):
        """What the model scores, from raw levels `x` and a stateless `seed`."""
        return x

    def observe_deterministic(self, x):
        """:meth:`observe` without noise (for encoders: ``encode``, ``reconstruct``)."""
        return x

    def to_symmetric(self, observed):
        """Observed values -> [-1, 1] (an encoder's input)."""
        return 2.0 * observed / self.top - 1.0

    def log_prob(self, observed, params):
        """log p per value of `observed` (nats), the shape of the broadcast."""
        raise NotImplementedError

    def mean(self, params):
        """The mean (or location) in levels [0, L - 1]."""
        raise NotImplementedError

    def value_shape(self, params):
        """The shape of the values `params` are of: its own with the last axis
        divided by ``params_per_channel`` (a 1-D int32 tensor)."""
        shape = tf.shape(params)
        return tf.concat([shape[:-1], shape[-1:] // self.params_per_channel], 0)

    def noise(self, shape, seed):
        """Uniforms on [0, 1) for draws of values of `shape`: ``shape +
        (uniforms_per_value,)``, from TF's stateless kernel with `seed`."""
        return tf.random.stateless_uniform(
            tf.concat([tf.cast(shape, tf.int32), [self.uniforms_per_value]], 0), seed=seed)

    def sample(self, params, seed):
        """Integer levels (float32) drawn from p(x | params) with a stateless `seed`:
        :meth:`sample_from_noise` of the uniforms :meth:`noise` draws."""
        return self.sample_from_noise(params, self.noise(self.value_shape(params), seed))

    def sample_from_noise(self, params, noise):
        """The levels (float32) that `noise`, ``uniforms_per_value`` uniforms on
        [0, 1) per value (the values' shape + that axis), draws from p(x | params):
        a deterministic function, the same under XLA as in TF's kernels up to
        float rounding."""
        raise NotImplementedError(f"{type(self).__name__} draws no levels from uniforms")

    def temper(self, params, temperature):
        """`params` of a distribution sharpened (`temperature` < 1) or flattened
        (> 1) for sampling; the same at 1."""
        raise NotImplementedError(f"{type(self).__name__} has no sampling temperature")

    def split(self, params):
        """`params` cut into its ``params_per_channel`` parts on the last axis."""
        if self.params_per_channel == 1:
            return (params,)
        return tf.split(params, self.params_per_channel, axis=-1)

    def get_config(self):
        return {"num_levels": self.num_levels}
