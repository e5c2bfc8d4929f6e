"""GANs as distances: one adversarial model, the distance chosen by name.

    zoo.get("gan", dataset="8gaussians", distance="f_pearson")
    zoo.get("wgan", dataset="digits")           # the same model, its distance fixed

Each distance is a recipe for :class:`~zoo.gan.base.AdversarialModel`: its
adversarial loss (:mod:`zoo.gan.losses`), the critic's regularizer or
constraint, the critic updates per generator update, and the optimizer of its
paper. Registered: ``gan`` (any distance, the non-saturating GAN by default),
and under their usual names ``wgan`` (weight clipping), ``wgan_lp``, ``fgan``
(any of the six f-divergences, KL by default), ``sngan``, ``gmmn``, ``mmd_gan``,
``sliced_gan``, ``max_sliced_gan``, ``sobolev_gan`` and ``swgan``. ``wgan_gp`` keeps its own class
(:mod:`zoo.gan.wgan_gp`), the same recipe as ``distance="wasserstein_gp"``.
"""

import keras

from zoo.datasets.toy import for_each_density
from zoo.gan import losses
from zoo.gan.base import AdversarialModel
from zoo.registry import register


def _adam(beta_1, beta_2=0.999):
    return lambda lr: keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2)


DCGAN_ADAM = _adam(0.5)  # Radford et al. 2016
WGAN_ADAM = _adam(0.0, 0.9)  # Gulrajani et al. 2017, Algorithm 1
SOBOLEV_ADAM = _adam(0.5, 0.9)  # Xu et al. 2021, reference code


def _rmsprop(lr):
    return keras.optimizers.RMSprop(learning_rate=lr)  # Arjovsky et al. 2017, Algorithm 1


# name -> (AdversarialModel arguments, optimizer(lr), what it minimises)
DISTANCES = {
    "minimax": (dict(adversarial_loss="minimax"), DCGAN_ADAM,
                "Jensen-Shannon, the minimax game (Goodfellow et al. 2014)"),
    "non_saturating": (dict(adversarial_loss="non_saturating"), DCGAN_ADAM,
                       "Jensen-Shannon, non-saturating generator loss (Goodfellow et al. "
                       "2014)"),
    "wasserstein_clip": (dict(adversarial_loss="wasserstein", weight_clip=0.01, n_critic=5),
                         _rmsprop, "Wasserstein-1, weight clipping (Arjovsky et al. 2017)"),
    "wasserstein_gp": (dict(adversarial_loss="wasserstein", regularizer="gradient_penalty",
                            regularizer_weight=10.0, n_critic=5), WGAN_ADAM,
                       "Wasserstein-1, gradient penalty (Gulrajani et al. 2017)"),
    "wasserstein_lp": (dict(adversarial_loss="wasserstein", regularizer="lipschitz_penalty",
                            regularizer_weight=10.0, n_critic=5), WGAN_ADAM,
                       "Wasserstein-1, one-sided Lipschitz penalty (Petzka et al. 2018)"),
    **{f"f_{name}": (dict(adversarial_loss="f_divergence", divergence=name), DCGAN_ADAM,
                     f"f-divergence {name} (Nowozin et al. 2016)")
       for name in losses.F_DIVERGENCES},
    "mmd": (dict(adversarial_loss="mmd", learned_critic=False), DCGAN_ADAM,
            "MMD, a fixed mixture of RBF kernels on the data, no critic (GMMN, Li et al. 2015)"),
    "mmd_gan": (dict(adversarial_loss="mmd", critic_outputs=16, spectral_norm=True, n_critic=5),
                DCGAN_ADAM, "MMD on the features of a spectrally normalised critic (MMD-GAN, "
                "Li et al. 2017)"),
    "sliced_wasserstein": (dict(adversarial_loss="sliced_wasserstein", learned_critic=False),
                           DCGAN_ADAM, "sliced Wasserstein-2, random projections of the data, "
                           "no critic (Deshpande et al. 2018)"),
    # 5 critic updates: with 1, the projection lags and 2,000 steps on 8gaussians
    # covered 3 of 8 modes; with 5, all 8 (bench/gan_distances.py).
    "max_sliced_wasserstein": (dict(adversarial_loss="sliced_wasserstein", spectral_norm=True,
                                    n_critic=5),
                               DCGAN_ADAM, "max-sliced Wasserstein-2, a learned unit "
                               "projection of spectrally normalised features (Deshpande et "
                               "al. 2019)"),
    "sobolev": (dict(adversarial_loss="wasserstein", regularizer="sobolev",
                     regularizer_weight=1e-4, n_critic=5), SOBOLEV_ADAM,
                "Sobolev IPM, augmented Lagrangian (Mroueh et al. 2018)"),
    "sobolev_wasserstein": (dict(adversarial_loss="wasserstein",
                                 regularizer="sobolev_wasserstein", regularizer_weight=1e-4,
                                 n_critic=5), SOBOLEV_ADAM,
                            "Wasserstein-1 by the Sobolev duality, augmented Lagrangian "
                            "(SWGAN, Xu et al. 2021)"),
    "hinge_sn": (dict(adversarial_loss="hinge", spectral_norm=True), DCGAN_ADAM,
                 "hinge loss, spectrally normalised critic (Miyato et al. 2018)"),
    # StyleGAN's: R1 with gamma = 10 (weight gamma / 2), Adam(beta_1=0, beta_2=0.99)
    "non_saturating_r1": (dict(adversarial_loss="non_saturating", regularizer="r1",
                               regularizer_weight=5.0), _adam(0.0, 0.99),
                          "Jensen-Shannon, non-saturating loss with the R1 penalty on real "
                          "data (Mescheder et al. 2018; StyleGAN, Karras et al. 2019)"),
}

# What a distance's recipe sets and a user may not (the recipe is the distance).
RECIPE = ("adversarial_loss", "divergence", "regularizer", "spectral_norm", "learned_critic")
TUNABLE = {"n_critic": 1, "regularizer_weight": 0.0, "weight_clip": 0.0, "critic_outputs": 1}

PRESETS = {
    **for_each_density(latent_dim=2, hidden_units=128, num_hidden=3),
    "digits": dict(latent_dim=32, filters=32),
    "fashion_mnist": dict(latent_dim=64, filters=32),
}


def _training(learning_rate_2d, learning_rate_images):
    return {
        **for_each_density(batch_size=256, epochs=20, learning_rate=learning_rate_2d,
                           steps_per_epoch=400),
        "digits": dict(batch_size=64, epochs=300, learning_rate=learning_rate_images),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=learning_rate_images),
    }


def check_distance(distance):
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; known: {sorted(DISTANCES)}")
    return DISTANCES[distance]


@register("gan", presets=PRESETS, training=_training(1e-3, 2e-4), default_dataset="8gaussians")
@keras.saving.register_keras_serializable(package="zoo")
class GAN(AdversarialModel):
    """A GAN that minimises the distance `distance` between data and model.

    The distances (``DISTANCES``), each as in its paper:

    * ``minimax``, ``non_saturating``: Jensen-Shannon (Goodfellow et al. 2014,
      https://arxiv.org/abs/1406.2661), DCGAN networks and optimizer (Radford et
      al. 2016, https://arxiv.org/abs/1511.06434);
    * ``wasserstein_clip`` (Arjovsky et al. 2017,
      https://arxiv.org/abs/1701.07875: weights clipped to 0.01, RMSProp, 5
      critic updates), ``wasserstein_gp`` (Gulrajani et al. 2017,
      https://arxiv.org/abs/1704.00028), ``wasserstein_lp`` (Petzka et al.
      2018, https://arxiv.org/abs/1709.08894);
    * ``f_kl``, ``f_reverse_kl``, ``f_pearson``, ``f_squared_hellinger``,
      ``f_jensen_shannon``, ``f_total_variation``: f-GAN (Nowozin et al. 2016,
      https://arxiv.org/abs/1606.00709, Table 2);
    * ``mmd``: MMD with a fixed mixture of RBF kernels on the data, no critic
      (GMMN, Li et al. 2015, https://arxiv.org/abs/1502.02761); ``mmd_gan``:
      MMD on the features of a critic that maximises it, weights clipped to
      0.01, RMSProp, 5 critic updates (Li et al. 2017,
      https://arxiv.org/abs/1705.08584, without the paper's autoencoder terms);
    * ``sliced_wasserstein``: random projections of the data, no critic
      (Deshpande et al. 2018, https://arxiv.org/abs/1803.11188);
      ``max_sliced_wasserstein``: the critic learns the projection, a unit
      vector on spectrally normalised features, with 5 critic updates per
      generator update (Deshpande et al. 2019, https://arxiv.org/abs/1904.05877);
    * ``sobolev``: the Sobolev IPM (Mroueh et al. 2018,
      https://arxiv.org/abs/1711.04894) and ``sobolev_wasserstein``: SWGAN's
      relaxed Lipschitz constraint (Xu et al. 2021,
      https://arxiv.org/abs/2012.03420), each by an augmented Lagrangian with
      ``rho = 1e-4`` (``regularizer_weight``), 5 critic updates;
    * ``hinge_sn``: hinge loss with a spectrally normalised critic (Miyato et
      al. 2018, https://arxiv.org/abs/1802.05957);
    * ``non_saturating_r1``: the non-saturating loss with the R1 penalty on
      real data, gamma = 10 (Mescheder et al. 2018,
      https://arxiv.org/abs/1801.04406), StyleGAN's, with its Adam(beta_1=0,
      beta_2=0.99).

    Args:
        distance: a name in ``DISTANCES``.
        n_critic, regularizer_weight, weight_clip, critic_outputs: the
            distance's own values unless given.
        Others: as :class:`~zoo.gan.base.AdversarialModel`.
    """

    default_distance = "non_saturating"
    distances = tuple(DISTANCES)  # the distances this registered name may take
    fixed_parameters = RECIPE

    def __init__(self, data_shape=(2,), num_levels=None, distance=None, n_critic=None,
                 regularizer_weight=None, weight_clip=None, critic_outputs=None, **kwargs):
        distance = distance or self.default_distance
        recipe, _, _ = check_distance(distance)
        kind = type(self).__name__
        if distance not in self.distances:
            raise ValueError(f"{kind}: expected a distance in {list(self.distances)}, got "
                             f"{distance!r} (the model 'gan' takes any)")
        for name in RECIPE:
            if name in kwargs:
                raise ValueError(f"{kind}: {name} comes with the distance ({distance!r}: "
                                 f"{recipe.get(name)!r}); choose another distance instead")
        given = {"n_critic": n_critic, "regularizer_weight": regularizer_weight,
                 "weight_clip": weight_clip, "critic_outputs": critic_outputs}
        settings = {k: recipe.get(k, default) if given[k] is None else given[k]
                    for k, default in TUNABLE.items()}
        kwargs.setdefault("name", type(self).__name__.lower())
        self.distance = distance
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         **{k: v for k, v in recipe.items() if k not in TUNABLE}, **settings,
                         **kwargs)

    @classmethod
    def default_loss_names(cls):
        recipe = DISTANCES[cls.default_distance][0]
        return cls.loss_names_for(recipe["adversarial_loss"], recipe.get("regularizer", "none"),
                                  recipe.get("learned_critic", True))

    def default_optimizer(self, learning_rate=2e-4):
        """The optimizer of the distance's paper at `learning_rate`."""
        return DISTANCES[self.distance][1](learning_rate)


def _fixed(name, distance, learning_rate_2d, learning_rate_images, summary, choices=None):
    """A registered GAN whose distance is `distance` (or one of `choices`)."""

    cls = type(name, (GAN,), {
        "default_distance": distance,
        "distances": tuple(choices or (distance,)),
        "fixed_parameters": RECIPE + (() if choices else ("distance",)),
        "__doc__": f"{summary}: :class:`GAN` with ``distance={distance!r}``.",
        "__module__": __name__,
    })
    cls = keras.saving.register_keras_serializable(package="zoo")(cls)
    return register(name.lower(), presets=PRESETS,
                    training=_training(learning_rate_2d, learning_rate_images),
                    default_dataset="8gaussians")(cls)


WGAN = _fixed("WGAN", "wasserstein_clip", 5e-4, 5e-5,
              "Wasserstein GAN with weight clipping (Arjovsky et al. 2017)")
WGAN_LP = _fixed("WGAN_LP", "wasserstein_lp", 1e-3, 1e-4,
                 "Wasserstein GAN with the one-sided Lipschitz penalty (Petzka et al. 2018)")
FGAN = _fixed("FGAN", "f_kl", 1e-3, 2e-4, "f-GAN, by default minimising KL(data || model) "
              "(Nowozin et al. 2016)", choices=[d for d in DISTANCES if d.startswith("f_")])
SNGAN = _fixed("SNGAN", "hinge_sn", 1e-3, 2e-4,
               "Hinge-loss GAN with spectral normalisation (Miyato et al. 2018)")
GMMN = _fixed("GMMN", "mmd", 1e-3, 2e-4,
              "Generative moment matching network: MMD on the data (Li et al. 2015)")
MMD_GAN = _fixed("MMD_GAN", "mmd_gan", 5e-4, 5e-5,
                 "MMD-GAN: MMD on a learned critic's features (Li et al. 2017)")
SLICED_GAN = _fixed("SLICED_GAN", "sliced_wasserstein", 1e-3, 2e-4,
                    "Sliced Wasserstein generator (Deshpande et al. 2018)")
MAX_SLICED_GAN = _fixed("MAX_SLICED_GAN", "max_sliced_wasserstein", 1e-3, 2e-4,
                        "Max-sliced Wasserstein GAN (Deshpande et al. 2019)")
SOBOLEV_GAN = _fixed("SOBOLEV_GAN", "sobolev", 1e-3, 1e-4, "Sobolev GAN (Mroueh et al. 2018)")
SWGAN = _fixed("SWGAN", "sobolev_wasserstein", 1e-3, 1e-4,
               "Sobolev Wasserstein GAN (Xu et al. 2021)")
