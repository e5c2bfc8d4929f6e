"""Critic regularizers: penalties added to the critic's loss, chosen by name.

``AdversarialModel(regularizer=NAME, regularizer_weight=W)`` adds ``W * penalty``
to ``critic_loss`` and reports the penalty (before its weight) as a loss term
named after it. ``"none"`` adds nothing.
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


REGULARIZERS = {"gradient_penalty": GradientPenalty, "lipschitz_penalty": LipschitzPenalty,
                "r1": R1Penalty, "none": None}


def get(name):
    """The regularizer called `name` (None for "none"), or a clear error."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    return None if cls is None else cls()
