"""Logits in the model's order, as a family's ``params`` lays them out."""

import tensorflow as tf


def unordered_params(model, logits):
    """Logits (B, D, L) of the dimensions of an
    :class:`~zoo.autoregressive.base.AutoregressiveModel` `model` in its order
    (raster, then channel) -> its ``params`` layout, ``(B,) + site_shape +
    (L * channels,)`` in L blocks of ``channels`` (the inverse of its
    ``ordered_params``)."""
    batch = tf.shape(logits)[0]
    channels, levels = model.channels, model.num_levels
    sites = model.event_size // channels
    blocks = tf.reshape(logits, tf.stack([batch, sites, channels, levels]))
    return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2]),
                      tf.concat([[batch], model.site_shape, [levels * channels]], 0))
