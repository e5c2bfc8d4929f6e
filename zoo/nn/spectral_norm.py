"""Spectral normalisation of a Dense or Conv2D layer's kernel (SN-GAN)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class SpectralNorm(keras.layers.Wrapper):
    """Applies a Dense or Conv2D layer with its kernel divided by its largest
    singular value.

    Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative
    Adversarial Networks", ICLR 2018, https://arxiv.org/abs/1802.05957,
    Algorithm 1: the kernel reshaped to a matrix ``W`` (``(fan_in, units)``)
    is used as ``W / sigma(W)``, ``sigma`` estimated by power iteration with a
    persistent vector ``u`` (one iteration per training call, as in the paper;
    `power_iterations` in all). The gradient flows through ``sigma`` with
    ``u`` and ``v`` held fixed (the paper's Eq. 12); the trainable kernel itself
    is never overwritten. Outside training ``u`` is not updated.

    Keras' own ``keras.layers.SpectralNormalization`` instead assigns
    ``W / sigma`` to the kernel on each training call, a projection whose
    gradient ignores ``sigma``: not the paper's reparametrisation.

    Args:
        layer: a ``keras.layers.Dense`` or ``keras.layers.Conv2D``.
        power_iterations: power-iteration steps per training call.
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            raise ValueError(f"SpectralNorm: expected a Dense or Conv2D layer, got "
                             f"{type(layer).__name__}")
        if int(power_iterations) < 1:
            raise ValueError(f"SpectralNorm: expected power_iterations >= 1, got "
                             f"{power_iterations}")
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        units = self.layer.kernel.shape[-1]
        self.vector_u = self.add_weight(
            shape=(1, units), name="vector_u", trainable=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0))
        self.built = True

    def matrix(self):
        return ops.reshape(self.layer.kernel, (-1, self.layer.kernel.shape[-1]))

    def sigma(self, training=False):
        """The power-iteration estimate of the kernel matrix's largest singular
        value (updating ``u`` when `training`)."""
        w = self.matrix()
        u = self.vector_u
        for _ in range(self.power_iterations):
            v = _unit(ops.matmul(u, ops.transpose(w)))
            u = _unit(ops.matmul(v, w))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        if training:
            self.vector_u.assign(u)
        return ops.sum(ops.matmul(v, w) * u)

    def call(self, x, training=False):
        layer = self.layer
        kernel = layer.kernel / self.sigma(training)
        if isinstance(layer, keras.layers.Conv2D):
            y = layer.convolution_op(x, kernel)
        else:
            y = ops.matmul(x, kernel)
        if layer.use_bias:
            y = y + layer.bias
        return layer.activation(y) if layer.activation is not None else y

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


def _unit(x, eps=1e-12):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), eps)


def maybe_spectral(layer, enabled):
    """`layer` wrapped in :class:`SpectralNorm` if `enabled`."""
    return SpectralNorm(layer, name=f"{layer.name}_sn") if enabled else layer
