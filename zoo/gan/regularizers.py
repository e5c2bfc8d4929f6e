"""Critic regularizers: penalties added to the critic's loss, chosen by name.

``AdversarialModel(regularizer=NAME, regularizer_weight=W)`` adds ``W * penalty``
to ``critic_loss`` and reports the penalty (before its weight) as a loss term
named after it. A constraint enforced by an augmented Lagrangian
(``lagrangian = True``) returns the constraint's value ``h`` instead, and the
model adds ``lambda h + W / 2 h^2`` with a multiplier ``lambda`` it keeps.
``"none"`` adds nothing.
"""

import tensorflow as tf


def gradient_norms(score_fn, x):
    """``||grad_x D(x)||_2`` per example of a batch `x` in model space.

    The floor keeps the norm's own gradient finite at a zero gradient (it changes
    the norm by at most 1e-10).
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = score_fn(x)
    grads = tape.gradient(scores, x)
    axes = list(range(1, len(x.shape)))
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(grads), axis=axes), 1e-20))


class GradientPenalty:
    """The two-sided gradient penalty of WGAN-GP.

    Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of
    Wasserstein GANs", NeurIPS 2017, https://arxiv.org/abs/1704.00028,
    Algorithm 1, lines 4-8: ``E[(||grad D(x_hat)||_2 - 1)^2]`` with
    ``x_hat = eps x + (1 - eps) G(z)``, ``eps ~ U[0, 1]`` per example.
    """

    name = "gradient_penalty"

    def __call__(self, score_fn, real, fake, rng, eps=None):
        """The penalty; `eps` (shape ``(batch,)``) is drawn from `rng` unless given."""
        return self.penalty(score_fn, real, fake, rng, eps)

    def penalty(self, score_fn, real, fake, rng, eps=None, one_sided=False):
        batch = tf.shape(real)[0]
        eps_shape = tf.concat([[batch], tf.ones([len(real.shape) - 1], tf.int32)], 0)
        if eps is None:
            eps = rng.uniform(eps_shape)
        else:
            eps = tf.reshape(tf.cast(eps, real.dtype), eps_shape)
        x_hat = eps * real + (1.0 - eps) * fake
        excess = gradient_norms(score_fn, x_hat) - 1.0
        if one_sided:
            excess = tf.nn.relu(excess)
        return tf.reduce_mean(tf.square(excess))


class LipschitzPenalty(GradientPenalty):
    """The one-sided Lipschitz penalty of WGAN-LP.

    Petzka, Fischer & Lukovnicov, "On the regularization of Wasserstein GANs",
    ICLR 2018, https://arxiv.org/abs/1709.08894, Eq. 8:
    ``E[max(0, ||grad D(x_hat)||_2 - 1)^2]`` at the same points ``x_hat`` as
    WGAN-GP's; it penalises only gradients steeper than 1, as the Lipschitz
    constraint itself does.
    """

    name = "lipschitz_penalty"

    def __call__(self, score_fn, real, fake, rng, eps=None):
        return self.penalty(score_fn, real, fake, rng, eps, one_sided=True)


class R1Penalty:
    """The R1 penalty on real data.

    Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually
    Converge?", ICML 2018, https://arxiv.org/abs/1801.04406, Eq. 9:
    ``E_x[||grad D(x)||^2]`` on the real batch (the paper's weight is gamma / 2).
    """

    name = "r1_penalty"

    def __call__(self, score_fn, real, fake, rng):
        del fake, rng
        return tf.reduce_mean(tf.square(gradient_norms(score_fn, real)))


class SobolevConstraint:
    """The Sobolev IPM's constraint, enforced by an augmented Lagrangian.

    Mroueh, Li, Sercu, Raj & Cheng, "Sobolev GAN", ICLR 2018,
    https://arxiv.org/abs/1711.04894, Eq. 8 and Algorithm 1: the critic's
    squared gradient norm has mean 1 under the dominant measure
    ``mu = (P + Q) / 2``. Returns the constraint ``h = Omega - 1``,
    ``Omega = (mean ||grad D(x)||^2 + mean ||grad D(G(z))||^2) / 2`` over the
    real and the generated batch. ``lagrangian``: the model adds
    ``lambda h + rho / 2 h^2`` to the critic's loss (``rho`` its
    ``regularizer_weight``) and after each critic update moves the multiplier,
    ``lambda <- lambda + rho h`` (Algorithm 1's ``lambda <- lambda - rho
    grad_lambda L``).
    """

    name = "sobolev_constraint"
    lagrangian = True

    def __call__(self, score_fn, real, fake, rng):
        del rng
        both = tf.concat([real, fake], axis=0)
        return tf.reduce_mean(tf.square(gradient_norms(score_fn, both))) - 1.0


class SobolevWassersteinConstraint:
    """The Sobolev duality's constraint of SWGAN, by an augmented Lagrangian.

    Xu, Zhou, Lu, Tang, Zhang & Yu, "Towards Generalized Implementation of
    Wasserstein Distance in GANs", AAAI 2021, https://arxiv.org/abs/2012.03420,
    Sec. 4 and the authors' reference code: for each pair of a real and a
    generated example, ``Omega_i`` is the mean squared gradient norm at
    `points_per_pair` points uniform on the segment between them, and the
    inequality ``Omega_i <= 1`` is enforced through
    ``h = mean_i max(0, Omega_i - 1)^2`` (zero when it holds), with the
    multiplier update of :class:`SobolevConstraint`. Relaxes WGAN's Lipschitz
    constraint (pointwise) to one on the mean over each segment.
    """

    name = "sobolev_wasserstein_constraint"
    lagrangian = True
    points_per_pair = 8

    def __call__(self, score_fn, real, fake, rng):
        batch, k = tf.shape(real)[0], self.points_per_pair
        eps_shape = tf.concat([[k, batch], tf.ones([len(real.shape) - 1], tf.int32)], 0)
        eps = rng.uniform(eps_shape)
        points = tf.reshape(eps * real[None] + (1.0 - eps) * fake[None],
                            tf.concat([[k * batch], tf.shape(real)[1:]], 0))
        squared = tf.reshape(tf.square(gradient_norms(score_fn, points)), [k, batch])
        return tf.reduce_mean(tf.square(tf.nn.relu(tf.reduce_mean(squared, 0) - 1.0)))


def orthogonal_penalty(kernels):
    """BigGAN's orthogonal regularization of a network's kernels.

    Brock, Donahue & Simonyan 2019, https://arxiv.org/abs/1809.11096, Eq. 3:
    ``sum over kernels of ||W^T W * (1 - I)||_F^2``, each kernel reshaped to a
    ``(fan_in, filters)`` matrix ``W``: it pushes the filters towards mutual
    orthogonality without constraining their norms (zero for any kernel whose
    filters are orthogonal).
    """
    total = tf.constant(0.0)
    for kernel in kernels:
        w = tf.reshape(tf.cast(kernel, tf.float32), [-1, kernel.shape[-1]])
        gram = tf.matmul(w, w, transpose_a=True)
        off = gram * (1.0 - tf.eye(kernel.shape[-1]))
        total += tf.reduce_sum(tf.square(off))
    return total


REGULARIZERS = {"gradient_penalty": GradientPenalty, "lipschitz_penalty": LipschitzPenalty,
                "r1": R1Penalty, "sobolev": SobolevConstraint,
                "sobolev_wasserstein": SobolevWassersteinConstraint, "none": None}


def get(name):
    """The regularizer called `name` (None for "none"), or a clear error."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    return None if cls is None else cls()
