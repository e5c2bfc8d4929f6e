"""Adversarial training: several networks, each minimising its own loss term; the
objective (:mod:`zoo.gan.objective`) and latent interpolation
(:mod:`zoo.gan.interpolation`) are mixins of the base class."""

import keras
import numpy as np
import tensorflow as tf

from zoo.adversarial import MultiNetworkTraining
from zoo.base import GenerativeModel
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.dcgan_generator import DCGANGenerator
from zoo.gan.interpolation import LatentInterpolation
from zoo.gan.mlp_critic import MLPCritic
from zoo.gan.objective import AdversarialObjective
from zoo.nn.mlp import MLP
from zoo.preprocessing import dequantize
from zoo.validation import on_batches


class AdversarialModel(AdversarialObjective, LatentInterpolation, MultiNetworkTraining,
                       GenerativeModel):
    """A generator G trained against a critic D, each by its own optimizer.

    The mechanism every adversarial model of the zoo shares (GANs under each
    distance, later the adversarial autoencoder and VAE-GAN):

    * ``optimizer_terms``: network name -> the loss term its optimizer minimises,
      each network with its own optimizer (:class:`~zoo.adversarial.MultiNetworkTraining`).
      Each network lives in ``self.N_network``.
    * The schedule: each ``train_step`` updates the ``critic_networks`` on the
      real batch, and every ``n_critic``-th step the other networks on a fresh
      latent batch, inside one compiled step (a ``tf.cond``).
    * ``adversarial_loss`` (:mod:`zoo.gan.losses`) and ``regularizer``
      (:mod:`zoo.gan.regularizers`, its term weighted by ``regularizer_weight``)
      are plug-ins chosen by name. A loss on scores sees one critic score per
      example; a distance between batches (MMD, sliced Wasserstein) sees the
      critic's ``critic_outputs`` features of the real and the generated batch,
      and so does the generator's loss.
    * ``learned_critic=False``: no critic at all; the generator minimises a
      distance between batches on the data itself (GMMN, sliced Wasserstein),
      one generator update per step.
    * ``ema_decay > 0`` keeps an exponential moving average of the generator's
      weights (:class:`~zoo.nn.weight_average.WeightAverage`), which ``sample``,
      ``generate`` and the export use instead of the last iterate.
    * ``num_classes > 0``: class-conditional generation. The generator sees
      ``[z, one_hot(y)]`` (Mirza & Osindero 2014,
      https://arxiv.org/abs/1411.1784); the critic is a projection
      discriminator, ``D(x, y) = psi(phi(x)) + <V one_hot(y), phi(x)>`` with
      ``phi`` its last hidden features (Miyato & Koyama, "cGANs with Projection
      Discriminator", ICLR 2018, https://arxiv.org/abs/1802.05637, Eq. 3).
      Training batches are ``(x, label)``; each generated batch takes the real
      batch's labels, so a penalty's interpolates keep one class. ``generate``
      and ``critic`` take ``labels``; ``sample`` takes ``label`` (-1: classes
      uniformly at random, the default).

    Networks: on images, a DCGAN generator (dense, transposed convolutions with
    batch norm, ``tanh``) and a DCGAN critic (strided convolutions, LeakyReLU, no
    batch norm, so penalties per example stay per example); on vectors, ReLU
    MLPs. Raw images (levels in ``[0, num_levels)``) are dequantized, ``x + u``
    with ``u ~ U[0, 1)``, and scaled by ``2 / num_levels`` to ``[-1, 1)``, the
    range of the generator's ``tanh``; vectors are used as they are.

    A GAN defines no density (``likelihood = "none"``): evaluate it with
    sample-based metrics.

    Loss terms: ``critic_loss``, ``generator_loss`` (on the step's generated
    batch, scored before the critic's update), the regularizer's penalty (before
    its weight), and what the adversarial loss reports (e.g. ``wasserstein``).

    Args:
        data_shape: ``(D,)`` or ``(H, W, C)`` with H and W divisible by 4.
        num_levels: intensity levels of raw images (None for continuous data).
        latent_dim: dimension of the latent z ~ N(0, I).
        filters: channels of the DCGAN networks (images).
        hidden_units: width of the MLPs (vectors).
        num_hidden: hidden layers of the MLPs (vectors).
        n_critic: critic updates per generator update.
        adversarial_loss: a name in ``zoo.gan.losses.ADVERSARIAL_LOSSES``.
        divergence: for ``adversarial_loss="f_divergence"`` only, a name in
            ``zoo.gan.losses.F_DIVERGENCES``.
        bandwidths: for ``adversarial_loss="mmd"`` only, the RBF kernels'
            standard deviations; default ``(1, 2, 4, 8, 16)`` on a critic's
            features (Li et al. 2017), ``(0.1, 0.2, 0.5, 1, 2, 5) * sqrt(D / 2)``
            on D-dimensional data (model space) without a critic.
        num_projections: for ``adversarial_loss="sliced_wasserstein"`` only,
            random directions per estimate (default 128).
        learned_critic: False for a distance between batches computed on the
            data itself, with no critic network.
        critic_outputs: features the critic gives each example (1 for a loss
            on scores).
        regularizer: a name in ``zoo.gan.regularizers.REGULARIZERS``.
        regularizer_weight: the weight of its penalty in ``critic_loss`` (for
            an augmented Lagrangian, its quadratic weight ``rho``).
        weight_clip: for a learned Wasserstein or MMD critic only, clip every
            critic weight to ``[-c, c]`` after each critic update (Arjovsky et
            al. 2017, Algorithm 1; Li et al. 2017); 0 turns it off.
        spectral_norm: spectrally normalise every critic layer
            (:class:`~zoo.nn.spectral_norm.SpectralNorm`, Miyato et al. 2018).
        ema_decay: decay of the generator's weight average; 0 turns it off.
        num_classes: classes of a class-conditional model; 0: unconditional.
    """

    family = "gan"
    conditional = True  # with a projection critic (check_critic)
    averaged_networks = ("generator",)
    draws_training_noise = True
    optimizer_terms = {"generator": "generator_loss", "critic": "critic_loss"}
    critic_networks = ("critic",)

    def __init__(self, data_shape=(2,), num_levels=None, latent_dim=32, filters=32,
                 hidden_units=128, num_hidden=3, n_critic=1, adversarial_loss="non_saturating",
                 divergence=None, bandwidths=None, num_projections=None, learned_critic=True,
                 critic_outputs=1, regularizer="none", regularizer_weight=0.0, weight_clip=0.0,
                 spectral_norm=False, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.n_critic = int(n_critic)
        self.adversarial_loss = adversarial_loss
        self.regularizer = regularizer
        self.regularizer_weight = float(regularizer_weight)
        self.divergence = divergence
        self.bandwidths = None if bandwidths is None else [float(b) for b in bandwidths]
        self.num_projections = None if num_projections is None else int(num_projections)
        self.learned_critic = bool(learned_critic)
        self.critic_outputs = int(critic_outputs)
        self.weight_clip = float(weight_clip)
        self.spectral_norm = bool(spectral_norm)
        if self.latent_dim < 1:
            raise ValueError(f"{kind}: expected latent_dim >= 1, got {self.latent_dim}")
        if self.n_critic < 1:
            raise ValueError(f"{kind}: expected n_critic >= 1, got {self.n_critic}")
        if self.regularizer_weight < 0:
            raise ValueError(f"{kind}: expected a regularizer weight >= 0, got "
                             f"{self.regularizer_weight}")
        self.choose_objective(kind, weight_clip)
        if len(self.data_shape) == 3 and self.num_levels is None:
            raise ValueError(f"{kind}: images need num_levels (the raw intensity levels)")
        if len(self.data_shape) not in (1, 3):
            raise ValueError(f"{kind}: expected data_shape (D,) or (H, W, C), got "
                             f"{self.data_shape}")
        self.generator_network = self.build_generator()
        if self.learned_critic:
            self.critic_network = self.build_critic()
        else:  # the generator alone, minimising a distance on the data itself
            self.critic_network = None
            self.optimizer_terms = {"generator": "generator_loss"}
            self.critic_networks = ()
        self.lagrange_multiplier = None
        if getattr(self.penalty, "lagrangian", False):
            # Each replica moves it by its own batch's constraint: their mean.
            self.lagrange_multiplier = self.add_weight(
                shape=(), initializer="zeros", trainable=False, aggregation="mean",
                name="lagrange_multiplier")
        self.check_optimizer_terms()
        self.build_model()

    # ------------------------------------------------------------ structure
    def build_generator(self):
        if len(self.data_shape) == 3:
            return DCGANGenerator(self.data_shape, self.filters, name="generator")
        return MLP(self.hidden_units, self.num_hidden, self.data_shape[0], zero_init=False,
                   name="generator")

    def critic_options(self):
        """The options of the critic's head (:class:`~zoo.gan.critic.Critic`)."""
        return dict(spectral_norm=self.spectral_norm, outputs=self.critic_outputs,
                    num_classes=self.num_classes, score_bias=self.objective.score_bias,
                    name="critic")

    def build_critic(self):
        options = self.critic_options()
        if len(self.data_shape) == 3:
            return DCGANCritic(self.filters, **options)
        return MLPCritic(self.hidden_units, self.num_hidden, **options)

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    # ------------------------------------------------------------ data spaces
    def to_model_space(self, x, noise=True):
        """Raw data -> the space the networks see.

        Images: dequantized levels (``x + u``, ``u ~ U[0, 1)`` from the training
        stream; the bin centre ``x + 1/2`` when ``noise`` is False) scaled to
        ``[-1, 1)``. Vectors: as they are.
        """
        if self.num_levels is None:
            return x
        levels = dequantize(x, self.rng.next_seed()) if noise else x + 0.5
        return 2.0 * levels / self.num_levels - 1.0

    def to_data_space(self, y):
        """The inverse of ``to_model_space`` without noise: [-1, 1] -> levels in
        ``[0, num_levels - 1]`` (continuous, clipped)."""
        if self.num_levels is None:
            return y
        levels = (y + 1.0) * self.num_levels / 2.0 - 0.5
        return tf.clip_by_value(levels, 0.0, self.num_levels - 1.0)

    def latent_noise(self, batch_size, seed=None):
        """z ~ N(0, I) of shape (batch_size, latent_dim): from the stateless `seed`,
        or from the training stream if None."""
        shape = tf.stack([tf.cast(batch_size, tf.int32), self.latent_dim])
        if seed is None:
            return self.rng.normal(shape)
        return tf.random.stateless_normal(shape, seed=self.stateless_seed(seed))

    # ------------------------------------------------------------ the losses
    def scores(self, y, training=False, labels=None, timesteps=None):
        """Critic scores, shape (batch,), of data in model space (`training`: a
        training call, which advances a spectral norm's power iteration), of the
        classes `labels` for a conditional model and at the `timesteps` for a
        critic conditioned on them (each repeated if `y` holds several batches'
        worth, as a penalty's points may)."""
        if labels is not None:
            labels = tf.tile(labels, [tf.shape(y)[0] // tf.shape(labels)[0]])
        if timesteps is None:  # a critic's call without them: the unconditioned one's
            return self.critic_network(y, labels=labels, training=training)[:, 0]
        timesteps = tf.tile(timesteps, [tf.shape(y)[0] // tf.shape(timesteps)[0]])
        return self.critic_network(y, labels=labels, timesteps=timesteps,
                                   training=training)[:, 0]

    # ------------------------------------------------------------ classes
    def generator_input(self, z, labels):
        """``z``, and for a conditional model ``[z, one_hot(labels)]``."""
        if not self.num_classes:
            return z
        return tf.concat([z, tf.one_hot(labels, self.num_classes, dtype=z.dtype)], axis=-1)

    def generate_from(self, z, labels, training):
        """The generator's output (model space) for latents and labels."""
        return self.generator_network(self.generator_input(z, labels), training=training)

    def features(self, y, training=False):
        """What a distance between batches compares, shape (batch, k): the
        critic's features, or without a critic the flattened data."""
        if self.critic_network is None:
            return tf.reshape(y, [-1, int(np.prod(self.data_shape))])
        return self.critic_network(y, training=training)

    def compute_losses(self, x, training=False, labels=None):
        """The loss terms on a raw batch `x` and as many generated examples (for
        a conditional model, of the classes `labels`, drawn at random if None)."""
        if self.num_classes and labels is None:
            labels = self.random_labels(tf.shape(x)[0])
        real = self.to_model_space(x, noise=True)
        fake = self.generate_from(self.latent_noise(tf.shape(x)[0]), labels, training)
        return self.critic_terms(real, fake, training, labels)

    def generator_losses(self, x, labels=None):
        """The terms the generator-side networks minimise, on a fresh latent batch
        as large as the raw real batch `x` (which a distance between batches
        compares it with), of the real batch's classes `labels`."""
        fake = self.generate_from(self.latent_noise(tf.shape(x)[0]), labels, True)
        if self.objective.pairwise:
            return self.batch_terms(self.to_model_space(x, noise=True), fake, True)
        return {"generator_loss": self.objective.generator_loss(self.scores(fake, True, labels))}

    # -------------------------------------------------------------- training
    @staticmethod
    def default_optimizer(learning_rate=2e-4):
        """Adam(learning_rate, beta_1=0.5), the DCGAN optimizer (Radford et al. 2016)."""
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.5)

    def critic_step(self, x, labels=None):
        """One update of the critic networks on a raw real batch (of classes
        `labels`); all loss terms."""
        with tf.GradientTape(persistent=len(self.critic_networks) > 1) as tape:
            terms = self.compute_losses(x, training=True, labels=labels)
            scaled = {n: self.replica_scaled(terms[self.optimizer_terms[n]])
                      for n in self.critic_networks}
        self.update(self.critic_networks, scaled, tape)
        if self.lagrange_multiplier is not None:
            # lambda <- lambda + rho h: gradient ascent on the multiplier.
            self.lagrange_multiplier.assign_add(
                self.regularizer_weight * tf.stop_gradient(terms[self.penalty.name]))
        if self.weight_clip > 0:
            for weight in self.critic_network.trainable_variables:
                weight.assign(tf.clip_by_value(weight, -self.weight_clip, self.weight_clip))
        return terms

    def generator_step(self, x, labels=None):
        """One update of the other networks on a fresh latent batch (and the raw
        real batch `x`, of classes `labels`), then of the generator's weight
        average; returns their loss terms."""
        networks = [n for n in self.optimizer_terms if n not in self.critic_networks]
        with tf.GradientTape(persistent=len(networks) > 1) as tape:
            terms = self.generator_losses(x, labels)
            scaled = {n: self.replica_scaled(terms[self.optimizer_terms[n]]) for n in networks}
        self.update(networks, scaled, tape)
        self.update_averages()
        return terms

    def generator_turn(self):
        """True after every n_critic-th critic update (WGAN-GP's Algorithm 1, line 2)."""
        counter = self.optimizer_for(self.critic_networks[0]).iterations
        return tf.equal(counter % self.n_critic, 0)

    def maybe_generator_step(self, x, labels=None):
        """A generator update if it is the generator's turn, in one graph (tf.cond).

        Under a strategy whose updates synchronise through ``merge_call`` (e.g.
        MirroredStrategy on CPUs), no synchronisation may happen inside a
        replica-context ``tf.cond``; there the condition is taken in the
        cross-replica context and the update runs in each replica from there
        (as Keras' LossScaleOptimizer does).
        """
        turn = self.generator_turn()
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(turn, lambda: self.generator_step(x, labels)["generator_loss"],
                    lambda: tf.constant(0.0))
            return

        def cross_replica(strategy, turn, x, labels):
            # Every replica reads the same counter: take the first's decision.
            turn = strategy.experimental_local_results(turn)[0]

            def update():
                strategy.extended.call_for_each_replica(self.generator_step, args=(x, labels))

            tf.cond(turn, update, lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(turn, x, labels))

    def train_step(self, data):
        """One critic update; every ``n_critic``-th step also a generator update
        (without a critic, one generator update)."""
        if any(o is None for o in self.all_optimizers()):
            raise RuntimeError(f"{type(self).__name__}: call compile() before fit()")
        x, labels = self.unpack_labels(data)
        if not self.critic_networks:
            return self.update_trackers(self.generator_step(x))
        terms = self.critic_step(x, labels)
        self.maybe_generator_step(x, labels)
        return self.update_trackers(terms)

    def test_step(self, data):
        """The loss terms on a batch (a conditional model's at the batch's labels
        if it has them, else at random ones)."""
        x, labels = self.unpack_labels(data, required=False)
        return self.update_trackers(self.compute_losses(x, labels=labels))

    # ------------------------------------------------------------ public API
    def call(self, x, training=False):
        """The critic's view of raw `x` (``critic_output``) and generated data
        at z = 0 (touches every weight)."""
        z = tf.zeros(tf.stack([tf.shape(x)[0], self.latent_dim]))
        labels = tf.zeros([tf.shape(x)[0]], tf.int32) if self.num_classes else None
        outputs = {"generated": self.to_data_space(self.generate_from(z, labels, training))}
        if self.critic_network is not None:
            outputs[self.critic_output] = self.critic_view(
                self.to_model_space(x, noise=False), labels)
        return outputs

    @property
    def critic_output(self):
        """The name of the critic's output: ``score`` or ``features``."""
        return "features" if self.objective.pairwise else "score"

    def critic_view(self, y, labels=None):
        """What the critic signature returns for model-space `y`: scores or features."""
        return self.features(y) if self.objective.pairwise else self.scores(y, labels=labels)

    def generated(self, z, labels=None):
        """Data from latents (and labels), by the sampling weights (the average,
        if kept)."""
        y = self.averaged("generator")(self.generator_input(z, labels), training=False)
        return self.to_data_space(y)

    @on_batches("latent")
    def generate(self, z, labels=None):
        """Latent z (batch, latent_dim) -> data: images as raw levels in
        ``[0, num_levels - 1]`` (continuous), vectors as they are. A conditional
        model needs `labels`, ints (batch,) in ``[0, num_classes)``."""
        z = self.check_batch(z, "generate", (self.latent_dim,), what="z")
        return self.generated(z, self.check_labels(labels, z, "generate"))

    def draw_samples(self, n, seed, label=-1):
        z = tf.random.stateless_normal(tf.stack([n, self.latent_dim]), seed=seed)
        if not self.num_classes:
            return self.generated(z)
        return self.generated(z, self.sample_labels(
            n, tf.random.experimental.stateless_fold_in(seed, 1), label))

    @on_batches("data")
    def critic(self, x, labels=None):
        """The critic's scores (batch,), or features (batch, critic_outputs) for
        a distance between batches, of raw data (of classes `labels` for a
        conditional model), preprocessed as in training but without
        dequantization noise (images at their bin centres)."""
        if self.critic_network is None:
            raise ValueError(f"{type(self).__name__}: this model has no critic "
                             f"(learned_critic=False)")
        x = self.validate_inputs(x, "critic")
        labels = self.check_labels(labels, x, "critic")
        return self.critic_view(self.to_model_space(x, noise=False), labels)

    def data_signatures(self):
        z = tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")
        if self.num_classes:
            label = tf.TensorSpec((None,), tf.int32, name="label")
            signatures = {"generate": (lambda z, label: {"samples": self.generate(z, label)},
                                       [z, label])}
            critic = (lambda x, label: {self.critic_output: self.critic(x, label)},
                      [self.data_spec(), label])
        else:
            signatures = {"generate": (lambda z: {"samples": self.generate(z)}, [z])}
            critic = (lambda x: {self.critic_output: self.critic(x)}, [self.data_spec()])
        if self.critic_network is not None:
            signatures["critic"] = critic
        return signatures
