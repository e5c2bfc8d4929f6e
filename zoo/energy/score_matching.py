"""Score-matching losses for a noise-conditional score ``s(x, sigma)``, as plain
functions (NCSN trains on them; the tests check their optima)."""

import tensorflow as tf


def denoising_loss(score_fn, x, sigmas, noise):
    """Denoising score matching (Vincent 2011) over noise levels, weighted by
    ``sigma^2`` (Song & Ermon 2019, Eq. 5-6): per example
    ``sigma^2 / 2 * |s(x + sigma z, sigma) + z / sigma|^2``, whose minimiser is
    the score of the data convolved with N(0, sigma^2 I).

    Args:
        score_fn: ``score_fn(x, sigma)`` for a batch and per-example levels.
        x: the data batch (batch, ...).
        sigmas: the batch's noise levels, (batch,).
        noise: ``z``, standard normal, `x`'s shape.
    Returns:
        The per-example losses, (batch,).
    """
    shape = [-1] + [1] * (len(x.shape) - 1)
    sigma = tf.reshape(sigmas, shape)
    score = score_fn(x + sigma * noise, sigmas)
    residual = tf.reshape(sigma * score + noise, [tf.shape(x)[0], -1])
    return 0.5 * tf.reduce_sum(tf.square(residual), axis=1)


def sliced_loss(score_fn, x, sigmas, noise, projections):
    """Sliced score matching (Song, Garg, Shi & Ermon 2019,
    https://arxiv.org/abs/1905.07088, Eq. 8) on the noisy data
    ``x + sigma z``, weighted by ``sigma^2`` as :func:`denoising_loss`: per
    example ``sigma^2 (v . grad_x (v . s) + (v . s)^2 / 2)`` for a random
    direction ``v`` (`projections`, `x`'s shape). Its expectation is Fisher's
    divergence to the noisy data's score, up to a constant; it needs no
    knowledge of the noise, at one more backward pass.
    """
    shape = [-1] + [1] * (len(x.shape) - 1)
    sigma = tf.reshape(sigmas, shape)
    noisy = x + sigma * noise
    flat = lambda t: tf.reshape(t, [tf.shape(x)[0], -1])  # noqa: E731
    with tf.GradientTape() as tape:
        tape.watch(noisy)
        score = score_fn(noisy, sigmas)
        projected = tf.reduce_sum(flat(score) * flat(projections), axis=1)
    jacobian_term = tf.reduce_sum(flat(tape.gradient(projected, noisy)) * flat(projections),
                                  axis=1)
    level = tf.reshape(sigmas, [-1]) ** 2
    return level * (jacobian_term + 0.5 * tf.square(projected))
