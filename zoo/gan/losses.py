"""Adversarial losses: what the critic and the generator each minimise.

Each is chosen by name (``AdversarialModel(adversarial_loss=NAME)``) and computes
its terms from the critic's raw scores of a real and a generated batch. The
critic's optimum turns its loss into a distance or divergence between the data's
distribution and the model's, which the generator then minimises.
"""

import numpy as np
import tensorflow as tf


class AdversarialLoss:
    """The interface: ``critic_loss``, ``generator_loss`` and the extra terms it
    reports (``reported``, each a loss term of the model).

    A loss on scores (``pairwise = False``) sees one critic score per example,
    shape ``(batch,)``; the generator's loss needs the generated batch's only.
    A distance between batches (``pairwise = True``, :class:`BatchDistance`)
    sees the critic's features of whole batches, shape ``(batch, k)``, and both
    players' losses need the real batch as well as the generated one.

    A loss also says what it needs of the model, so that the model names no loss:
    ``options``, the constructor arguments it takes (the model's arguments of the
    same names; :meth:`resolve_options` fills their defaults); ``weight_clipping``,
    whether a critic trained under it may have its weights clipped (a Lipschitz
    or bounded critic: Wasserstein, MMD); ``score_bias``, whether the critic's
    score has a bias (not where every term is invariant to a constant).
    """

    name = None
    reported = ()
    pairwise = False
    options = ()
    weight_clipping = False
    score_bias = True

    @classmethod
    def resolve_options(cls, given, data_shape, learned_critic):
        """The loss's arguments from the model's `given` ones ({option: value or
        None}, only this loss's options): None where the loss's default holds."""
        return {k: v for k, v in given.items() if v is not None}

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
    weight_clipping = True
    score_bias = False  # a Wasserstein critic is defined up to a constant no term sees

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
    options = ("divergence",)

    @classmethod
    def resolve_options(cls, given, data_shape, learned_critic):
        if given.get("divergence") is None:  # which one is the model's choice, never implied
            raise ValueError(f"divergence goes with adversarial_loss='f_divergence' (one of "
                             f"{sorted(F_DIVERGENCES)}), got divergence=None")
        return dict(given)

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


class BatchDistance(AdversarialLoss):
    """A distance between the real and the generated batch's features.

    ``distance(real, fake, rng)`` estimates it from two batches of features
    ``(batch, k)`` (drawing any randomness from `rng`, the model's stream); the
    critic (if any) maximises it and the generator minimises it. Reports it
    under ``reported[0]``.
    """

    pairwise = True
    score_bias = False  # features, compared between batches

    def distance(self, real, fake, rng):
        raise NotImplementedError

    def terms(self, real, fake, rng):
        """Every term of one step, from one estimate of the distance."""
        d = self.distance(real, fake, rng)
        return {"critic_loss": -d, "generator_loss": d, self.reported[0]: d}


def squared_distances(x, y):
    """``||x_i - y_j||^2`` for rows of `x` (n, k) and `y` (m, k), clipped at 0."""
    cross = tf.matmul(x, y, transpose_b=True)
    return tf.nn.relu(tf.reduce_sum(tf.square(x), 1)[:, None] - 2.0 * cross +
                      tf.reduce_sum(tf.square(y), 1)[None, :])


def mixture_rbf(x, y, bandwidths):
    """``sum_s exp(-||x - y||^2 / (2 s^2))`` over the bandwidths `s`, as (n, m)."""
    d2 = squared_distances(x, y)
    return tf.add_n([tf.exp(-d2 / (2.0 * float(s) ** 2)) for s in bandwidths])


def mmd_squared(x, y, bandwidths):
    """The unbiased estimate of ``MMD^2`` with a mixture of Gaussian RBF kernels.

    Gretton, Borgwardt, Rasch, Schoelkopf & Smola, "A Kernel Two-Sample Test",
    JMLR 2012, https://jmlr.org/papers/v13/gretton12a.html, Lemma 6: with
    ``k`` the kernel, ``mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j)
    - 2 mean_{i, j} k(x_i, y_j)``, whose expectation is the population MMD^2 (it
    can be negative). `x` and `y` are (n, k) and (m, k) with n, m >= 2.
    """
    def within(a):
        n = tf.cast(tf.shape(a)[0], a.dtype)
        k = mixture_rbf(a, a, bandwidths)
        return (tf.reduce_sum(k) - tf.linalg.trace(k)) / (n * (n - 1.0))

    return within(x) + within(y) - 2.0 * tf.reduce_mean(mixture_rbf(x, y, bandwidths))


class MMDLoss(BatchDistance):
    """Maximum mean discrepancy with a fixed mixture of Gaussian RBF kernels.

    On the data itself (no critic) it is the generative moment matching
    network: Li, Swersky & Zemel, "Generative Moment Matching Networks", ICML
    2015, https://arxiv.org/abs/1502.02761 (Sec. 3: a sum of RBF kernels of
    several bandwidths; we minimise the unbiased MMD^2, whose gradient is an
    unbiased estimate of the population MMD^2's). On a critic's features that
    the critic trains to maximise it, it is MMD-GAN: Li, Chang, Cheng, Yang &
    Poczos, "MMD GAN: Towards Deeper Understanding of Moment Matching
    Network", NeurIPS 2017, https://arxiv.org/abs/1705.08584, Eq. 5 and
    Algorithm 1. Reports ``mmd_squared``.

    Args:
        bandwidths: the kernels' standard deviations ``s``.
    """

    name = "mmd"
    reported = ("mmd_squared",)
    options = ("bandwidths",)
    weight_clipping = True  # a learned critic's features (Li et al. 2017, Algorithm 1)

    @classmethod
    def resolve_options(cls, given, data_shape, learned_critic):
        """On data itself (no critic), bandwidths of the data's scale:
        ``(0.1, 0.2, 0.5, 1, 2, 5) * sqrt(D / 2)`` for D dimensions."""
        if given.get("bandwidths") is not None or learned_critic:
            return super().resolve_options(given, data_shape, learned_critic)
        scale = (np.prod(data_shape) / 2.0) ** 0.5
        return {"bandwidths": [b * scale for b in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)]}

    def __init__(self, bandwidths=(1.0, 2.0, 4.0, 8.0, 16.0)):
        self.bandwidths = tuple(float(s) for s in bandwidths)
        if not self.bandwidths or min(self.bandwidths) <= 0:
            raise ValueError(f"MMD: expected positive kernel bandwidths, got {bandwidths}")

    def distance(self, real, fake, rng):
        del rng
        return mmd_squared(real, fake, self.bandwidths)


def wasserstein2_1d(a, b):
    """The squared 2-Wasserstein distance between the empirical distributions of
    the columns of `a` and `b` (n, p), column by column: the mean squared
    difference of the sorted values (the optimal 1-D coupling). Shape (p,)."""
    a = tf.sort(a, axis=0)
    b = tf.sort(b, axis=0)
    return tf.reduce_mean(tf.square(a - b), axis=0)


class SlicedWassersteinLoss(BatchDistance):
    """The squared sliced 2-Wasserstein distance between two batches.

    ``SW_2^2(P, Q) = E_w[W_2^2(w#P, w#Q)]`` over directions ``w`` uniform on the
    unit sphere, each 1-D distance exact between sorted projections:
    Deshpande, Zhang & Schwing, "Generative Modeling using the Sliced
    Wasserstein Distance", CVPR 2018, https://arxiv.org/abs/1803.11188, Eq. 4-5
    (here on the data, with `num_projections` fresh directions per step).

    Features of a single column are used as they are: with a critic whose last
    layer is one unit direction (a spectrally normalised ``1 x k`` kernel), the
    critic maximising the 1-D distance learns the max-sliced distance
    ``max_w W_2^2(w#P, w#Q)`` of Deshpande et al., "Max-Sliced Wasserstein
    Distance and its use for GANs", CVPR 2019, https://arxiv.org/abs/1904.05877,
    Eq. 4. Reports ``sliced_wasserstein_squared``. Both batches have the same
    size.

    Args:
        num_projections: random directions per estimate.
    """

    name = "sliced_wasserstein"
    reported = ("sliced_wasserstein_squared",)
    options = ("num_projections",)

    def __init__(self, num_projections=128):
        self.num_projections = int(num_projections)
        if self.num_projections < 1:
            raise ValueError(f"sliced Wasserstein: expected num_projections >= 1, got "
                             f"{num_projections}")

    def directions(self, dim, rng):
        """`num_projections` unit vectors uniform on the sphere, as (dim, p)."""
        w = rng.normal(tf.stack([dim, self.num_projections]))
        return w / tf.norm(w, axis=0, keepdims=True)

    def distance(self, real, fake, rng):
        if real.shape[-1] != 1:
            w = self.directions(tf.shape(real)[-1], rng)
            real, fake = tf.matmul(real, w), tf.matmul(fake, w)
        return tf.reduce_mean(wasserstein2_1d(real, fake))


ADVERSARIAL_LOSSES = {cls.name: cls for cls in (WassersteinLoss, NonSaturatingLoss, MinimaxLoss,
                                                HingeLoss, FGANLoss, MMDLoss,
                                                SlicedWassersteinLoss)}


def loss_class(name):
    """The class of the adversarial loss called `name`, or a clear error naming the
    known ones."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {name!r}; known: {sorted(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[name]


def get(name, **options):
    """The adversarial loss called `name` (with its `options`, e.g. the f-GAN's
    ``divergence`` or MMD's ``bandwidths``), or a clear error naming the known ones."""
    return loss_class(name)(**options)


def owners(option):
    """The losses that take `option`."""
    return sorted(name for name, cls in ADVERSARIAL_LOSSES.items() if option in cls.options)
