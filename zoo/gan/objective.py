"""The adversarial objective of :class:`~zoo.gan.base.AdversarialModel`: an
adversarial loss (:mod:`zoo.gan.losses`) and a regularizer
(:mod:`zoo.gan.regularizers`), each chosen by name."""

import tensorflow as tf

from zoo.gan import losses, regularizers


class AdversarialObjective:
    """A mixin of :class:`~zoo.gan.base.AdversarialModel`: the adversarial loss
    and the regularizer it is built with, by name.

    :meth:`choose_objective` checks the loss's options, the weight clipping and
    the critic against them and sets ``objective`` and ``penalty``;
    ``loss_names`` are the terms they give; :meth:`critic_terms` computes those
    terms on model-space batches from the model's ``scores`` (a loss on scores)
    or ``features`` (a distance between batches), the penalty weighted into
    ``critic_loss`` (by ``regularizer_weight``, or an augmented Lagrangian with
    the model's ``lagrange_multiplier``).
    """

    def choose_objective(self, kind, weight_clip):
        """``objective`` and ``penalty`` from the model's ``adversarial_loss`` (with
        its options ``divergence``, ``bandwidths``, ``num_projections``) and
        ``regularizer``, each option checked against them (`weight_clip` as the
        constructor was given it, `kind` the class's name, for the messages)."""
        adversarial_loss, divergence = self.adversarial_loss, self.divergence
        regularizer = self.regularizer
        loss = losses.loss_class(adversarial_loss)
        given = {"divergence": divergence, "bandwidths": self.bandwidths,
                 "num_projections": self.num_projections}
        for option, value in given.items():
            if value is not None and option not in loss.options:
                owner = " or ".join(repr(o) for o in losses.owners(option))
                raise ValueError(f"{kind}: {option} goes with adversarial_loss={owner}, got "
                                 f"adversarial_loss={adversarial_loss!r}")
        clipped = loss.weight_clipping and self.learned_critic
        if self.weight_clip < 0 or (self.weight_clip > 0 and not clipped):
            clippable = " or ".join(repr(n) for n, c in losses.ADVERSARIAL_LOSSES.items()
                                    if c.weight_clipping)
            raise ValueError(f"{kind}: weight_clip (>= 0) bounds a learned critic under "
                             f"adversarial_loss={clippable}; got weight_clip={weight_clip} "
                             f"with adversarial_loss={adversarial_loss!r}, "
                             f"learned_critic={self.learned_critic}")
        self.objective = loss(**loss.resolve_options(
            {k: v for k, v in given.items() if k in loss.options}, self.data_shape,
            self.learned_critic))
        self.penalty = regularizers.get(regularizer)
        self.check_critic(kind, adversarial_loss, regularizer)

    @staticmethod
    def loss_names_for(adversarial_loss, regularizer, learned_critic=True):
        """The loss terms of an adversarial loss and a regularizer, by name."""
        names = ("critic_loss", "generator_loss") if learned_critic else ("generator_loss",)
        penalty = regularizers.REGULARIZERS[regularizer]
        if penalty is not None:
            names += (penalty.name,)
        return names + tuple(losses.ADVERSARIAL_LOSSES[adversarial_loss].reported)

    @property
    def loss_names(self):
        return self.loss_names_for(self.adversarial_loss, self.regularizer, self.learned_critic)

    @classmethod
    def default_loss_names(cls):
        """The loss terms of the class's defaults (what ``zoo list`` shows)."""
        return cls.loss_names_for("non_saturating", "none")

    def check_critic(self, kind, adversarial_loss, regularizer):
        """The critic's options fit the loss: features for a batch distance, one
        score otherwise; a critic at all where a setting needs one."""
        if self.critic_outputs < 1 or (self.critic_outputs > 1 and not self.objective.pairwise):
            raise ValueError(f"{kind}: expected critic_outputs=1 for a loss on scores "
                             f"({adversarial_loss!r}), or >= 1 for a distance between batches; "
                             f"got {self.critic_outputs}")
        if self.penalty is not None and self.objective.pairwise:
            raise ValueError(f"{kind}: the regularizer {regularizer!r} penalises a critic's "
                             f"scores; {adversarial_loss!r} compares batches of features")
        if self.num_classes and (self.objective.pairwise or not self.learned_critic):
            raise ValueError(f"{kind}: class-conditional generation needs a projection "
                             f"critic that scores (x, label) pairs: a loss on scores, not "
                             f"{adversarial_loss!r}")
        if not self.learned_critic:
            if not self.objective.pairwise:
                pairwise = ", ".join(n for n, c in losses.ADVERSARIAL_LOSSES.items()
                                     if c.pairwise)
                raise ValueError(f"{kind}: learned_critic=False needs a distance between "
                                 f"batches ({pairwise}), got {adversarial_loss!r}")
            if self.n_critic != 1 or self.spectral_norm:
                raise ValueError(f"{kind}: without a critic, n_critic must be 1 and "
                                 f"spectral_norm False; got n_critic={self.n_critic}, "
                                 f"spectral_norm={self.spectral_norm}")


    def batch_terms(self, real, fake, training):
        """The terms of a distance between batches (model-space batches)."""
        terms = self.objective.terms(self.features(real, training),
                                     self.features(fake, training), self.rng)
        if not self.learned_critic:
            del terms["critic_loss"]
        return terms

    def critic_terms(self, real, fake, training=False, labels=None, timesteps=None):
        """Every loss term of one critic step (model-space batches, both of the
        classes `labels` for a conditional model, and for a critic conditioned on
        timesteps both at `timesteps`, as a penalty's points between them are),
        keyed by ``loss_names``: the adversarial loss's two losses and reports,
        and the regularizer's penalty, weighted into ``critic_loss``."""
        if self.objective.pairwise:
            return self.batch_terms(real, fake, training)
        real_scores = self.scores(real, training, labels, timesteps)
        fake_scores = self.scores(fake, training, labels, timesteps)
        terms = {
            "critic_loss": self.objective.critic_loss(real_scores, fake_scores),
            "generator_loss": self.objective.generator_loss(fake_scores),
            **self.objective.report(real_scores, fake_scores),
        }
        if self.penalty is not None:
            penalty = self.penalty(lambda y: self.scores(y, training, labels, timesteps), real,
                                   fake, self.rng)
            terms[self.penalty.name] = penalty
            if self.lagrange_multiplier is None:
                terms["critic_loss"] += self.regularizer_weight * penalty
            else:  # an augmented Lagrangian: lambda h + rho / 2 h^2
                terms["critic_loss"] += self.lagrange_multiplier * penalty + \
                    0.5 * self.regularizer_weight * tf.square(penalty)
        return terms

    def critic_loss(self, real, fake):
        """The critic's loss on model-space batches, penalty included."""
        return self.critic_terms(real, fake)["critic_loss"]

    def generator_loss(self, fake):
        """The generator's loss on a generated batch in model space (a loss on
        scores; a distance between batches needs the real batch too)."""
        return self.objective.generator_loss(self.scores(fake))
