"""What every critic of the zoo shares: its head on the features of a trunk."""

import keras
import tensorflow as tf

from zoo.nn.spectral_norm import maybe_spectral
from zoo.nn.unet import sinusoidal_embedding
from zoo.precision import network


@network
class Critic(keras.layers.Layer):
    """The base of the zoo's critics: a subclass computes features ``h(x)``
    (``features``) and this class adds the head, ``score``, a linear layer with
    `outputs` units.

    Args:
        spectral_norm: wrap every layer in :class:`~zoo.nn.spectral_norm.SpectralNorm`
            (subclasses wrap theirs with ``self.spectral_norm``).
        score_bias: give the score a bias. A Wasserstein critic is defined up to
            a constant that neither player's loss sees, so its bias would never
            get a gradient; the f-GANs' and the non-saturating GAN's losses see
            constants.
        outputs: scores (or features, which a distance between batches
            compares) per example.
        num_classes: > 0 makes it a projection discriminator (Miyato & Koyama,
            "cGANs with Projection Discriminator", ICLR 2018,
            https://arxiv.org/abs/1802.05637, Eq. 3): the score of ``(x, y)``
            adds ``<V one_hot(y), h(x)>``, V a bias-free linear map of one-hot
            labels; ``call`` then takes ``labels``.
        timestep_dim: > 0 conditions the critic on a timestep t (Diffusion-GAN's
            ``D(y, t)``) the same way, by a projection: the score adds
            ``<W phi(t), h(x)>``, W a bias-free linear map of ``phi(t) = e(t) -
            e(0)``, e the sinusoidal embedding of this width
            (:func:`~zoo.nn.unet.sinusoidal_embedding`). ``phi(0) = 0``, so at
            t = 0 (and with no ``timesteps`` given) the score is the
            unconditional critic's.
    """

    policy_methods = ("call", "features")  # VAE-GAN reads the features directly

    def __init__(self, spectral_norm=False, score_bias=False, outputs=1, num_classes=0,
                 timestep_dim=0, **kwargs):
        super().__init__(**kwargs)
        self.spectral_norm = bool(spectral_norm)
        self.score_bias = bool(score_bias)
        self.outputs = int(outputs)
        self.num_classes = int(num_classes)
        self.timestep_dim = int(timestep_dim)
        if self.outputs < 1 or self.num_classes < 0 or self.timestep_dim < 0:
            raise ValueError(f"{type(self).__name__}: expected outputs >= 1, num_classes >= 0 "
                             f"and timestep_dim >= 0, got {outputs}, {num_classes} and "
                             f"{timestep_dim}")
        # Made by build_head, after the subclass's layers (the order of the
        # weights, which optimizer slots and checkpoints of zoo 0.1 follow).
        self.score = self.projection = self.time_projection = None

    def build_head(self, features_shape):
        """Makes the score (and the class embedding) on features of this shape."""
        self.score = maybe_spectral(keras.layers.Dense(self.outputs, use_bias=self.score_bias,
                                                       name="score"), self.spectral_norm)
        self.score.build(features_shape)
        if self.num_classes:
            self.projection = maybe_spectral(
                keras.layers.Dense(features_shape[-1], use_bias=False, name="projection"),
                self.spectral_norm)
            self.projection.build((None, self.num_classes))
        if self.timestep_dim:
            self.time_projection = maybe_spectral(
                keras.layers.Dense(features_shape[-1], use_bias=False, name="time_projection"),
                self.spectral_norm)
            self.time_projection.build((None, self.timestep_dim))

    def features(self, x, training=None):
        raise NotImplementedError

    def timestep_features(self, timesteps):
        """``phi(t) = e(t) - e(0)``, (batch, timestep_dim): zero at t = 0."""
        zero = sinusoidal_embedding(tf.zeros([1]), self.timestep_dim)
        return sinusoidal_embedding(timesteps, self.timestep_dim) - zero

    def call(self, x, labels=None, timesteps=None, training=None):
        h = self.features(x, training=training)
        score = self.score(h, training=training)
        if timesteps is not None and self.time_projection is None:
            raise ValueError(f"{type(self).__name__}: timesteps given to a critic without "
                             f"timestep conditioning (timestep_dim=0)")
        projections = []
        if self.projection is not None:
            if labels is None:
                raise ValueError(f"{type(self).__name__}: a projection discriminator "
                                 f"(num_classes={self.num_classes}) needs labels")
            projections.append(self.projection(keras.ops.one_hot(labels, self.num_classes),
                                               training=training))
        if timesteps is not None:
            projections.append(self.time_projection(self.timestep_features(timesteps),
                                                    training=training))
        if not projections:
            return score
        # In float32: under a mixed policy the spectrally normalised layers' outputs
        # are float32 already, the plain ones' half.
        h, score = keras.ops.cast(h, "float32"), keras.ops.cast(score, "float32")
        for v in projections:
            score = score + keras.ops.sum(keras.ops.cast(v, "float32") * h, axis=-1,
                                          keepdims=True)
        return score

    def get_config(self):
        return {
            **super().get_config(),
            "spectral_norm": self.spectral_norm,
            "score_bias": self.score_bias,
            "outputs": self.outputs,
            "num_classes": self.num_classes,
            "timestep_dim": self.timestep_dim,
        }
