"""A Bernoulli per pixel on dynamically binarized levels."""

import tensorflow as tf

from zoo.distributions.base import ObservationModel
from zoo.preprocessing import binarize


class Bernoulli(ObservationModel):
    """Bernoulli(sigmoid(logit)) per value of binarized data: a pixel is 1 with
    probability level / (L - 1) (dynamic binarization, as in Burda et al. 2016's
    MNIST), so its NLL is that of the binarized data, not comparable with models
    of the levels. One parameter per value: the logit.
    """

    name = "bernoulli"

    def observe(self, x, seed):
        return binarize(x, self.num_levels, seed=seed)

    def observe_deterministic(self, x):
        """Pixels thresholded at half range."""
        return tf.cast(x > self.top / 2.0, tf.float32)

    def to_symmetric(self, observed):
        return 2.0 * observed - 1.0

    def log_prob(self, observed, params):
        """log P(bits) of Bernoulli(sigmoid(logits)) per pixel, bits in {0, 1}."""
        return -tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.broadcast_to(observed, tf.shape(params)), logits=params)

    def mean(self, params):
        """(L - 1) times the pixel's probability."""
        return self.top * tf.sigmoid(params)

    def sample_from_noise(self, params, noise):
        """0 or L - 1: L - 1 where the uniform is below the pixel's probability."""
        return self.top * tf.cast(noise[..., 0] < tf.sigmoid(params), tf.float32)
