"""The DCGAN generator: dense -> reshape -> strided transposed convolutions -> tanh."""

import keras

from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class DCGANGenerator(keras.layers.Layer):
    """Maps latent vectors to images in [-1, 1].

    The generator of DCGAN (Radford, Metz & Chintala 2016,
    https://arxiv.org/abs/1511.06434) as used by WGAN-GP (Gulrajani et al. 2017,
    https://arxiv.org/abs/1704.00028, Appendix): a dense layer to a
    ``(H / 2**n, W / 2**n, filters * 2**(n-1))`` feature map, then ``n`` stride-2
    transposed convolutions that halve the channels while doubling the
    resolution, each but the last followed by batch norm and ReLU; the last
    outputs the image's channels through ``tanh``.

    Args:
        image_shape: ``(H, W, C)`` of the output, H and W divisible by
            ``2**num_upsamplings``.
        filters: channels of the last hidden feature map (the first has
            ``filters * 2**(num_upsamplings - 1)``).
        num_upsamplings: number of stride-2 transposed convolutions.
        kernel_size: kernel size of the transposed convolutions.
        momentum: momentum of the batch norm moving statistics.
    """

    def __init__(self, image_shape, filters=64, num_upsamplings=2, kernel_size=5,
                 momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.filters = int(filters)
        self.num_upsamplings = int(num_upsamplings)
        self.kernel_size = int(kernel_size)
        self.momentum = float(momentum)
        if len(self.image_shape) != 3:
            raise ValueError(
                f"DCGANGenerator: expected image_shape (H, W, C), got {self.image_shape}"
            )
        if self.num_upsamplings < 1:
            raise ValueError(
                f"DCGANGenerator: expected num_upsamplings >= 1, got {self.num_upsamplings}"
            )
        h, w, c = self.image_shape
        factor = 2**self.num_upsamplings
        if h % factor or w % factor:
            raise ValueError(
                f"DCGANGenerator: {self.num_upsamplings} upsamplings need H and W "
                f"divisible by {factor}, got image_shape {self.image_shape}"
            )
        self.base_shape = (h // factor, w // factor, self.filters * 2 ** (self.num_upsamplings - 1))
        self.project = keras.layers.Dense(
            self.base_shape[0] * self.base_shape[1] * self.base_shape[2],
            use_bias=False, name="project",
        )
        self.project_norm = keras.layers.BatchNormalization(momentum=self.momentum,
                                                            name="project_norm")
        self.upsamplings = []
        for i in range(self.num_upsamplings - 1):
            channels = self.filters * 2 ** (self.num_upsamplings - 2 - i)
            conv = keras.layers.Conv2DTranspose(
                channels, self.kernel_size, strides=2, padding="same", use_bias=False,
                name=f"upsample_{i}",
            )
            norm = keras.layers.BatchNormalization(momentum=self.momentum, name=f"norm_{i}")
            self.upsamplings.append((conv, norm))
        self.to_image = keras.layers.Conv2DTranspose(
            c, self.kernel_size, strides=2, padding="same", name="to_image"
        )

    def build(self, input_shape):
        batch = input_shape[0]
        self.project.build(input_shape)
        self.project_norm.build((batch,) + self.base_shape)
        shape = (batch,) + self.base_shape
        for conv, norm in self.upsamplings:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
        self.to_image.build(shape)

    def call(self, z, training=False):
        h = self.project(z)
        h = keras.ops.reshape(h, (-1,) + self.base_shape)
        h = keras.ops.relu(self.project_norm(h, training=training))
        for conv, norm in self.upsamplings:
            h = keras.ops.relu(norm(conv(h), training=training))
        return keras.ops.tanh(self.to_image(h))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.image_shape

    def get_config(self):
        return {
            **super().get_config(),
            "image_shape": list(self.image_shape),
            "filters": self.filters,
            "num_upsamplings": self.num_upsamplings,
            "kernel_size": self.kernel_size,
            "momentum": self.momentum,
        }
