"""Interpolation in a generator's latent space (``zoo sample --interpolate``)."""

import numpy as np
import tensorflow as tf

from zoo import validation


class LatentInterpolation:
    """A mixin of :class:`~zoo.gan.base.AdversarialModel`: data along a path in
    latent space between two endpoints, each a seed (the latent ``sample(1,
    seed)`` draws) or a latent; linear or spherical (slerp). It uses the model's
    ``latent_dim``, ``stateless_seed`` and ``generate``.
    """

    def seed_latent(self, seed):
        """The latent z (latent_dim,) that ``sample(1, seed)`` decodes."""
        seed = self.stateless_seed(seed)
        return tf.random.stateless_normal(tf.stack([1, self.latent_dim]), seed=seed)[0]

    def interpolation_latents(self, a, b, steps=8, spherical=False):
        """`steps` latents from `a` to `b` (both included), each a seed (an int:
        the latent ``sample(1, seed)`` draws) or a latent of shape
        ``(latent_dim,)``: along the segment, or with `spherical` along the great
        circle (slerp, Shoemake 1985; White, "Sampling Generative Networks",
        2016, https://arxiv.org/abs/1609.04468), the norm interpolated linearly.
        """
        where = f"{self.name}.interpolate"
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise ValueError(f"{where}: expected steps >= 2 (an integer), got {steps!r}")
        ends = [self.endpoint_latent(e, where) for e in (a, b)]
        t = tf.linspace(0.0, 1.0, int(steps))[:, None]
        if not spherical:
            return (1.0 - t) * ends[0] + t * ends[1]
        norms = [tf.norm(e) for e in ends]
        units = [e / tf.maximum(n, 1e-12) for e, n in zip(ends, norms)]
        omega = tf.acos(tf.clip_by_value(tf.reduce_sum(units[0] * units[1]), -1.0, 1.0))
        sin = tf.sin(omega)
        if float(sin) < 1e-6:  # (anti)parallel: the segment's directions
            direction = (1.0 - t) * units[0] + t * units[1]
        else:
            direction = (tf.sin((1.0 - t) * omega) * units[0] + tf.sin(t * omega) * units[1]) / sin
        return direction * ((1.0 - t) * norms[0] + t * norms[1])

    def endpoint_latent(self, endpoint, where):
        """An interpolation endpoint as a latent: a seed's, or a latent checked."""
        if isinstance(endpoint, (int, np.integer)) and not isinstance(endpoint, bool):
            return self.seed_latent(validation.stateless_seed(int(endpoint), where))
        try:
            z = np.asarray(endpoint, dtype=np.float32)
        except (TypeError, ValueError):
            z = None
        if z is None or z.shape != (self.latent_dim,) or not np.all(np.isfinite(z)):
            got = repr(endpoint) if z is None else f"shape {z.shape}" if z.shape != (
                self.latent_dim,) else "NaN/Inf entries"
            raise ValueError(f"{where}: expected an endpoint that is a seed (an integer) or "
                             f"a finite latent of shape ({self.latent_dim},), got {got}")
        return tf.constant(z)

    def interpolate(self, a, b, steps=8, spherical=False, label=None):
        """Data along a path in latent space from `a` to `b` (seeds or latents,
        :meth:`interpolation_latents`), shape ``(steps,) + data_shape``; a
        class-conditional model draws every step of class `label`."""
        z = self.interpolation_latents(a, b, steps, spherical)
        labels = None
        if label is not None or self.num_classes:
            if self.num_classes and label is None:
                raise ValueError(f"{self.name}.interpolate: a class-conditional model needs "
                                 f"label, an integer in [0, {self.num_classes})")
            labels = np.full([int(steps)], label, np.int32) if np.ndim(label) == 0 else label
        return self.generate(z, labels)
