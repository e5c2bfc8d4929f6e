"""A mixture of discretized logistics per value (PixelCNN++'s output distribution)."""

import tensorflow as tf

from zoo.distributions.base import ObservationModel
from zoo.distributions.discretized_logistic import (
    discretized_logistic_log_prob,
    discretized_logistic_sample,
)
from zoo.nn.random_stream import inverse_cdf


class DiscretizedLogisticMixture(ObservationModel):
    """A mixture of `num_components` discretized logistics per value (Salimans et
    al. 2017, https://arxiv.org/abs/1701.05517, eq. 2): P(k) = sum_i pi_i
    [sigmoid((c_k + h - mu_i) / s_i) - sigmoid((c_k - h - mu_i) / s_i)], each
    component as :class:`~zoo.distributions.discretized_logistic.DiscretizedLogistic`.

    Each channel has its own mixture (the paper's colour images also share the
    weights across channels and add linear dependencies between them; the zoo's
    data are greyscale). Parameters per value: ``3 * num_components``, the
    mixture logits, the locations in [-1, 1] and the log-scales, in that order,
    each block of ``num_components`` slices of the channels.

    Args:
        num_levels: the data's levels L >= 2.
        num_components: mixture components K >= 1.
    """

    name = "logistic_mixture"
    uniforms_per_value = 2

    def __init__(self, num_levels, num_components=5):
        super().__init__(num_levels)
        self.num_components = int(num_components)
        if self.num_components < 1:
            raise ValueError(f"DiscretizedLogisticMixture: expected num_components >= 1, got "
                             f"{num_components}")
        self.params_per_channel = 3 * self.num_components

    def components(self, params):
        """(logits, loc, log_scale), each (..., C, K)."""
        parts = self.split(params)
        k = self.num_components
        return tuple(tf.stack(parts[i * k:(i + 1) * k], axis=-1) for i in range(3))

    def log_prob(self, observed, params):
        logits, loc, log_scale = self.components(params)
        levels = tf.broadcast_to(observed[..., None], tf.shape(loc))
        log_p = discretized_logistic_log_prob(levels, loc, log_scale, self.num_levels)
        return tf.reduce_logsumexp(tf.nn.log_softmax(logits, axis=-1) + log_p, axis=-1)

    def mean(self, params):
        """The mixture's mean location, in levels."""
        logits, loc, _ = self.components(params)
        loc = tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * loc, axis=-1)
        return tf.clip_by_value((loc + 1.0) * self.top / 2.0, 0.0, self.top)

    def temper(self, params, temperature):
        """The mixture logits divided by `temperature`, the scales multiplied by it."""
        parts = self.split(params)
        k = self.num_components
        return tf.concat([p / temperature for p in parts[:k]] + list(parts[k:2 * k])
                         + [p + tf.math.log(tf.cast(temperature, p.dtype)) for p in parts[2 * k:]],
                         axis=-1)

    def sample_from_noise(self, params, noise):
        """A component per value by the inverse CDF of its first uniform, then a
        level from that component's logistic by the inverse CDF of its second."""
        logits, loc, log_scale = self.components(params)
        pick = tf.one_hot(inverse_cdf(tf.nn.softmax(logits, axis=-1), noise[..., 0]),
                          self.num_components)
        return discretized_logistic_sample(tf.reduce_sum(pick * loc, axis=-1),
                                           tf.reduce_sum(pick * log_scale, axis=-1),
                                           self.num_levels, noise[..., 1])

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components}
