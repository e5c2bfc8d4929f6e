"""Glow's multi-scale split with a learned prior, written as a flow step."""

import keras
import tensorflow_probability as tfp

from zoo.flows.steps.channel_affine_coupling import ChannelAffineCouplingBijector
from zoo.flows.steps.channel_split import ChannelSplit
from zoo.nn.conv2d_zeros import Conv2DZeros

tfb = tfp.bijectors


@keras.saving.register_keras_serializable(package="zoo")
class LearnedPriorSplit(keras.layers.Layer):
    """Factors out half the channels, z_i ~ N(mu(h), sigma(h)^2) given the kept half h.

    Kingma & Dhariwal 2018, https://arxiv.org/abs/1807.03039 (the paper's code,
    ``split2d``): at the end of each scale but the last, the first ``C // 2``
    channels ``z_i`` leave the flow, and their prior is a Gaussian whose mean and
    log-scale come from a zero-initialised convolution of the other channels ``h``.
    That prior is the flow step eps_i = (z_i - mu(h)) / sigma(h) followed by a
    standard normal, so the model stays a flow with an N(0, I) base:
    log|det J| = -sum log sigma(h); sampling at temperature T draws
    z_i = mu(h) + sigma(h) * T * eps, as in Glow.

    ``bijector(inner)`` is the paper's direction, data -> latent: the step above,
    then ``inner`` (the next scales) on ``h`` (a :class:`ChannelSplit`).

    Args:
        event_shape: ``(H, W, C)``, C even.
    """

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)
        if len(self.event_shape) != 3 or self.event_shape[-1] % 2:
            raise ValueError(f"LearnedPriorSplit: expected event_shape (H, W, C) with C "
                             f"even, got {self.event_shape}")
        self.num_factored = self.event_shape[-1] // 2
        self.prior_net = Conv2DZeros(2 * self.num_factored, name="prior_net")
        self.build(None)

    def build(self, input_shape=None):
        self.prior_net.build((None,) + self.event_shape[:-1] + (self.num_factored,))

    def mean_and_log_scale(self, h):
        """mu(h) and log sigma(h) of the factored-out channels."""
        out = self.prior_net(h)
        return out[..., 0::2], out[..., 1::2]

    def shift_and_log_scale(self, h):
        """eps = (z - mu) / sigma = (z + shift) * exp(log_scale)."""
        mean, log_sigma = self.mean_and_log_scale(h)
        return -mean, -log_sigma

    def bijector(self, inner=None):
        prior = ChannelAffineCouplingBijector(self.shift_and_log_scale, self.num_factored,
                                              "second", 3, name=f"{self.name}_prior")
        if inner is None:
            return prior
        return tfb.Chain([ChannelSplit(inner, self.num_factored), prior],
                         name=self.name)

    def call(self, x):
        return self.bijector().forward(x)

    def get_config(self):
        return {**super().get_config(), "event_shape": list(self.event_shape)}
