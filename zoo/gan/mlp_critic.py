"""An MLP critic for vector data: ReLU hidden layers and a bias-free scalar score."""

import keras


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
    """

    def __init__(self, hidden_units=128, num_hidden=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        if self.num_hidden < 0:
            raise ValueError(f"MLPCritic: expected num_hidden >= 0, got {self.num_hidden}")
        self.hidden = [
            keras.layers.Dense(self.hidden_units, activation="relu", name=f"dense_{i}")
            for i in range(self.num_hidden)
        ]
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.score.build(shape)

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.score(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
        }
