"""A model written outside the zoo: a diagonal Gaussian fitted by maximum likelihood."""

import math

import keras
import tensorflow as tf

import zoo
from zoo.base import GenerativeModel
from zoo.datasets.toy import for_each_density
from zoo.validation import on_batches


@zoo.register("diagonal_gaussian", presets=for_each_density(), default_dataset="moons")
@keras.saving.register_keras_serializable(package="my_models")
class DiagonalGaussian(GenerativeModel):
    """N(mean, diag(exp(log_scale))^2) on vectors, fitted by maximum likelihood.

    Args:
        data_shape: ``(D,)``, from the dataset.
        num_levels: None (continuous data).
    """

    family = "baseline"
    likelihood = "exact"
    loss_names = ("loss",)

    def __init__(self, data_shape=(2,), num_levels=None, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        if len(self.data_shape) != 1 or self.num_levels is not None:
            raise ValueError(f"DiagonalGaussian: expected vectors, got data_shape "
                             f"{self.data_shape} and num_levels {self.num_levels}")
        self.mean = self.add_weight(shape=self.data_shape, initializer="zeros", name="mean")
        self.log_scale = self.add_weight(shape=self.data_shape, initializer="zeros",
                                         name="log_scale")
        self.build_model()

    def call(self, x):
        return self.density(x)

    def density(self, x):
        """log N(x; mean, scale^2) per example."""
        z = (x - self.mean) * tf.exp(-self.log_scale)
        return -tf.reduce_sum(0.5 * tf.square(z) + self.log_scale + 0.5 * math.log(2 * math.pi),
                              axis=-1)

    def compute_losses(self, x, training=False):
        return {"loss": -tf.reduce_mean(self.density(x))}

    @on_batches("data")
    def log_prob(self, x):
        return self.density(self.validate_inputs(x, "log_prob"))

    def nll(self, x, seed=None):
        return -self.log_prob(x)

    def draw_samples(self, n, seed):
        eps = tf.random.stateless_normal(tf.concat([[n], self.data_shape], 0), seed=seed)
        return self.mean + tf.exp(self.log_scale) * eps

    def draw_completion(self, x, mask, seed):
        # The coordinates are independent: the missing ones are drawn from their
        # marginals (the base class keeps the others exactly, and exports `complete`).
        return self.draw_samples(tf.shape(x)[0], seed)

    def data_signatures(self):
        return {"log_prob": (lambda x: {"log_prob": self.log_prob(x)}, [self.data_spec()])}
