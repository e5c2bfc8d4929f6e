"""Image resizing that compiles under XLA, forward and backward.

``tf.image.resize`` has no XLA kernel on CPU for the gradient of its nearest
method (``ResizeNearestNeighborGrad``) nor for its bicubic method
(``ResizeBicubic``), so a ``jit_compile`` training step through either failed.
These give ``tf.image.resize``'s values with ops XLA has: gathers for nearest,
two matrix products for a separable method.
"""

import functools

import numpy as np
import tensorflow as tf


def nearest(images, size):
    """``tf.image.resize(images, size, "nearest")`` (half-pixel centres, as TF 2's
    resize) by two gathers: output ``o`` takes input ``min(floor((o + 0.5) *
    in / out), in - 1)`` along each axis. `size` may be a tensor."""
    images = tf.convert_to_tensor(images)
    size = tf.cast(size, tf.int32)
    for axis in (1, 2):
        n_in, n_out = tf.shape(images)[axis], size[axis - 1]
        scale = tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32)
        index = tf.cast(tf.floor((tf.cast(tf.range(n_out), tf.float32) + 0.5) * scale), tf.int32)
        images = tf.gather(images, tf.minimum(index, n_in - 1), axis=axis)
    return images


@functools.lru_cache(maxsize=None)
def resize_matrix(n_in, n_out, method):
    """The (n_out, n_in) matrix of ``tf.image.resize``'s `method` along one axis:
    its resize of each unit vector (the resize is linear and separable),
    computed eagerly (also while a function is traced) and kept."""
    basis = np.eye(n_in, dtype=np.float32)[None, :, :, None]  # (1, n_in, n_in, 1)
    with tf.init_scope():
        return tf.image.resize(basis, (n_out, n_in), method=method)[0, :, :, 0].numpy()


def separable(images, size, method="bicubic"):
    """``tf.image.resize(images, size, method)`` for a separable, linear `method`
    (bicubic, bilinear, ...) as ``M_h x M_w^T`` per image and channel; the
    images' spatial shape and `size` must be static."""
    images = tf.convert_to_tensor(images)
    (h_in, w_in), (h_out, w_out) = images.shape[1:3], tuple(int(s) for s in size)
    if h_in is None or w_in is None:
        raise ValueError(f"resize.separable: expected images of a static height and width, "
                         f"got shape {images.shape}")
    rows = tf.constant(resize_matrix(h_in, h_out, method), images.dtype)
    columns = tf.constant(resize_matrix(w_in, w_out, method), images.dtype)
    return tf.einsum("oh,bhwc,pw->bopc", rows, images, columns)
