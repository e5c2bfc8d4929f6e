"""An MLP critic for vector data: ReLU hidden layers and a bias-free scalar score."""

import keras

from zoo.nn.spectral_norm import maybe_spectral


def projection(num_classes, features, spectral_norm):
    """The class embedding V of a projection discriminator (None without
    classes), built: a bias-free Dense on one-hot labels."""
    if not num_classes:
        return None
    layer = maybe_spectral(keras.layers.Dense(features, use_bias=False, name="projection"),
                           spectral_norm)
    layer.build((None, num_classes))
    return layer


def projected(critic, h, score, labels, training):
    """``score + <V one_hot(labels), h>`` for a projection discriminator."""
    if critic.projection is None:
        return score
    if labels is None:
        raise ValueError(f"{type(critic).__name__}: a projection discriminator "
                         f"(num_classes={critic.num_classes}) needs labels")
    v = critic.projection(keras.ops.one_hot(labels, critic.num_classes), training=training)
    return score + keras.ops.sum(v * h, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="zoo")
class MLPCritic(keras.layers.Layer):
    """Maps vectors to one unbounded score each, shape ``(batch, 1)``.

    The critic of the WGAN-GP toy experiments (Gulrajani et al. 2017,
    https://arxiv.org/abs/1704.00028, Sec. 5.1: ReLU MLPs). The score has no
    bias: a Wasserstein critic is defined up to a constant, which neither the
    critic's loss nor the generator's can see, so such a bias would never get a
    gradient.

    Args:
        hidden_units: width of each hidden layer.
        num_hidden: number of hidden layers (0 gives a linear critic w.x).
        spectral_norm: wrap every layer in :class:`~zoo.nn.spectral_norm.SpectralNorm`.
        score_bias: give the score a bias (for losses that see a constant, such
            as the f-GANs' and the non-saturating GAN's).
        outputs: scores (or features) per example (a distance between batches
            compares features).
        num_classes: > 0 makes it a projection discriminator (Miyato & Koyama
            2018, https://arxiv.org/abs/1802.05637, Eq. 3): the score of
            ``(x, y)`` adds ``<V one_hot(y), h(x)>``, h the last hidden
            features; ``call`` then takes ``labels``.
    """

    def __init__(self, hidden_units=128, num_hidden=3, spectral_norm=False, score_bias=False,
                 outputs=1, num_classes=0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.spectral_norm = bool(spectral_norm)
        self.score_bias = bool(score_bias)
        self.outputs = int(outputs)
        self.num_classes = int(num_classes)
        self.projection = None  # built with the layer when num_classes > 0
        if self.outputs < 1:
            raise ValueError(f"{type(self).__name__}: expected outputs >= 1, got {outputs}")
        if self.num_hidden < 0:
            raise ValueError(f"MLPCritic: expected num_hidden >= 0, got {self.num_hidden}")
        self.hidden = [
            maybe_spectral(keras.layers.Dense(self.hidden_units, activation="relu",
                                              name=f"dense_{i}"), self.spectral_norm)
            for i in range(self.num_hidden)
        ]
        self.score = maybe_spectral(keras.layers.Dense(self.outputs, use_bias=self.score_bias,
                                                       name="score"),
                                    self.spectral_norm)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.score.build(shape)
        self.projection = projection(self.num_classes, shape[-1], self.spectral_norm)

    def call(self, x, labels=None, training=None):
        for layer in self.hidden:
            x = layer(x, training=training)
        return projected(self, x, self.score(x, training=training), labels, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.outputs,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "spectral_norm": self.spectral_norm,
            "score_bias": self.score_bias,
            "outputs": self.outputs,
            "num_classes": self.num_classes,
        }
