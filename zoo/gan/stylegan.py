"""StyleGAN (StyleGAN2's generator) sized for 28x28 and 8x8 images, any distance."""

import keras
import numpy as np
import tensorflow as tf

from zoo.base import SampleOption
from zoo.gan.dcgan import image_training
from zoo.gan.distances import GAN
from zoo.gan.residual_critic import ResidualCritic
from zoo.gan.style_generator import StyleGenerator
from zoo.registry import register

NUM_UPSAMPLINGS = 2  # 7 -> 28 (Fashion-MNIST), 2 -> 8 (digits)
NUM_STYLES = 1 + 2 * NUM_UPSAMPLINGS + 1  # the convolutions and the to-image layer
FIXED_NOISE = (0, 0)  # the noise inputs' seed of `generate` (deterministic)


def lazily(model, due, interval, penalty, otherwise=()):
    """``interval * penalty()`` on the steps that are `due`, else 0 (lazy
    regularization). By a ``tf.cond``, so the other steps skip its cost; under
    XLA (``jit_compile``) a ``tf.cond`` around a second derivative did not
    compile at a batch size known at run time (XLA's dynamic padder), so there
    it is computed every step and masked: the same values, no saving.

    With `otherwise` (a tuple of tensors), `penalty` returns ``(penalty,
    *values)`` and so does this, the values `otherwise` on the steps not due:
    what the penalty updates (a running mean) is assigned by the caller, outside
    the ``tf.cond``, where a replica may synchronise a variable (a MEAN-aggregated
    assignment inside a cond branch fails under ``MirroredStrategy``)."""
    def run():
        out = tuple(penalty()) if otherwise else (penalty(),)
        return (interval * out[0],) + out[1:]
    if getattr(model, "jit_compile", False) is True:
        out = run()
        out = (out[0] * tf.cast(due, tf.float32),) + tuple(
            tf.where(due, value, other) for value, other in zip(out[1:], otherwise))
    else:  # (tf.cond returns a one-element tuple's element: flatten)
        out = tuple(tf.nest.flatten(tf.cond(due, run, lambda: (tf.constant(0.0),)
                                            + tuple(otherwise))))
    return out if otherwise else out[0]


class LazyPenalty:
    """A critic penalty computed every `interval`-th critic step only, weighted by
    `interval` there (and 0 on the other steps): lazy regularization (Karras et
    al. 2020, Sec. 3.1), the same penalty on average at a fraction of the cost.
    Before the model is compiled (no step counter), every call computes it."""

    def __init__(self, penalty, interval, model):
        self.penalty, self.interval, self.model = penalty, int(interval), model
        self.name = penalty.name

    def __call__(self, score_fn, real, fake, rng):
        optimizer = self.model.optimizer_for(self.model.critic_networks[0])
        if optimizer is None or self.interval == 1:
            return self.penalty(score_fn, real, fake, rng)
        due = tf.equal(optimizer.iterations % self.interval, 0)
        return lazily(self.model, due, self.interval,
                      lambda: self.penalty(score_fn, real, fake, rng))


@register("stylegan", presets={
    "digits": dict(latent_dim=32, filters=32, mapping_layers=4),
    "fashion_mnist": dict(latent_dim=64, filters=64, mapping_layers=4),
}, training=image_training(2e-3), default_dataset="digits")
@keras.saving.register_keras_serializable(package="zoo")
class StyleGAN(GAN):
    """A style-based generator against a residual critic.

    Karras, Laine & Aila, "A Style-Based Generator Architecture for Generative
    Adversarial Networks", CVPR 2019, https://arxiv.org/abs/1812.04948, with the
    generator of StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila,
    "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020,
    https://arxiv.org/abs/1912.04958), sized for 28x28 and 8x8 images
    (:class:`~zoo.gan.style_generator.StyleGenerator`: the mapping network, a
    learned constant, modulated/demodulated convolutions
    (:class:`~zoo.nn.modulated_conv.ModulatedConv2D`), per-layer noise inputs),
    against StyleGAN2's residual critic
    (:class:`~zoo.gan.residual_critic.ResidualCritic`) with its epilogue: the
    minibatch standard deviation of Progressive GAN (Karras, Aila, Laine &
    Lehtinen, ICLR 2018, https://arxiv.org/abs/1710.10196, Sec. 3;
    :class:`~zoo.nn.minibatch_std.MinibatchStd`, groups of 4, one feature) and a
    3x3 convolution before the head. The critic's scores of a batch so depend
    on the other examples of each group (of the largest divisor of the batch
    that is at most ``mbstd_group_size``); the real and the generated batch are
    scored apart, and R1 is the gradient of the real batch's summed scores, as
    in the official code.

    Training: the distance ``non_saturating_r1`` by default (StyleGAN's
    non-saturating loss with R1, gamma = 10; any ``distance`` of
    ``DISTANCES`` may replace it); the critic's penalty is lazy, computed every
    ``regularizer_interval``-th critic step with its weight multiplied by the
    interval (its reported term is that weighted value, 0 on the other steps);
    style mixing regularization: with probability ``mixing_probability`` a
    generated batch takes a second latent's style from a crossover layer drawn
    uniformly in ``[1, num_styles)``; path-length regularization (StyleGAN2,
    Sec. 3.2): every ``path_length_interval``-th generator step,
    ``path_length_weight * interval * E[(||J_w^T y||_2 - a)^2]`` with ``y``
    Gaussian images scaled by ``1 / sqrt(H W)`` and ``a`` the running mean of
    the lengths (decay 0.99, kept in ``path_length_mean``), added to the
    generator's loss (not reported as a term of its own).

    Sampling options: ``truncation`` (psi in [0, 1]: ``w_avg + psi (w -
    w_avg)``; 1 is no truncation, 0 the mean style's image), ``mix_seed`` (the
    seed of a second latent, -1: no mixing) and ``crossover`` (the first layer
    that takes the second latent's style, in [0, num_styles]). ``generate`` and
    ``interpolate`` draw the noise inputs from one fixed seed; ``sample`` from
    its seed.

    Args:
        latent_dim: the dimension of z and of the style w.
        filters: channels of the synthesis layers and of the critic's first block.
        mapping_layers: layers of the mapping network (8 in the paper).
        mixing_probability: of style mixing regularization (0.9 in the paper).
        regularizer_interval: critic steps per penalty (16 in the paper).
        path_length_weight: 2 in the paper; 0 turns it off.
        path_length_interval: generator steps per path-length penalty (4).
        mbstd_group_size: the critic's minibatch standard deviation group size
            at most (4); 0 leaves the layer (and its convolution) out.
        distance: a name in ``DISTANCES`` (default ``non_saturating_r1``).
        Others: as :class:`~zoo.gan.distances.GAN`.
    """

    default_distance = "non_saturating_r1"
    mixed_precision_refusal = "its modulated convolutions were not checked under a mixed policy"
    sample_options = {
        "truncation": SampleOption(1.0, at_least=0.0, at_most=1.0,
                                   doc="psi of the truncation trick: 1 none, 0 the mean style"),
        "mix_seed": SampleOption(-1, "int32", above=-2,
                                 doc="seed of a second latent whose style the layers from "
                                     "crossover on take; -1: no mixing"),
        "crossover": SampleOption(NUM_STYLES // 2, "int32", at_least=0, at_most=NUM_STYLES,
                                  doc=f"first layer (of {NUM_STYLES}) styled by mix_seed"),
    }

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, mapping_layers=4,
                 mixing_probability=0.9, regularizer_interval=16, path_length_weight=2.0,
                 path_length_interval=4, mbstd_group_size=4, **kwargs):
        kind = type(self).__name__
        self.mapping_layers = int(mapping_layers)
        self.mixing_probability = float(mixing_probability)
        self.regularizer_interval = int(regularizer_interval)
        self.path_length_weight = float(path_length_weight)
        self.path_length_interval = int(path_length_interval)
        self.mbstd_group_size = int(mbstd_group_size)
        if not 0.0 <= self.mixing_probability <= 1.0:
            raise ValueError(f"{kind}: expected 0 <= mixing_probability <= 1, got "
                             f"{mixing_probability}")
        if self.regularizer_interval < 1 or self.path_length_interval < 1:
            raise ValueError(f"{kind}: expected regularizer_interval and path_length_interval "
                             f">= 1, got {regularizer_interval} and {path_length_interval}")
        if self.mbstd_group_size < 0:
            raise ValueError(f"{kind}: expected mbstd_group_size >= 0 (0: no minibatch standard "
                             f"deviation), got {mbstd_group_size}")
        if self.path_length_weight < 0:
            raise ValueError(f"{kind}: expected path_length_weight >= 0, got "
                             f"{path_length_weight}")
        if len(tuple(data_shape)) != 3:
            raise ValueError(f"{kind}: expected images, data_shape (H, W, C), got "
                             f"{tuple(data_shape)}")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        if self.penalty is not None and not getattr(self.penalty, "lagrangian", False):
            self.penalty = LazyPenalty(self.penalty, self.regularizer_interval, self)

    def build_model(self):
        self.path_length_mean = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                                aggregation="mean", name="path_length_mean")
        super().build_model()

    def build_generator(self):
        return StyleGenerator(self.data_shape, style_dim=self.latent_dim, filters=self.filters,
                              mapping_layers=self.mapping_layers,
                              num_upsamplings=NUM_UPSAMPLINGS, name="generator")

    def build_critic(self):
        return ResidualCritic(self.filters, num_downsamplings=NUM_UPSAMPLINGS,
                              mbstd_group_size=self.mbstd_group_size,
                              spectral_norm=self.spectral_norm, outputs=self.critic_outputs,
                              num_classes=self.num_classes,
                              score_bias=self.objective.score_bias, name="critic")

    @property
    def num_styles(self):
        return NUM_STYLES

    # ------------------------------------------------------------ training
    def generate_from(self, z, labels, training):
        """Training draws: noise inputs from the stream, and style mixing with
        probability ``mixing_probability`` (a crossover in ``[1, num_styles)``);
        outside training, neither (zero noise)."""
        if not training:
            return self.generator_network(self.generator_input(z, labels), training=False)
        batch = tf.shape(z)[0]
        mix_z = self.latent_noise(batch)
        crossover = tf.random.stateless_uniform([], self.rng.next_seed(), 1, NUM_STYLES,
                                                dtype=tf.int32)
        mixes = self.rng.uniform([]) < self.mixing_probability
        crossover = tf.where(mixes, crossover, NUM_STYLES)
        return self.generator_network(
            self.generator_input(z, labels), training=training,
            mix_z=self.generator_input(mix_z, labels), crossover=crossover,
            noise_seed=self.rng.next_seed())

    def generator_losses(self, x, labels=None):
        terms = super().generator_losses(x, labels)
        if self.path_length_weight > 0:
            optimizer = getattr(self, "optimizer", None)  # None before compile: due
            due = tf.constant(True) if optimizer is None else \
                tf.equal(optimizer.iterations % self.path_length_interval, 0)
            batch = tf.shape(x)[0]
            penalty, mean = lazily(self, due, self.path_length_interval,
                                   lambda: self.path_length_penalty(batch, labels),
                                   otherwise=(tf.identity(self.path_length_mean),))
            self.path_length_mean.assign(tf.stop_gradient(mean))
            terms["generator_loss"] = terms["generator_loss"] + self.path_length_weight * penalty
        return terms

    def path_length_penalty(self, batch, labels=None):
        """``(E[(||J_w^T y|| - a)^2], a)`` on a fresh batch (StyleGAN2, Eq. 4), with
        the running mean ``a`` after this batch's step (the caller assigns it)."""
        generator = self.generator_network
        z = self.generator_input(self.latent_noise(batch), labels)
        ws = generator.styles(z)
        with tf.GradientTape() as tape:
            tape.watch(ws)
            images = generator.synthesis(ws, self.rng.next_seed())
            h, w = self.data_shape[0], self.data_shape[1]
            y = self.rng.normal(tf.shape(images)) / np.sqrt(h * w)
            total = tf.reduce_sum(images * y)
        grads = tape.gradient(total, ws)
        lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1) + 1e-8)
        mean = tf.stop_gradient(
            self.path_length_mean + 0.01 * (tf.reduce_mean(lengths) - self.path_length_mean))
        return tf.reduce_mean(tf.square(lengths - mean)), mean

    # ------------------------------------------------------------ sampling
    def generated(self, z, labels=None, truncation=1.0, mix_z=None, crossover=None,
                  noise_seed=None):
        noise_seed = tf.constant(FIXED_NOISE, tf.int32) if noise_seed is None else noise_seed
        y = self.averaged("generator")(
            self.generator_input(z, labels), training=False, truncation=truncation,
            mix_z=None if mix_z is None else self.generator_input(mix_z, labels),
            crossover=crossover, noise_seed=noise_seed)
        return self.to_data_space(y)

    def draw_samples(self, n, seed, truncation=1.0, mix_seed=-1, crossover=NUM_STYLES // 2,
                     label=-1):
        z = tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed=seed)
        mix_seed = tf.cast(mix_seed, tf.int32)
        mix_z = tf.random.stateless_normal(
            tf.stack([n, self.latent_dim]),
            seed=tf.stack([tf.maximum(mix_seed, 0), tf.constant(0x5EED, tf.int32)]))
        crossover = tf.where(mix_seed >= 0, tf.cast(crossover, tf.int32), NUM_STYLES)
        labels = None
        if self.num_classes:
            labels = self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, 1),
                                        label)
        return self.generated(z, labels, truncation, mix_z, crossover,
                              tf.random.experimental.stateless_fold_in(seed, 2))
