"""MADE: a masked autoencoder for distribution estimation, as a Keras 3 layer."""

import keras
import numpy as np
import tensorflow as tf

from zoo.precision import network


def input_degrees(event_size, input_order="left-to-right", seed=None):
    """Degrees 1..D of the inputs: input with degree d is the d-th in the order.

    Args:
        event_size: D.
        input_order: ``"left-to-right"``, ``"right-to-left"``, ``"random"`` (from
            `seed`), or a permutation of 1..D (explicit degrees).
        seed: integer seed of the ``"random"`` order.
    """
    if isinstance(input_order, str):
        if input_order == "left-to-right":
            return np.arange(1, event_size + 1)
        if input_order == "right-to-left":
            return np.arange(event_size, 0, -1)
        if input_order == "random":
            return np.random.default_rng(seed).permutation(event_size) + 1
        raise ValueError(
            "input_order must be 'left-to-right', 'right-to-left', 'random' or a "
            f"permutation of 1..{event_size}, got {input_order!r}"
        )
    degrees = np.asarray(input_order, dtype=np.int64).reshape(-1)
    if sorted(degrees.tolist()) != list(range(1, event_size + 1)):
        raise ValueError(
            f"input_order must be a permutation of 1..{event_size}, got {list(input_order)}"
        )
    return degrees


def hidden_degrees(event_size, units, previous, method="equal", seed=None):
    """Degrees of one hidden layer, in [min(previous), D - 1] (Germain et al., Sec. 4).

    ``"equal"`` spreads the degrees evenly over 1..D-1 (as TFP's MADE does);
    ``"random"`` draws them uniformly from `seed`.
    """
    low = min(int(np.min(previous)), event_size - 1)
    if method == "equal":
        spread = np.ceil(np.arange(1, units + 1) * (event_size - 1) / (units + 1))
        return np.maximum(low, spread.astype(np.int64))
    if method == "random":
        return np.random.default_rng(seed).integers(low, max(low, event_size - 1) + 1, units)
    raise ValueError(f"hidden_degrees must be 'equal' or 'random', got {method!r}")


@keras.saving.register_keras_serializable(package="zoo")
@network
class MADE(keras.layers.Layer):
    """Masked autoencoder for distribution estimation.

    Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for
    Distribution Estimation", ICML 2015, https://arxiv.org/abs/1502.03509.

    Dense layers whose Keras kernels are multiplied by constant binary masks built
    from degrees (Sec. 4): input ``j`` has degree ``m(j)``, its position in
    `input_order`; a hidden unit of degree ``k`` sees units of degree ``<= k``; the
    ``params`` outputs of input ``i`` see hidden units of degree ``< m(i)``. So
    output ``[..., i, p]`` depends only on the inputs before ``i`` in the order
    (the first input's outputs are constants, the biases).

    Input ``(..., D)``, output ``(..., D, params)``.

    Args:
        event_size: D, the number of inputs.
        hidden_units: width of each hidden layer.
        num_hidden: number of hidden layers (0: one masked linear layer).
        params: values per input dimension (2 for a shift and a log-scale).
        input_order: see :func:`input_degrees`.
        hidden_degrees: ``"equal"`` or ``"random"``, see :func:`hidden_degrees`.
        seed: integer seed of random orders / degrees, required with them (so
            that a config rebuilds the same masks).
        activation: activation of the hidden layers.
        zero_init: start the output layer at zero (an affine step starts as identity).
        context_size: width of an optional context input (0: none) that every
            unit of the first hidden layer sees through an unmasked kernel, so
            the outputs depend on it and, autoregressively, on the inputs
            (the context h of IAF, Kingma et al. 2016, Sec. 4). Needs
            ``num_hidden >= 1``.
    """

    def __init__(
        self,
        event_size,
        hidden_units,
        num_hidden=1,
        params=2,
        input_order="left-to-right",
        hidden_degrees="equal",
        seed=None,
        activation="relu",
        zero_init=True,
        context_size=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.event_size = int(event_size)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.params = int(params)
        self.input_order = input_order if isinstance(input_order, str) else [
            int(d) for d in np.asarray(input_order).reshape(-1)]
        self.hidden_degrees = hidden_degrees
        self.seed = seed
        self.activation = activation
        self.zero_init = zero_init
        self.context_size = int(context_size)
        if self.context_size < 0 or (self.context_size and self.num_hidden < 1):
            raise ValueError(f"MADE: expected context_size >= 0, and num_hidden >= 1 with a "
                             f"context, got {self.context_size} and {self.num_hidden}")
        if self.event_size < 1 or self.params < 1 or self.num_hidden < 0:
            raise ValueError(
                f"MADE: expected event_size >= 1, params >= 1, num_hidden >= 0, got "
                f"{self.event_size}, {self.params}, {self.num_hidden}"
            )
        if seed is None and "random" in (input_order, hidden_degrees):
            raise ValueError(
                "MADE: a 'random' input_order or hidden_degrees needs an integer seed, so "
                "that the masks can be rebuilt from the config (on reload)"
            )
        self.degrees = self.make_degrees()
        self.masks = self.make_masks()
        self.activation_fn = keras.activations.get(activation)
        self.build((None, self.event_size))

    def make_degrees(self):
        """[input degrees, hidden layer 1 degrees, ...] as int arrays."""
        degrees = [input_degrees(self.event_size, self.input_order, self.seed)]
        for i in range(self.num_hidden):
            seed = None if self.seed is None else self.seed + 1 + i
            degrees.append(hidden_degrees(self.event_size, self.hidden_units, degrees[-1],
                                          self.hidden_degrees, seed))
        return degrees

    def make_masks(self):
        """Float masks shaped like the kernels: (in, out) per layer."""
        masks = [
            (d_in[:, None] <= d_out[None, :]).astype("float32")
            for d_in, d_out in zip(self.degrees[:-1], self.degrees[1:])
        ]
        # Output unit i * params + p belongs to input i: it sees degrees < m(i).
        out_degrees = np.repeat(self.degrees[0], self.params)
        masks.append((self.degrees[-1][:, None] < out_degrees[None, :]).astype("float32"))
        return masks

    def build(self, input_shape=None):
        if self.built:
            return
        self.kernels, self.biases = [], []
        for i, mask in enumerate(self.masks):
            last = i == len(self.masks) - 1
            init = "zeros" if last and self.zero_init else "glorot_uniform"
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=mask.shape,
                                                initializer=init))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(mask.shape[1],),
                                               initializer="zeros"))
        if self.context_size:
            self.context_kernel = self.add_weight(
                name="context_kernel", shape=(self.context_size, self.hidden_units),
                initializer="glorot_uniform")
        self.built = True

    def call(self, x, context=None):
        """Input ``(..., D)`` (and, with ``context_size``, a context ``(..., C)`` of the
        same batch shape) -> ``(..., D, params)``."""
        if self.context_size and context is None:
            raise ValueError(f"{self.name}: expected a context of size {self.context_size}")
        # A 2-D matmul per layer: on CPU, einsum and its gradient over "..." batch
        # dimensions cost several times more (bench/flows_speed.py).
        h = tf.reshape(x, [-1, self.event_size]) if x.shape.rank != 2 else x
        for i, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self.masks)):
            h = tf.matmul(h, kernel * tf.constant(mask, kernel.dtype))
            if i == 0 and self.context_size:
                # Added before the bias: as matmul + bias + context + relu, grappler's
                # remapper fused the four into one node without an op name, and every
                # optimisation of the graph failed ("Node ... has an empty op name").
                h += tf.matmul(tf.reshape(context, [-1, self.context_size]), self.context_kernel)
            h = tf.nn.bias_add(h, bias)
            if i < len(self.masks) - 1:
                h = self.activation_fn(h)
        shape = tf.concat([tf.shape(x)[:-1], [self.event_size, self.params]], 0)
        out = tf.reshape(h, shape)
        out.set_shape(x.shape[:-1].concatenate([self.event_size, self.params]))
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.event_size, self.params)

    def get_config(self):
        return {
            **super().get_config(),
            "event_size": self.event_size,
            "hidden_units": self.hidden_units,
            "num_hidden": self.num_hidden,
            "params": self.params,
            "input_order": self.input_order,
            "hidden_degrees": self.hidden_degrees,
            "seed": self.seed,
            "activation": self.activation,
            "zero_init": self.zero_init,
            "context_size": self.context_size,
        }
