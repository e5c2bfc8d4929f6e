"""Langevin samplers and the grid normaliser of the energy-based models, as plain
functions of an energy (or a score) so that they can be tested on known ones.

Every sampler runs its steps in one ``tf.while_loop`` (traced once by a
``tf.function`` when called eagerly), and draws its noise statelessly from a
seed, so that the same seed gives the same chains.

One step, with step size ``eps`` (Welling & Teh 2011, as Song & Ermon 2019 write
it)::

    x <- x + eps / 2 * score(x) + noise * sqrt(eps) * z,    z ~ N(0, I)

with ``score = -grad E``. With ``noise = 1`` the chain's stationary density is
``exp(-E) / Z`` (as ``eps -> 0``); ``noise < 1`` samples a colder density, as the
papers' "SGLD" often does (Du & Mordatch 2019 decouple step and noise).
"""

import math

import numpy as np
import tensorflow as tf

from zoo import validation


def check_step_size(step_size, where):
    """`step_size` > 0 (a Python number, or a tensor checked in the graph)."""
    return validation.check_number(step_size, "step_size", where, above=0.0)


def langevin(score_fn, x, step_sizes, seed, noise=1.0, bounds=None, keep=None):
    """Langevin dynamics from `x`: one step per entry of `step_sizes`, in one
    ``tf.while_loop``.

    Args:
        score_fn: ``score_fn(x, i)``, the score (``-grad E``) at `x` for step `i`
            (an int32 scalar: annealed samplers pick their noise level from it).
        x: the chains' starting points, float32 (batch, ...).
        step_sizes: float32 (num_steps,), each > 0 (checked).
        seed: a stateless seed, shape [2]; step `i` draws from ``fold_in(seed, i)``.
        noise: the scale of the injected noise relative to Langevin's ``sqrt(eps)``.
        bounds: None, or ``(low, high)``: each step is clipped into the box
            (projected Langevin: images to their value range, points to the
            normaliser's grid).
        keep: None, or ``(mask, values)``: where `mask` is 1 the chain is held at
            `values` (completion: Du & Mordatch's inpainting).
    Returns:
        The chains after the last step (no gradient flows through them).
    """
    step_sizes = tf.convert_to_tensor(step_sizes, tf.float32)
    step_sizes = validation.check(
        step_sizes, lambda a: bool(np.all(a > 0)), lambda t: tf.reduce_all(t > 0),
        "langevin: expected step sizes > 0", got=lambda a: f"{a.min():g}")
    seed = tf.convert_to_tensor(seed)
    noise = tf.cast(noise, tf.float32)
    x = tf.stop_gradient(tf.convert_to_tensor(x, tf.float32))

    def clamp(x):
        return project(x, bounds, keep)

    def body(i, x):
        eps = step_sizes[i]
        z = tf.random.stateless_normal(tf.shape(x), tf.random.experimental.stateless_fold_in(
            seed, tf.cast(i, seed.dtype)))
        x = x + 0.5 * eps * tf.stop_gradient(score_fn(x, i)) + noise * tf.sqrt(eps) * z
        return i + 1, clamp(x)

    def loop(x, step_sizes, seed, noise):
        # A known number of steps bounds the loop (XLA needs it where a gradient
        # tape records the loop: jit-compiled training steps).
        return tf.while_loop(lambda i, _: i < tf.shape(step_sizes)[0], body,
                             (tf.constant(0), clamp(x)),
                             maximum_iterations=step_sizes.shape[0])[1]

    if tf.executing_eagerly():
        return tf.function(loop)(x, step_sizes, seed, noise)
    return loop(x, step_sizes, seed, noise)


def project(x, bounds=None, keep=None):
    """`x` clipped into the box ``bounds = (low, high)`` and held at ``keep``'s
    values where its mask is 1 (either may be None), as every step of
    :func:`langevin` leaves its chains."""
    if bounds is not None:
        x = tf.clip_by_value(x, bounds[0], bounds[1])
    if keep is not None:
        x = tf.where(keep[0] > 0.5, keep[1], x)
    return x


def energy_score(energy_fn):
    """``score_fn(x, i) = -grad_x sum(energy_fn(x))`` for :func:`langevin`."""
    def score(x, i):
        with tf.GradientTape() as tape:
            tape.watch(x)
            energy = tf.reduce_sum(energy_fn(x))
        return -tape.gradient(energy, x)
    return score


def sgld(energy_fn, x, step_size, num_steps, seed, noise=1.0, bounds=None, keep=None):
    """Stochastic-gradient Langevin dynamics on an energy: `num_steps` steps of
    size `step_size` (> 0: a clear error otherwise) from `x` (:func:`langevin`),
    the score ``-grad E`` by automatic differentiation of `energy_fn` (per example
    energies of a batch)."""
    step_size = check_step_size(step_size, "sgld")
    num_steps = tf.convert_to_tensor(num_steps, tf.int32)
    return langevin(energy_score(energy_fn), x, tf.fill(tf.reshape(num_steps, [1]),
                                                      tf.cast(step_size, tf.float32)),
                    seed, noise, bounds, keep)


def check_ladder(sigmas, where):
    """A noise ladder: a 1-D list of positive numbers, strictly decreasing."""
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.ndim != 1 or sigmas.size < 1 or not np.all(np.isfinite(sigmas)) \
            or not np.all(sigmas > 0):
        raise ValueError(f"{where}: expected a ladder of noise levels > 0, got {sigmas.tolist()}")
    if np.any(np.diff(sigmas) >= 0):
        raise ValueError(f"{where}: expected noise levels that decrease strictly, from the "
                         f"largest to the smallest, got {sigmas.tolist()}")
    return sigmas


def geometric_ladder(sigma_max, sigma_min, num_levels):
    """Song & Ermon's noise levels: `num_levels` from `sigma_max` down to
    `sigma_min`, a geometric sequence."""
    return np.geomspace(sigma_max, sigma_min, num_levels)


def annealed_langevin(score_fn, x, sigmas, step_size, steps_per_level, seed, noise=1.0,
                      bounds=None, keep=None, denoise=False):
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): for each
    noise level ``sigma_i`` of the decreasing ladder `sigmas`, `steps_per_level`
    steps of size ``step_size * sigma_i**2 / sigma_L**2`` on the score
    ``score_fn(x, sigma_i)``; all steps in one ``tf.while_loop``. With `denoise`
    (a Python bool, or a scalar tensor: nonzero is on, chosen in the graph by a
    ``tf.cond``) the chains then take :func:`denoise_step` at the last level
    ``sigma_L``, projected as every step is (`bounds`, `keep`); without it they
    are the loop's output as they are."""
    check_ladder(sigmas, "annealed_langevin")
    step_size = check_step_size(step_size, "annealed_langevin")
    sigmas = tf.constant(sigmas, tf.float32)
    steps_per_level = tf.convert_to_tensor(steps_per_level, tf.int32)
    levels = tf.repeat(tf.range(tf.shape(sigmas)[0]), steps_per_level)
    step_sizes = tf.cast(step_size, tf.float32) * tf.square(
        tf.gather(sigmas, levels) / sigmas[-1])
    chains = langevin(lambda x, i: score_fn(x, tf.gather(sigmas, levels[i])), x, step_sizes,
                      seed, noise, bounds, keep)

    def denoised():
        return project(denoise_step(score_fn, chains, sigmas[-1]), bounds, keep)

    if isinstance(denoise, (bool, int, np.integer)):
        return denoised() if denoise else chains
    return tf.cond(tf.not_equal(denoise, 0), denoised, lambda: chains)


def denoise_step(score_fn, x, sigma):
    """One step ``x + sigma^2 * score_fn(x, sigma)``: by Tweedie's formula (Efron
    2011) the posterior mean ``E[x0 | x]`` of data ``x0`` seen through Gaussian
    noise, ``x = x0 + sigma z``, given the score of the noisy data at `sigma`.
    Annealed Langevin's chains end with noise of about the last level left in
    them; this step removes it (Song & Ermon 2020, "Improved Techniques for
    Training Score-Based Generative Models", https://arxiv.org/abs/2006.09011;
    Jolicoeur-Martineau et al. 2021, https://arxiv.org/abs/2009.05475)."""
    sigma = tf.cast(sigma, tf.float32)
    return x + tf.square(sigma) * tf.stop_gradient(score_fn(x, sigma))


def grid(low, high, num_points):
    """The cell centres of a `num_points` x `num_points` grid on the square
    ``[low, high]^2`` (float32, (num_points**2, 2)), and the log area of a cell."""
    width = (high - low) / num_points
    centres = low + width * (np.arange(num_points) + 0.5)
    a, b = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], 1).astype(np.float32), 2.0 * math.log(width)


def grid_log_normalizer(energy_fn, low, high, num_points, chunk=16384):
    """``log Z = log of the integral of exp(-E)`` over ``[low, high]^2`` by the
    midpoint rule on a `num_points` x `num_points` grid (a logsumexp, so no
    overflow), for an energy `energy_fn` of 2-D points. The density
    ``exp(-E) / Z`` restricted to the square then integrates to 1 under the same
    rule: exact up to the rule's quadrature error, which the difference to a
    coarser grid's value estimates (:func:`quadrature_error`)."""
    points, log_cell = grid(low, high, num_points)
    energies = tf.concat([tf.reshape(energy_fn(tf.constant(points[i:i + chunk])), [-1])
                          for i in range(0, len(points), chunk)], 0)
    return tf.reduce_logsumexp(-tf.cast(energies, tf.float32)) + log_cell


def quadrature_error(energy_fn, low, high, num_points):
    """``|log Z(num_points) - log Z(num_points / 2)|``: how much the grid
    normaliser moves at half the resolution, an estimate (for the midpoint rule
    on a smooth density, an over-estimate by about 4x) of its error in nats."""
    fine = grid_log_normalizer(energy_fn, low, high, num_points)
    coarse = grid_log_normalizer(energy_fn, low, high, num_points // 2)
    return float(abs(fine - coarse))
