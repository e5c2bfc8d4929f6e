"""The DCGAN discriminator as a WGAN critic: strided convolutions, LeakyReLU, no norm."""

import keras

from zoo.gan.critic import Critic
from zoo.nn.spectral_norm import maybe_spectral


@keras.saving.register_keras_serializable(package="zoo")
class DCGANCritic(Critic):
    """Maps images to unbounded scores, shape ``(batch, outputs)``.

    The DCGAN discriminator (Radford, Metz & Chintala 2016,
    https://arxiv.org/abs/1511.06434) as the WGAN-GP critic (Gulrajani et al.
    2017, https://arxiv.org/abs/1704.00028): ``num_downsamplings`` stride-2
    convolutions with ``filters * 2**i`` channels and LeakyReLU, then the linear
    head of :class:`~zoo.gan.critic.Critic`. No batch
    normalization: the gradient penalty is taken per
    example, which batch norm would couple across the batch (Sec. 4, "No critic
    batch normalization").

    Args:
        filters: channels of the first convolution (doubled at each one after).
        num_downsamplings: number of stride-2 convolutions.
        kernel_size: kernel size of the convolutions.
        negative_slope: slope of the LeakyReLU for negative inputs.
        batch_norm: batch norm after every convolution but the first, as in
            the DCGAN paper's discriminator (not under a per-example penalty).
        **kwargs: the head's, :class:`~zoo.gan.critic.Critic`.
    """

    def __init__(self, filters=64, num_downsamplings=2, kernel_size=5, negative_slope=0.2,
                 batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_downsamplings = int(num_downsamplings)
        self.kernel_size = int(kernel_size)
        self.negative_slope = float(negative_slope)
        self.batch_norm = bool(batch_norm)
        if not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(
                f"DCGANCritic: expected 0 <= negative_slope < 1, got {self.negative_slope}"
            )
        if self.num_downsamplings < 1:
            raise ValueError(
                f"DCGANCritic: expected num_downsamplings >= 1, got {self.num_downsamplings}"
            )
        self.convs = [
            maybe_spectral(keras.layers.Conv2D(self.filters * 2**i, self.kernel_size, strides=2,
                                               padding="same", name=f"downsample_{i}"),
                           self.spectral_norm)
            for i in range(self.num_downsamplings)
        ]
        self.norms = [keras.layers.BatchNormalization(momentum=0.9, name=f"norm_{i}")
                      for i in range(1, self.num_downsamplings)] if self.batch_norm else []
        self.flatten = keras.layers.Flatten(name="flatten")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, conv in enumerate(self.convs):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if self.norms and i:
                self.norms[i - 1].build(shape)
        self.build_head(self.flatten.compute_output_shape(shape))

    def features(self, x, training=None):
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h, training=training)
            if self.norms and i:
                h = self.norms[i - 1](h, training=training)
            # max(h, a h) is LeakyReLU for a < 1; written out, it keeps grappler
            # from fusing the op away from the gradient penalty's second derivative.
            h = keras.ops.maximum(h, self.negative_slope * h)
        return self.flatten(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "num_downsamplings": self.num_downsamplings,
            "kernel_size": self.kernel_size,
            "negative_slope": self.negative_slope,
            "batch_norm": self.batch_norm,
        }
