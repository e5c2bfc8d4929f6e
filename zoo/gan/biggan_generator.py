"""BigGAN's generator: residual blocks with conditional batch norm, a hierarchical
latent and self-attention, sized for small images."""

import keras
from keras import ops

from zoo.nn.conditional_batch_norm import ConditionalBatchNorm
from zoo.nn.self_attention import SelfAttention
from zoo.nn.spectral_norm import maybe_spectral
from zoo.precision import network


@keras.saving.register_keras_serializable(package="zoo")
@network
class BigGANGenerator(keras.layers.Layer):
    """Maps ``{"z": z, "labels": labels}`` (or z alone, unconditional) to images
    in [-1, 1].

    Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity
    Natural Image Synthesis", ICLR 2019, https://arxiv.org/abs/1809.11096
    (Sec. 3, Appendix B, Fig. 15): z is split into ``num_upsamplings + 1``
    chunks (the hierarchical latent); the first goes through a linear layer to
    a ``(H / 2**n, W / 2**n, filters * 2**(n-1))`` map, each other chunk,
    concatenated with the shared class embedding (one bias-free linear map of
    the one-hot class, shared by every block), conditions both conditional batch
    norms (:class:`~zoo.nn.conditional_batch_norm.ConditionalBatchNorm`) of one
    residual upsampling block (``CBN, ReLU, 2x nearest upsampling, 3x3 conv,
    CBN, ReLU, 3x3 conv`` beside an upsampled 1x1 shortcut); self-attention
    follows block ``attention_block``; then batch norm, ReLU, a 3x3 convolution
    and ``tanh``. Every linear and convolutional layer is spectrally normalised
    (``spectral_norm``, BigGAN's generator as SAGAN's).

    Args:
        image_shape: ``(H, W, C)``, H and W divisible by ``2**num_upsamplings``.
        latent_dim: the dimension of z (at least ``num_upsamplings + 1``).
        filters: channels of the last block (doubled towards the first).
        num_classes: classes (0: unconditional, no embedding).
        embedding_dim: dimension of the shared class embedding.
        num_upsamplings: residual upsampling blocks.
        attention_block: the block self-attention follows (-1: none).
        spectral_norm: spectrally normalise the layers.
    """

    def __init__(self, image_shape, latent_dim=32, filters=32, num_classes=0, embedding_dim=16,
                 num_upsamplings=2, attention_block=0, spectral_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.num_upsamplings = int(num_upsamplings)
        self.attention_block = int(attention_block)
        self.spectral_norm = bool(spectral_norm)
        h, w, c = self.image_shape
        n = self.num_upsamplings
        if n < 1 or h % 2 ** n or w % 2 ** n:
            raise ValueError(f"BigGANGenerator: {n} upsamplings need H and W divisible by "
                             f"{2 ** n}, got image_shape {self.image_shape}")
        if self.latent_dim < n + 1:
            raise ValueError(f"BigGANGenerator: the hierarchical latent needs latent_dim >= "
                             f"{n + 1} (one chunk per block and one for the input), got "
                             f"{latent_dim}")
        if not -1 <= self.attention_block < n:
            raise ValueError(f"BigGANGenerator: expected attention_block in [-1, {n}), got "
                             f"{attention_block}")
        chunk = self.latent_dim // (n + 1)
        self.chunks = [self.latent_dim - n * chunk] + [chunk] * n
        self.channels = [self.filters * 2 ** (n - 1 - i) for i in range(n)]
        self.base_shape = (h // 2 ** n, w // 2 ** n, self.channels[0])

        def sn(layer):
            return maybe_spectral(layer, self.spectral_norm)

        self.embedding = (keras.layers.Dense(self.embedding_dim, use_bias=False, name="embedding")
                          if self.num_classes else None)
        self.project = sn(keras.layers.Dense(int(h // 2 ** n * w // 2 ** n * self.channels[0]),
                                             name="project"))
        self.blocks = []
        for i, units in enumerate(self.channels):
            self.blocks.append(dict(
                norm_1=ConditionalBatchNorm(self.spectral_norm, name=f"block_{i}_norm_1"),
                conv_1=sn(keras.layers.Conv2D(units, 3, padding="same", name=f"block_{i}_conv_1")),
                norm_2=ConditionalBatchNorm(self.spectral_norm, name=f"block_{i}_norm_2"),
                conv_2=sn(keras.layers.Conv2D(units, 3, padding="same", name=f"block_{i}_conv_2")),
                skip=sn(keras.layers.Conv2D(units, 1, name=f"block_{i}_skip"))))
        self.attention = (SelfAttention(self.spectral_norm, name="attention")
                          if self.attention_block >= 0 else None)
        self.out_norm = keras.layers.BatchNormalization(momentum=0.9, name="out_norm")
        self.to_image = sn(keras.layers.Conv2D(c, 3, padding="same", name="to_image"))

    def build(self, input_shape):
        batch = (input_shape["z"] if isinstance(input_shape, dict) else input_shape)[0]
        cond = self.chunks[1] + (self.embedding_dim if self.num_classes else 0)
        if self.embedding is not None:
            self.embedding.build((batch, self.num_classes))
        self.project.build((batch, self.chunks[0]))
        shape = (batch,) + self.base_shape
        for i, block in enumerate(self.blocks):
            block["norm_1"].build(shape, (batch, cond))
            up = (batch, 2 * shape[1], 2 * shape[2], shape[3])
            block["conv_1"].build(up)
            block["skip"].build(up)
            shape = block["conv_1"].compute_output_shape(up)
            block["norm_2"].build(shape, (batch, cond))
            block["conv_2"].build(shape)
            if i == self.attention_block:
                self.attention.build(shape)
        self.out_norm.build(shape)
        self.to_image.build(shape)
        self.built = True

    def kernels(self):
        """The kernels orthogonal regularization sees: every layer's but the
        class embedding's (BigGAN-PyTorch leaves the shared embedding out)."""
        skip = {id(v) for v in self.embedding.weights} if self.embedding is not None else set()
        return [v for v in self.trainable_variables
                if len(v.shape) >= 2 and id(v) not in skip]

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            z, labels = inputs["z"], inputs.get("labels")
        else:
            z, labels = inputs, None
        parts = ops.split(z, [sum(self.chunks[:i + 1]) for i in range(len(self.chunks) - 1)],
                          axis=-1)
        shared = None
        if self.embedding is not None:
            shared = self.embedding(ops.one_hot(ops.cast(labels, "int32"), self.num_classes))
        h = ops.reshape(self.project(parts[0], training=training), (-1,) + self.base_shape)
        for i, block in enumerate(self.blocks):
            c = parts[i + 1] if shared is None else ops.concatenate([shared, parts[i + 1]], -1)
            up = ops.relu(block["norm_1"](h, c, training=training))
            up = ops.repeat(ops.repeat(up, 2, axis=1), 2, axis=2)
            skip = ops.repeat(ops.repeat(h, 2, axis=1), 2, axis=2)
            main = block["conv_1"](up, training=training)
            main = ops.relu(block["norm_2"](main, c, training=training))
            h = block["conv_2"](main, training=training) + block["skip"](skip, training=training)
            if i == self.attention_block:
                h = self.attention(h, training=training)
        h = ops.relu(self.out_norm(h, training=training))
        return ops.tanh(self.to_image(h, training=training))

    def compute_output_shape(self, input_shape):
        batch = (input_shape["z"] if isinstance(input_shape, dict) else input_shape)[0]
        return (batch,) + self.image_shape

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "latent_dim": self.latent_dim, "filters": self.filters,
                "num_classes": self.num_classes, "embedding_dim": self.embedding_dim,
                "num_upsamplings": self.num_upsamplings,
                "attention_block": self.attention_block, "spectral_norm": self.spectral_norm}
