"""Noise schedules and the Gaussian forward process of diffusion models, as plain functions.

Timesteps are 0-based as in Nichol & Dhariwal's code: ``t`` in ``[0, T)``, where
``x_t`` is the data after ``t + 1`` noising steps, ``q(x_t | x_0) =
N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with ``abar_t = prod_{s <= t} (1 - beta_s)``.
The tables are NumPy float64 (:func:`betas`, :func:`tables`); the functions on
tensors take the table they need, so any model (a diffusion model, a
Diffusion-GAN's instance noise, a score model) can share them.
"""

import math

import numpy as np
import tensorflow as tf

from zoo import validation

SCHEDULES = ("linear", "cosine")


def betas(schedule, num_timesteps):
    """The ``T`` betas of a named schedule (float64).

    * ``"linear"``: Ho et al. (2020): from 1e-4 to 0.02 over T = 1000 steps,
      scaled by ``1000 / T`` for other T (as Nichol & Dhariwal 2021 do).
    * ``"cosine"``: Nichol & Dhariwal (2021), eq. 17: ``abar(t) = f(t) / f(0)``,
      ``f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2``, ``s = 0.008``, each beta
      clipped at 0.999.

    Raises:
        ValueError: an unknown schedule, or ``num_timesteps < 1``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; expected one of "
                         f"{list(SCHEDULES)}")
    T = validation.check_int(num_timesteps, "num_timesteps", "noise schedule")
    if schedule == "linear":
        scale = 1000.0 / T
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T, dtype=np.float64)
    s = 0.008
    f = np.cos((np.arange(T + 1, dtype=np.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], 0.999)


def tables(beta):
    """The float64 tables of a schedule's betas: ``alphas_cumprod`` (abar_t),
    ``alphas_cumprod_prev`` (abar_{t-1}, 1 at t = 0), ``posterior_variance``
    (beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, 0 at t = 0),
    ``posterior_log_variance_clipped`` (its log, with beta~_1 at t = 0), and the
    posterior mean's coefficients ``posterior_mean_coef1`` (of x_0) and
    ``posterior_mean_coef2`` (of x_t)."""
    beta = np.asarray(beta, np.float64)
    abar = np.cumprod(1.0 - beta)
    abar_prev = np.append(1.0, abar[:-1])
    variance = beta * (1.0 - abar_prev) / (1.0 - abar)
    clipped = np.append(variance[1], variance[1:]) if len(beta) > 1 else beta.copy()
    return {
        "betas": beta,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "posterior_variance": variance,
        "posterior_log_variance_clipped": np.log(clipped),
        "posterior_mean_coef1": beta * np.sqrt(abar_prev) / (1.0 - abar),
        "posterior_mean_coef2": (1.0 - abar_prev) * np.sqrt(1.0 - beta) / (1.0 - abar),
    }


def respaced_timesteps(num_timesteps, num_steps):
    """The ``num_steps`` timesteps (int32, increasing) a respaced sampler visits,
    evenly spaced over ``[0, T)`` and rounded (Nichol & Dhariwal 2021, Sec. 4);
    the last is always ``T - 1`` (one step: ``[T - 1]``). `num_steps` may be a
    tensor (a ``sample`` signature's input); it must be in ``1..T``."""
    k = tf.cast(num_steps, tf.float64)
    last = float(num_timesteps - 1)
    i = tf.range(tf.cast(num_steps, tf.int32), dtype=tf.float64)
    stride = last / tf.maximum(k - 1.0, 1.0)
    return tf.cast(tf.round(last - (k - 1.0 - i) * stride), tf.int32)


def repaint_schedule(num_steps, resample, jump):
    """RePaint's schedule of time jumps (Lugmayr et al. 2022, Algorithm 1 and
    Sec. 4.2; the official code's ``get_schedule_jump`` with one sample per step):
    int32 indices into the `num_steps` respaced timesteps, from ``num_steps - 1``
    down to -1 (the data) in steps of one. Going down is a reverse step; at every
    ``jump``-th index ``p`` below ``num_steps - jump`` (0, jump, 2 jump, ...)
    the schedule goes up ``jump`` indices and down again, ``resample - 1``
    times, so each stretch is denoised `resample` times. Of length ``num_steps +
    1 + 2 jump (resample - 1) M``, ``M = (num_steps - 1) // jump`` the indices
    that jump; ``resample = 1`` is ``num_steps - 1, ..., 0, -1``. Each argument
    may be a tensor (``complete``'s signature inputs): the positions are
    computed in closed form, no Python loop."""
    n, r, j = (tf.cast(v, tf.int32) for v in (num_steps, resample, jump))
    jumps = (n - 1) // j  # M: the indices 0, j, ..., (M - 1) j jump
    cycles = 2 * j * (r - 1)  # the ups and downs at one of them
    head = n - (jumps - 1) * j  # n - 1 down to the highest, (M - 1) j
    pos = tf.range(n + 1 + jumps * cycles)
    q = pos - head
    section = tf.math.floordiv(q, cycles + j)  # 0: at (M - 1) j, then (M - 2) j, ...
    offset = tf.math.floormod(q, cycles + j)
    p = (jumps - 1 - section) * j
    o = tf.math.floormod(offset, 2 * j)  # the place in a cycle of up and down
    cycle = tf.where(o < j, p + 1 + o, p + 2 * j - 1 - o)
    around = tf.where(offset < cycles, cycle, p - 1 - (offset - cycles))
    return tf.where((jumps == 0) | (pos < head), n - 1 - pos, around)


def respaced_betas(alphas_cumprod, timesteps):
    """The betas of the process that visits only `timesteps` (Nichol & Dhariwal
    2021, App. B): ``1 - abar_{t_i} / abar_{t_{i-1}}``, with ``abar = 1`` before
    the first, so that its ``abar`` are those of the kept steps."""
    abar = tf.gather(tf.cast(alphas_cumprod, tf.float64), timesteps)
    prev = tf.concat([[1.0], abar[:-1]], 0)
    return 1.0 - abar / prev


def check_timesteps(t, num_timesteps, where):
    """`t` (integers) checked in ``[0, T)``: eagerly, or by a graph assertion."""
    message = f"{where}: expected timesteps: integers in [0, {num_timesteps})"
    t = tf.convert_to_tensor(t)
    if not t.dtype.is_integer:
        raise ValueError(f"{message}, got dtype {t.dtype.name}")
    return validation.check(
        tf.cast(t, tf.int32),
        lambda v: v.size == 0 or (v.min() >= 0 and v.max() < num_timesteps),
        lambda v: tf.reduce_all((v >= 0) & (v < num_timesteps)), message,
        got=lambda v: f"values in [{v.min()}, {v.max()}]")


def _at(table, t, x):
    """``table[t]`` (one per example), shaped to broadcast against `x`."""
    values = tf.gather(tf.cast(table, x.dtype), t)
    return tf.reshape(values, tf.concat([tf.shape(t), tf.ones([len(x.shape) - 1], tf.int32)], 0))


def q_mean_variance(x0, t, alphas_cumprod):
    """Mean, variance and log-variance of ``q(x_t | x_0)``."""
    abar = _at(alphas_cumprod, t, x0)
    variance = (1.0 - abar) * tf.ones_like(x0)
    return tf.sqrt(abar) * x0, variance, tf.math.log(variance)


def q_sample(x0, t, noise, alphas_cumprod):
    """A draw of ``x_t ~ q(x_t | x_0)``: ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``."""
    abar = _at(alphas_cumprod, t, x0)
    return tf.sqrt(abar) * x0 + tf.sqrt(1.0 - abar) * noise


def q_posterior(x0, xt, t, table):
    """Mean, variance and clipped log-variance of ``q(x_{t-1} | x_t, x_0)``
    (Ho et al. 2020, eq. 6-7), from the :func:`tables` of a schedule."""
    mean = (_at(table["posterior_mean_coef1"], t, xt) * x0
            + _at(table["posterior_mean_coef2"], t, xt) * xt)
    variance = _at(table["posterior_variance"], t, xt) * tf.ones_like(xt)
    log_variance = _at(table["posterior_log_variance_clipped"], t, xt) * tf.ones_like(xt)
    return mean, variance, log_variance


def predict_x0(xt, t, eps, alphas_cumprod):
    """``x_0`` from ``x_t`` and the noise ``eps``:
    ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
    abar = _at(alphas_cumprod, t, xt)
    return (xt - tf.sqrt(1.0 - abar) * eps) / tf.sqrt(abar)


def predict_eps(xt, t, x0, alphas_cumprod):
    """The noise ``eps`` that takes ``x_0`` to ``x_t``."""
    abar = _at(alphas_cumprod, t, xt)
    return (xt - tf.sqrt(abar) * x0) / tf.sqrt(1.0 - abar)


def ddim_sigma(abar, abar_prev, eta):
    """DDIM's noise scale (Song, Meng & Ermon 2021, eq. 16): ``eta * sqrt((1 -
    abar_prev) / (1 - abar) * (1 - abar / abar_prev))``; at ``eta = 1`` its square
    is DDPM's posterior variance beta~."""
    return eta * tf.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))


def normal_kl(mean1, logvar1, mean2, logvar2):
    """``KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))`` elementwise, nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + tf.exp(logvar1 - logvar2)
                  + tf.square(mean1 - mean2) * tf.exp(-logvar2))


def _standard_normal_cdf(x):
    return 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, mean, log_scale, bin_width):
    """Ho et al. (2020)'s decoder, elementwise: the log-mass of the bin ``[x -
    w/2, x + w/2]`` (`bin_width` w) under ``N(mean, exp(log_scale)^2)`` for `x` on
    levels in ``[-1, 1]``, the lowest and highest bins reaching to -inf and +inf.
    """
    centred = x - mean
    inv = tf.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv * (centred + bin_width / 2))
    cdf_min = _standard_normal_cdf(inv * (centred - bin_width / 2))
    log_cdf_plus = tf.math.log(tf.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = tf.math.log(tf.maximum(1.0 - cdf_min, 1e-12))
    log_delta = tf.math.log(tf.maximum(cdf_plus - cdf_min, 1e-12))
    return tf.where(x < -1.0 + bin_width / 2, log_cdf_plus,
                    tf.where(x > 1.0 - bin_width / 2, log_one_minus_cdf_min, log_delta))


def gaussian_log_likelihood(x, mean, log_variance):
    """``log N(x; mean, exp(log_variance))`` elementwise (continuous data's decoder)."""
    return -0.5 * (math.log(2 * math.pi) + log_variance
                   + tf.square(x - mean) * tf.exp(-log_variance))
