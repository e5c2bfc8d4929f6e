"""Class conditioning, the same for every family: labels checked, drawn, one-hot,
as signature inputs and out of training batches."""

import tensorflow as tf

from zoo import validation


class ClassConditioning:
    """A mixin of :class:`~zoo.base.GenerativeModel`: what a model whose class
    sets ``conditional`` does with the classes of ``num_classes > 0`` (and an
    unconditional one with labels it is given: refuse them).

    A conditional model trains on ``(x, label)`` batches (:meth:`unpack_labels`),
    gets the batch's classes in ``compute_losses(x, training, labels)``
    (:meth:`with_labels`), draws ``sample(label=...)``'s classes with
    :meth:`sample_labels`, and takes a ``label`` input (:meth:`label_spec`) in
    its data signatures.
    """

    def check_labels(self, labels, x, where):
        """`labels` as int32 (batch,) in ``[0, num_classes)``, one per example of
        the batch `x`, for a conditional model (checked eagerly, or by a graph
        assertion: :func:`zoo.validation.check_labels`), None for an unconditional
        one; else a clear error."""
        if not self.num_classes:
            if labels is not None:
                raise ValueError(f"{self.name}.{where}: this model is unconditional "
                                 f"(num_classes=0) and takes no labels, got some")
            return None
        if labels is None:
            raise ValueError(f"{self.name}.{where}: a class-conditional model needs labels: "
                             f"integers of shape (batch,) in [0, {self.num_classes}), got none")
        batch = x.shape[0] if tf.executing_eagerly() else tf.shape(x)[0]
        return validation.check_labels(labels, batch, self.num_classes, f"{self.name}.{where}")

    def random_labels(self, batch):
        """Classes uniformly at random from the training stream (None if
        unconditional)."""
        if not self.num_classes:
            return None
        return tf.random.stateless_uniform(tf.stack([batch]), seed=self.rng.next_seed(),
                                           minval=0, maxval=self.num_classes, dtype=tf.int32)

    def sample_labels(self, n, seed, label):
        """The `n` classes of ``sample(label=...)``: `label` for every sample, or for
        -1 classes drawn uniformly from the stateless `seed`."""
        shape = tf.stack([n])
        drawn = tf.random.stateless_uniform(shape, seed=seed, minval=0,
                                            maxval=self.num_classes, dtype=tf.int32)
        label = tf.cast(label, tf.int32)
        return tf.where(tf.broadcast_to(label >= 0, shape), tf.broadcast_to(label, shape),
                        drawn)

    def one_hot(self, labels, dtype=tf.float32):
        """The classes as one-hot vectors (batch, num_classes)."""
        return tf.one_hot(labels, self.num_classes, dtype=dtype)

    def label_spec(self):
        """The ``label`` input of a conditional model's data signatures."""
        return tf.TensorSpec([None], tf.int32, name="label")

    def with_labels(self, labels):
        """``{"labels": labels}`` for a conditional model, else ``{}``: the keyword
        arguments that pass a batch's classes on to ``compute_losses``."""
        return {"labels": labels} if self.num_classes else {}

    def unpack_labels(self, data, required=True):
        """``(x, labels)`` of a batch, the labels checked; None for an
        unconditional model, and for a conditional one whose batch has none when
        not `required` (``compute_losses`` then draws them)."""
        labels = None
        if isinstance(data, (list, tuple)) and len(data) > 1:
            labels = data[1]
        elif isinstance(data, dict):
            labels = data.get("label")
        x = self.unpack(data)
        if not self.num_classes:
            return x, None
        if labels is None:
            if required:
                raise ValueError(f"{self.name}.train_step: a class-conditional model trains "
                                 f"on (x, label) batches, got no labels")
            return x, None
        return x, self.check_labels(labels, x, "train_step")
