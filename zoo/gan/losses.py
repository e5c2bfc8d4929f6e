"""Adversarial losses: what the critic and the generator each minimise.

Each is chosen by name (``AdversarialModel(adversarial_loss=NAME)``) and computes
its terms from the critic's raw scores of a real and a generated batch. The
critic's optimum turns its loss into a distance or divergence between the data's
distribution and the model's, which the generator then minimises.
"""

import tensorflow as tf


class AdversarialLoss:
    """The interface: ``critic_loss``, ``generator_loss`` and the extra terms it
    reports (``reported``, each a loss term of the model)."""

    name = None
    reported = ()

    def critic_loss(self, real_scores, fake_scores):
        raise NotImplementedError

    def generator_loss(self, fake_scores):
        raise NotImplementedError

    def report(self, real_scores, fake_scores):
        """The ``reported`` terms, name -> scalar."""
        return {}


class WassersteinLoss(AdversarialLoss):
    """The Kantorovich-Rubinstein dual of the Wasserstein-1 distance.

    Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017,
    https://arxiv.org/abs/1701.07875, Eq. 2-3: the critic maximises
    ``E[D(x)] - E[D(G(z))]`` over (about) 1-Lipschitz functions, so it minimises
    ``E[D(G(z))] - E[D(x)]``; the generator minimises ``-E[D(G(z))]``. It reports
    ``wasserstein``, the critic's estimate ``E[D(x)] - E[D(G(z))]``. The Lipschitz
    constraint comes from a regularizer (gradient penalty) or the critic's layers.
    """

    name = "wasserstein"
    reported = ("wasserstein",)

    def critic_loss(self, real_scores, fake_scores):
        return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)

    def generator_loss(self, fake_scores):
        return -tf.reduce_mean(fake_scores)

    def report(self, real_scores, fake_scores):
        return {"wasserstein": tf.reduce_mean(real_scores) - tf.reduce_mean(fake_scores)}


class NonSaturatingLoss(AdversarialLoss):
    """The GAN of Goodfellow et al. with the non-saturating generator loss.

    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014,
    https://arxiv.org/abs/1406.2661, Eq. 1 and Sec. 3: the critic's scores are
    logits of D; it minimises the cross-entropy
    ``-E[log sigmoid(D(x))] - E[log(1 - sigmoid(D(G(z))))]``, at whose optimum the
    generator's game is ``2 JS(p_data, p_model) - log 4``; the generator minimises
    ``-E[log sigmoid(D(G(z)))]``, which has the same fixed point and strong
    gradients early in training.
    """

    name = "non_saturating"

    def critic_loss(self, real_scores, fake_scores):
        # -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s).
        return tf.reduce_mean(tf.nn.softplus(-real_scores)) + \
            tf.reduce_mean(tf.nn.softplus(fake_scores))

    def generator_loss(self, fake_scores):
        return tf.reduce_mean(tf.nn.softplus(-fake_scores))


class HingeLoss(AdversarialLoss):
    """The hinge loss of geometric GAN and SN-GAN.

    Lim & Ye, "Geometric GAN", 2017, https://arxiv.org/abs/1705.02894; Miyato et
    al., "Spectral Normalization for GANs", ICLR 2018,
    https://arxiv.org/abs/1802.05957, Eq. 16-17: the critic minimises
    ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``, the generator ``-E[D(G(z))]``.
    """

    name = "hinge"

    def critic_loss(self, real_scores, fake_scores):
        return tf.reduce_mean(tf.nn.relu(1.0 - real_scores)) + \
            tf.reduce_mean(tf.nn.relu(1.0 + fake_scores))

    def generator_loss(self, fake_scores):
        return -tf.reduce_mean(fake_scores)


class MinimaxLoss(NonSaturatingLoss):
    """The GAN of Goodfellow et al. as the minimax game it is written as.

    Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661, Eq. 1: the critic's
    loss is the non-saturating GAN's; the generator minimises
    ``E[log(1 - sigmoid(D(G(z))))]``, the game's own value, which saturates
    when the critic rejects the samples confidently (Sec. 3).
    """

    name = "minimax"

    def generator_loss(self, fake_scores):
        return -tf.reduce_mean(tf.nn.softplus(fake_scores))


class FDivergence:
    """One f-divergence ``D_f(P || Q) = E_Q[f(p / q)]`` of Nowozin et al.'s Table 2.

    ``activation`` is the output activation g_f mapping a critic's raw score to
    the domain of the conjugate ``conjugate`` = f*; ``generator`` is f, and
    ``derivative`` f' gives the optimal critic ``T*(x) = f'(p(x) / q(x))``.
    """

    def __init__(self, name, generator, derivative, activation, conjugate):
        self.name, self.f, self.derivative = name, generator, derivative
        self.activation, self.conjugate = activation, conjugate


def _log2(like):
    return tf.math.log(tf.constant(2.0, like.dtype))


F_DIVERGENCES = {d.name: d for d in (
    FDivergence("kl", lambda u: u * tf.math.log(u), lambda u: 1.0 + tf.math.log(u),
                lambda v: v, lambda t: tf.exp(t - 1.0)),
    FDivergence("reverse_kl", lambda u: -tf.math.log(u), lambda u: -1.0 / u,
                lambda v: -tf.exp(-v), lambda t: -1.0 - tf.math.log(-t)),
    FDivergence("pearson", lambda u: tf.square(u - 1.0), lambda u: 2.0 * (u - 1.0),
                lambda v: v, lambda t: 0.25 * tf.square(t) + t),
    FDivergence("squared_hellinger", lambda u: tf.square(tf.sqrt(u) - 1.0),
                lambda u: 1.0 - tf.math.rsqrt(u),
                lambda v: 1.0 - tf.exp(-v), lambda t: t / (1.0 - t)),
    FDivergence("jensen_shannon",
                lambda u: u * tf.math.log(u) - (u + 1.0) * tf.math.log((u + 1.0) / 2.0),
                lambda u: tf.math.log(2.0 * u / (1.0 + u)),
                lambda v: _log2(v) - tf.nn.softplus(-v), lambda t: -tf.math.log(2.0 - tf.exp(t))),
    FDivergence("total_variation", lambda u: 0.5 * tf.abs(u - 1.0),
                lambda u: 0.5 * tf.sign(u - 1.0),
                lambda v: 0.5 * tf.tanh(v), lambda t: t),
)}


class FGANLoss(AdversarialLoss):
    """The variational divergence minimisation of f-GAN.

    Nowozin, Cseke & Tomioka, "f-GAN: Training Generative Neural Samplers using
    Variational Divergence Minimization", NeurIPS 2016,
    https://arxiv.org/abs/1606.00709, Eq. 6 and Table 2: with ``T = g_f(V)`` the
    critic maximises ``F = E_P[T(x)] - E_Q[f*(T(G(z)))]``, a lower bound on
    ``D_f(P || Q)`` (P the data, Q the model) that is tight at
    ``T*(x) = f'(p(x) / q(x))``; the generator minimises ``F``, i.e.
    ``-E_Q[f*(T(G(z)))]``. Reports ``divergence``, the critic's ``F``.

    Args:
        divergence: a name in :data:`F_DIVERGENCES`.
    """

    name = "f_divergence"
    reported = ("divergence",)

    def __init__(self, divergence="kl"):
        if divergence not in F_DIVERGENCES:
            raise ValueError(f"unknown f-divergence {divergence!r}; known: "
                             f"{sorted(F_DIVERGENCES)}")
        self.divergence = F_DIVERGENCES[divergence]

    def objective(self, real_scores, fake_scores):
        d = self.divergence
        return tf.reduce_mean(d.activation(real_scores)) - \
            tf.reduce_mean(d.conjugate(d.activation(fake_scores)))

    def critic_loss(self, real_scores, fake_scores):
        return -self.objective(real_scores, fake_scores)

    def generator_loss(self, fake_scores):
        d = self.divergence
        return -tf.reduce_mean(d.conjugate(d.activation(fake_scores)))

    def report(self, real_scores, fake_scores):
        return {"divergence": self.objective(real_scores, fake_scores)}


ADVERSARIAL_LOSSES = {cls.name: cls for cls in (WassersteinLoss, NonSaturatingLoss, MinimaxLoss,
                                                HingeLoss, FGANLoss)}


def get(name, **options):
    """The adversarial loss called `name` (with its `options`, e.g. the f-GAN's
    ``divergence``), or a clear error naming the known ones."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {name!r}; known: {sorted(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[name](**options)
