"""The random numbers of a training step, as a layer whose state checkpoints hold."""

import logging

import keras
import tensorflow as tf

log = logging.getLogger("zoo")


@keras.saving.register_keras_serializable(package="zoo")
class RandomStream(keras.layers.Layer):
    """A stream of stateless seeds (and the noise drawn from them) for training steps.

    Wraps a ``keras.random.SeedGenerator``: each draw takes the generator's current
    state as the seed of a stateless random op and advances the state, inside the
    compiled step as well. Keras does not write a seed generator's state into a
    ``.keras`` file, so this layer saves and loads it as its one weight: a model
    restored from a checkpoint draws the same numbers it would have drawn had it
    never stopped, and a killed run that resumes continues bit for bit.

    A checkpoint written before the stream existed (before zoo 0.2) holds no state
    for it: such a model loads with the stream at its initial seed, and a warning
    says that a resumed run draws other numbers than the original would have.

    Draws outside training (sampling, evaluation with a seed) do not use the
    stream: they take explicit seeds and leave it where it is.

    The generator is made by :meth:`initialize`: a model makes it after building
    its weights, so that the stream's seed, drawn from Python's ``random`` when not
    given, leaves their initial values as they would be without it.

    Args:
        seed: the initial seed; None draws one from Python's ``random`` (seeded by
            ``keras.utils.set_random_seed``).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = None
        self.built = True  # nothing to build from inputs: the layer is never called

    def initialize(self):
        """Makes the seed generator (once)."""
        if self.generator is None:
            self.generator = keras.random.SeedGenerator(self.seed, name="state")

    def next_seed(self):
        """The next stateless seed, shape ``[2]``; advances the stream.

        Under a strategy with several replicas in sync, each replica advances its
        copy of the stream alike (they stay equal) but folds its replica id into
        the seed it returns, so replicas draw independent noise for their parts
        of the global batch instead of the same noise twice. With one replica
        the seed is the stream's own.
        """
        seed = self.generator.next()
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            context = tf.distribute.get_replica_context()
            if context is not None:  # None: cross-replica context, one draw
                seed = tf.random.experimental.stateless_fold_in(
                    seed, tf.cast(context.replica_id_in_sync_group, tf.int32))
        return seed

    def normal(self, shape, dtype="float32"):
        """Standard normal noise of `shape`."""
        return tf.random.stateless_normal(shape, seed=self.next_seed(), dtype=dtype)

    def uniform(self, shape, dtype="float32"):
        """Uniform noise on ``[0, 1)`` of `shape`."""
        return tf.random.stateless_uniform(shape, seed=self.next_seed(), dtype=dtype)

    def categorical(self, weights, n):
        """`n` indices (int32) drawn with probabilities proportional to the
        non-negative `weights` (a vector, not all 0) by :func:`inverse_cdf`, one
        uniform each. Unlike ``tf.random.stateless_categorical`` (no XLA kernel
        on CPU), it compiles under XLA; a weight of 0 is never drawn."""
        return inverse_cdf(weights, self.uniform(tf.reshape(n, [1])))

    @property
    def state(self):
        return self.generator.state

    def save_own_variables(self, store):
        store["state"] = self.generator.state.numpy()

    def load_own_variables(self, store):
        if "state" not in store:
            log.warning(
                "the checkpoint holds no random-stream state (written before zoo 0.2): "
                "training randomness restarts from the seed"
            )
            return
        self.generator.state.assign(store["state"])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def inverse_cdf(weights, u):
    """The index (int32) that the uniform `u` in [0, 1) draws from the
    non-negative `weights` (..., K), not all 0, by the inverse of their
    distribution function: the first ``i`` whose cumulative weight exceeds `u`
    times their total. `u` is shaped like the weights' leading axes, or is any
    vector against one vector of weights. A weight of 0 is never drawn: when
    rounding lets ``u * total`` reach the total, the last positive weight. The
    sampling of the autoregressive models and iDDPM's timesteps, under XLA too.
    """
    weights = tf.convert_to_tensor(weights)
    cdf = tf.math.cumsum(weights, axis=-1)
    threshold = tf.cast(u, weights.dtype) * cdf[..., -1]
    index = tf.reduce_sum(tf.cast(cdf <= threshold[..., None], tf.int32), axis=-1)
    last = tf.reduce_max(tf.where(weights > 0, tf.range(tf.shape(weights)[-1]), 0), axis=-1)
    return tf.minimum(index, last)
