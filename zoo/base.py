"""The model contract every model of the zoo follows (see DESIGN.md).

A model is a ``keras.Model`` subclass that

* names its loss terms in ``loss_names``; ``compute_losses(x, training)`` returns a
  dict with one scalar per name (``"loss"`` is the one optimised), and the shared
  ``train_step``/``test_step`` keep one ``keras.metrics.Mean`` per term, so
  ``model.fit``/``model.evaluate`` on a ``tf.data`` pipeline just work, under a
  ``tf.distribute`` strategy and with ``jit_compile=True``;
* stores every constructor argument as an attribute of the same name, which is
  all ``get_config`` returns, so ``.keras`` save -> load round-trips;
* builds all its weights in ``__init__`` (by ending it with ``self.build_model()``);
* has ``sample(n, seed)``, and ``log_prob(x)`` / ``elbo(x)`` / ``encode`` / ``decode``
  where the family has them; ``serving_signatures()`` lists those for export;
* validates inputs at that public boundary with errors naming what was expected.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf


class GenerativeModel(keras.Model):
    """Base class of every model of the zoo.

    Args:
        data_shape: the shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``.
        num_levels: for images, the number of intensity levels of the raw data
            (256 for 8-bit pixels, 17 for scikit-learn's digits); raw inputs lie in
            ``[0, num_levels)``. ``None`` for continuous data such as 2-D densities.
    """

    loss_names = ("loss",)

    def __init__(self, data_shape, num_levels=None, **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(d) for d in data_shape)
        self.num_levels = None if num_levels is None else int(num_levels)
        if any(d <= 0 for d in self.data_shape):
            raise ValueError(f"data_shape must be positive, got {self.data_shape}")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}

    # ------------------------------------------------------------------ config
    def get_config(self):
        """The constructor's arguments (read back from attributes of the same name)."""
        config = {"name": self.name}
        for cls in type(self).__mro__:
            if cls is GenerativeModel:
                params = ["data_shape", "num_levels"]
            elif issubclass(cls, GenerativeModel):
                params = [
                    p.name
                    for p in inspect.signature(cls.__init__).parameters.values()
                    if p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self"
                ]
            else:
                continue
            for p in params:
                if p not in config and p != "name":
                    value = getattr(self, p)
                    config[p] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def build_model(self):
        """Creates every weight by running ``call`` once on a zero batch."""
        with tf.init_scope():
            self(tf.zeros((1,) + self.data_shape))

    @property
    def value_range(self):
        """The interval inputs must lie in: [0, num_levels] for images."""
        if self.num_levels is None:
            return (-np.inf, np.inf)
        return (0.0, float(self.num_levels))

    @property
    def event_size(self):
        return int(np.prod(self.data_shape))

    # -------------------------------------------------------------- validation
    def validate_inputs(self, x, where="input"):
        """Checks shape, dtype, finiteness and range of a batch; returns float32.

        Shape and dtype are checked on the static shape (also inside graphs);
        finiteness and range when running eagerly. Errors say what was expected.
        """
        if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float)):
            raise TypeError(
                f"{self.name}.{where}: expected one tensor of shape "
                f"(batch,) + {self.data_shape}, got a {type(x).__name__} of "
                f"{len(x)} elements (labels? use a pipeline of images only)"
            )
        if not tf.is_tensor(x):
            x = np.asarray(x)
        dtype = tf.as_dtype(x.dtype)
        if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
            raise TypeError(
                f"{self.name}.{where}: expected a float (or integer) tensor, "
                f"got dtype {dtype.name}"
            )
        shape = tuple(x.shape)
        if len(shape) != len(self.data_shape) + 1 or any(
            s is not None and s != d for s, d in zip(shape[1:], self.data_shape)
        ):
            raise ValueError(
                f"{self.name}.{where}: expected shape (batch,) + {self.data_shape}, "
                f"got {shape}"
            )
        x = tf.cast(x, tf.float32)
        if tf.executing_eagerly():
            values = x.numpy()
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"{self.name}.{where}: expected finite values, got "
                    f"{int(np.sum(~np.isfinite(values)))} NaN/Inf entries"
                )
            low, high = self.value_range
            if values.size and (values.min() < low or values.max() > high):
                raise ValueError(
                    f"{self.name}.{where}: expected raw pixel values in "
                    f"[{low:g}, {high:g}], got [{values.min()}, {values.max()}]"
                )
        return x

    def validate_count(self, n):
        if not tf.is_tensor(n):
            if isinstance(n, bool) or int(n) != n or n < 1:
                raise ValueError(f"{self.name}.sample: expected n >= 1, got {n!r}")
            n = int(n)
        return n

    @staticmethod
    def stateless_seed(seed):
        """A stateless seed (shape [2] int32) from an int/tensor seed, random if None."""
        if seed is None:
            return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
        seed = tf.cast(seed, tf.int32)
        if seed.shape.rank == 0:
            seed = tf.stack([seed, tf.constant(0x5EED, tf.int32)])
        return seed

    # ----------------------------------------------------------- the contract
    @staticmethod
    def default_optimizer(learning_rate=1e-3):
        """The optimizer ``zoo train`` compiles with (models override it)."""
        return keras.optimizers.Adam(learning_rate=learning_rate)

    def compute_losses(self, x, training=False):
        """A dict with one scalar tensor per name in ``loss_names``."""
        raise NotImplementedError

    def sample(self, n, seed=None):
        raise NotImplementedError

    def serving_signatures(self):
        """Name -> (method, input TensorSpecs) for the SavedModel export.

        The first entry is also exported as ``serving_default``.
        """
        raise NotImplementedError

    def data_spec(self, name="x"):
        return tf.TensorSpec((None,) + self.data_shape, tf.float32, name=name)

    # ----------------------------------------------------- train / test steps
    @property
    def metrics(self):
        return list(self.trackers.values())

    def unpack(self, data):
        """The images of a batch: accepts ``x``, ``(x,)`` or ``(x, label)``."""
        if isinstance(data, (list, tuple)):
            data = data[0]
        if isinstance(data, dict):
            data = data["x"] if "x" in data else data["image"]
        return self.validate_inputs(data, "train_step")

    def update_trackers(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @staticmethod
    def replica_scaled(loss):
        """Scales a per-replica mean loss so that summed replica gradients average."""
        return loss / tf.cast(
            tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype
        )

    def train_step(self, data):
        x = self.unpack(data)
        with tf.GradientTape() as tape:
            terms = self.compute_losses(x, training=True)
            loss = self.replica_scaled(terms["loss"])
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self.update_trackers(terms)

    def test_step(self, data):
        x = self.unpack(data)
        return self.update_trackers(self.compute_losses(x, training=False))
