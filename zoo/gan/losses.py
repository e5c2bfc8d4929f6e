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


ADVERSARIAL_LOSSES = {cls.name: cls for cls in (WassersteinLoss, NonSaturatingLoss, HingeLoss)}


def get(name):
    """The adversarial loss called `name`, or a clear error naming the known ones."""
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {name!r}; known: {sorted(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[name]()
