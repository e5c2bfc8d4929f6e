"""An exponential moving average of a network's weights, used in place of them."""

import inspect

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="zoo")
class WeightAverage(keras.layers.Layer):
    """Exponential moving average of another layer's float weights.

    Polyak averaging of a generator's weights, which gives better samples than
    its last iterate (Yazici et al., "The Unusual Effectiveness of Averaging in
    GAN Training", ICLR 2019, https://arxiv.org/abs/1806.04498; Karras et al.
    2018). After the ``t``-th update of the source, each average moves as
    ``a <- d a + (1 - d) w`` with ``d = min(decay, (1 + t) / (10 + t))``, so early
    averages follow the fast-moving weights (TensorFlow's ExponentialMovingAverage
    with ``num_updates``). :meth:`call_averaged` runs the source layer with the
    averages in place of its weights (``stateless_call``), leaving it untouched.

    The averages are this layer's weights (saved with the model); they use MEAN
    aggregation, so replicas of a ``tf.distribute`` strategy stay equal.

    Args:
        decay: in ``(0, 1)``.
    """

    def __init__(self, decay, **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"WeightAverage: expected 0 < decay < 1, got {decay}")

    @staticmethod
    def averaged_variables(source):
        """The weights of `source` that are averaged: its float ones, in order."""
        return [v for v in source.trainable_variables + source.non_trainable_variables
                if tf.as_dtype(v.dtype).is_floating]

    def track(self, source):
        """Creates the averages of `source`'s float weights, equal to them now.

        They are this layer's only weights (``self.weights``, in the same order);
        `source` itself is not kept, so its weights stay its own.
        """
        for i, v in enumerate(self.averaged_variables(source)):
            average = self.add_weight(shape=v.shape, dtype=v.dtype, trainable=False,
                                      initializer="zeros", aggregation="mean",
                                      name=f"average_{i}")
            average.assign(v)
        self.built = True

    def update(self, source, num_updates):
        """One averaging step after `source`'s `num_updates`-th update."""
        t = tf.cast(num_updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        for average, v in zip(self.weights, self.averaged_variables(source)):
            average.assign(decay * average + (1.0 - decay) * v)

    def call_averaged(self, source, *args, **kwargs):
        """``source(*args, **kwargs)`` computed with the averaged weights."""
        values = {id(v): a for v, a in zip(self.averaged_variables(source), self.weights)}
        if "training" not in inspect.signature(source.call).parameters:
            kwargs.pop("training", None)  # as Keras' __call__ does
        trainable = [values.get(id(v), v) for v in source.trainable_variables]
        non_trainable = [values.get(id(v), v) for v in source.non_trainable_variables]
        outputs, _ = source.stateless_call(trainable, non_trainable, *args, **kwargs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}
