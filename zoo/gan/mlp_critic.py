"""An MLP critic for vector data: ReLU hidden layers and a linear score."""

import keras

from zoo.gan.critic import Critic
from zoo.nn.spectral_norm import maybe_spectral


@keras.saving.register_keras_serializable(package="zoo")
class MLPCritic(Critic):
    """Maps vectors to unbounded scores, shape ``(batch, outputs)``.

    The critic of the WGAN-GP toy experiments (Gulrajani et al. 2017,
    https://arxiv.org/abs/1704.00028, Sec. 5.1: ReLU MLPs).

    Args:
        hidden_units: width of each hidden layer.
        num_hidden: number of hidden layers (0 gives a linear critic w.x).
        **kwargs: the head's, :class:`~zoo.gan.critic.Critic`.
    """

    def __init__(self, hidden_units=128, num_hidden=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        if self.num_hidden < 0:
            raise ValueError(f"MLPCritic: expected num_hidden >= 0, got {self.num_hidden}")
        self.hidden = [
            maybe_spectral(keras.layers.Dense(self.hidden_units, activation="relu",
                                              name=f"dense_{i}"), self.spectral_norm)
            for i in range(self.num_hidden)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.build_head(shape)

    def features(self, x, training=None):
        for layer in self.hidden:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.outputs,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
        }
