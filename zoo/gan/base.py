"""Adversarial training: several networks, each minimising its own loss term."""

import keras
import tensorflow as tf

from zoo.base import GenerativeModel, on_batches
from zoo.gan import losses, regularizers
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.dcgan_generator import DCGANGenerator
from zoo.gan.mlp_critic import MLPCritic
from zoo.nn.mlp import MLP
from zoo.nn.weight_average import WeightAverage
from zoo.preprocessing import dequantize


class AdversarialModel(GenerativeModel):
    """A generator G trained against a critic D, each by its own optimizer.

    The mechanism every adversarial model of the zoo shares (GANs under each
    distance, later the adversarial autoencoder and VAE-GAN):

    * ``optimizer_terms``: network name -> the loss term its optimizer minimises.
      The first network's optimizer is ``self.optimizer``; each other network
      ``N`` has its own, ``self.N_optimizer`` (``compile(N_optimizer=...)``,
      default a fresh copy of the first). Each network lives in ``self.N_network``.
    * The schedule: each ``train_step`` updates the ``critic_networks`` on the
      real batch, and every ``n_critic``-th step the other networks on a fresh
      latent batch, inside one compiled step (a ``tf.cond``).
    * ``adversarial_loss`` (:mod:`zoo.gan.losses`) and ``regularizer``
      (:mod:`zoo.gan.regularizers`, its term weighted by ``regularizer_weight``)
      are plug-ins chosen by name.
    * ``ema_decay > 0`` keeps an exponential moving average of the generator's
      weights (:class:`~zoo.nn.weight_average.WeightAverage`), which ``sample``,
      ``generate`` and the export use instead of the last iterate.

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
        regularizer: a name in ``zoo.gan.regularizers.REGULARIZERS``.
        regularizer_weight: the weight of its penalty in ``critic_loss``.
        weight_clip: for the Wasserstein loss only, clip every critic weight to
            ``[-c, c]`` after each critic update (Arjovsky et al. 2017,
            Algorithm 1); 0 turns it off.
        spectral_norm: spectrally normalise every critic layer
            (:class:`~zoo.nn.spectral_norm.SpectralNorm`, Miyato et al. 2018).
        ema_decay: decay of the generator's weight average; 0 turns it off.
    """

    family = "gan"
    optimizer_terms = {"generator": "generator_loss", "critic": "critic_loss"}
    critic_networks = ("critic",)

    def __init__(self, data_shape=(2,), num_levels=None, latent_dim=32, filters=32,
                 hidden_units=128, num_hidden=3, n_critic=1, adversarial_loss="non_saturating",
                 divergence=None, regularizer="none", regularizer_weight=0.0, weight_clip=0.0,
                 spectral_norm=False, ema_decay=0.0, **kwargs):
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
        self.weight_clip = float(weight_clip)
        self.spectral_norm = bool(spectral_norm)
        self.ema_decay = float(ema_decay)
        if self.latent_dim < 1:
            raise ValueError(f"{kind}: expected latent_dim >= 1, got {self.latent_dim}")
        if self.n_critic < 1:
            raise ValueError(f"{kind}: expected n_critic >= 1, got {self.n_critic}")
        if self.regularizer_weight < 0:
            raise ValueError(f"{kind}: expected a regularizer weight >= 0, got "
                             f"{self.regularizer_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"{kind}: expected 0 <= ema_decay < 1, got {self.ema_decay}")
        if (divergence is None) == (adversarial_loss == "f_divergence"):
            raise ValueError(f"{kind}: divergence goes with adversarial_loss='f_divergence' "
                             f"(one of {sorted(losses.F_DIVERGENCES)}), got "
                             f"adversarial_loss={adversarial_loss!r}, divergence={divergence!r}")
        if self.weight_clip < 0 or (self.weight_clip > 0 and adversarial_loss != "wasserstein"):
            raise ValueError(f"{kind}: weight_clip (>= 0) bounds a Wasserstein critic; got "
                             f"weight_clip={weight_clip} with adversarial_loss="
                             f"{adversarial_loss!r}")
        self.objective = losses.get(adversarial_loss, **(
            {"divergence": divergence} if divergence is not None else {}))
        self.penalty = regularizers.get(regularizer)
        if len(self.data_shape) == 3 and self.num_levels is None:
            raise ValueError(f"{kind}: images need num_levels (the raw intensity levels)")
        if len(self.data_shape) not in (1, 3):
            raise ValueError(f"{kind}: expected data_shape (D,) or (H, W, C), got "
                             f"{self.data_shape}")
        self.generator_network = self.build_generator()
        self.critic_network = self.build_critic()
        self.generator_average = (WeightAverage(self.ema_decay, name="generator_average")
                                  if self.ema_decay > 0 else None)
        for network in list(self.optimizer_terms)[1:]:
            setattr(self, f"{network}_optimizer", None)
        self.check_optimizer_terms()
        self.build_model()

    # ------------------------------------------------------------ structure
    @staticmethod
    def loss_names_for(adversarial_loss, regularizer):
        """The loss terms of an adversarial loss and a regularizer, by name."""
        names = ("critic_loss", "generator_loss")
        penalty = regularizers.REGULARIZERS[regularizer]
        if penalty is not None:
            names += (penalty.name,)
        return names + tuple(losses.ADVERSARIAL_LOSSES[adversarial_loss].reported)

    @property
    def loss_names(self):
        return self.loss_names_for(self.adversarial_loss, self.regularizer)

    @classmethod
    def default_loss_names(cls):
        """The loss terms of the class's defaults (what ``zoo list`` shows)."""
        return cls.loss_names_for("non_saturating", "none")

    def check_optimizer_terms(self):
        """Every network of ``optimizer_terms`` exists and minimises a loss term."""
        kind = type(self).__name__
        for network, term in self.optimizer_terms.items():
            if not isinstance(getattr(self, f"{network}_network", None), keras.layers.Layer):
                raise ValueError(f"{kind}.optimizer_terms names the network {network!r}, "
                                 f"but the model has no {network}_network layer")
            if term not in self.loss_names:
                raise ValueError(f"{kind}.optimizer_terms: network {network!r} minimises "
                                 f"{term!r}, which is not one of its loss terms "
                                 f"{list(self.loss_names)}")
        unknown = set(self.critic_networks) - set(self.optimizer_terms)
        if unknown or len(self.critic_networks) == len(self.optimizer_terms):
            raise ValueError(f"{kind}.critic_networks must name some, not all, networks of "
                             f"optimizer_terms {list(self.optimizer_terms)}; got "
                             f"{list(self.critic_networks)}")

    def build_generator(self):
        if len(self.data_shape) == 3:
            return DCGANGenerator(self.data_shape, self.filters, name="generator")
        return MLP(self.hidden_units, self.num_hidden, self.data_shape[0], zero_init=False,
                   name="generator")

    def build_critic(self):
        # A Wasserstein critic is defined up to a constant that no loss sees, so its
        # score has no bias; the other losses see constants.
        options = dict(spectral_norm=self.spectral_norm,
                       score_bias=self.adversarial_loss != "wasserstein", name="critic")
        if len(self.data_shape) == 3:
            return DCGANCritic(self.filters, **options)
        return MLPCritic(self.hidden_units, self.num_hidden, **options)

    def build_weights(self):
        super().build_weights()
        if self.generator_average is not None:
            self.generator_average.track(self.generator_network)

    @property
    def latent_shape(self):
        return (self.latent_dim,)

    def network(self, name):
        return getattr(self, f"{name}_network")

    def optimizer_for(self, name):
        """The optimizer of network `name` (None before ``compile``)."""
        if name == next(iter(self.optimizer_terms)):
            return getattr(self, "optimizer", None)
        return getattr(self, f"{name}_optimizer")

    def all_optimizers(self):
        return [self.optimizer_for(name) for name in self.optimizer_terms]

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
    def scores(self, y, training=False):
        """Critic scores, shape (batch,), of data in model space (`training`: a
        training call, which advances a spectral norm's power iteration)."""
        return self.critic_network(y, training=training)[:, 0]

    def critic_terms(self, real, fake, training=False):
        """Every loss term of one critic step (model-space batches), keyed by
        ``loss_names``: the adversarial loss's two losses and reports, and the
        regularizer's penalty, weighted into ``critic_loss``."""
        real_scores = self.scores(real, training)
        fake_scores = self.scores(fake, training)
        terms = {
            "critic_loss": self.objective.critic_loss(real_scores, fake_scores),
            "generator_loss": self.objective.generator_loss(fake_scores),
            **self.objective.report(real_scores, fake_scores),
        }
        if self.penalty is not None:
            penalty = self.penalty(lambda y: self.scores(y, training), real, fake, self.rng)
            terms[self.penalty.name] = penalty
            terms["critic_loss"] += self.regularizer_weight * penalty
        return terms

    def critic_loss(self, real, fake):
        """The critic's loss on model-space batches, penalty included."""
        return self.critic_terms(real, fake)["critic_loss"]

    def generator_loss(self, fake):
        """The generator's loss on a generated batch in model space."""
        return self.objective.generator_loss(self.scores(fake))

    def compute_losses(self, x, training=False):
        """The loss terms on a raw batch `x` and as many generated examples."""
        real = self.to_model_space(x, noise=True)
        fake = self.generator_network(self.latent_noise(tf.shape(x)[0]), training=training)
        return self.critic_terms(real, fake, training)

    def generator_losses(self, batch_size):
        """The terms the generator-side networks minimise, on a fresh latent batch."""
        fake = self.generator_network(self.latent_noise(batch_size), training=True)
        return {"generator_loss": self.objective.generator_loss(self.scores(fake, True))}

    # -------------------------------------------------------------- training
    @staticmethod
    def default_optimizer(learning_rate=2e-4):
        """Adam(learning_rate, beta_1=0.5), the DCGAN optimizer (Radford et al. 2016)."""
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.5)

    def compile(self, optimizer=None, **kwargs):
        """Configures training with one optimizer per network.

        Args:
            optimizer: the first network's optimizer (name, config or instance);
                default ``default_optimizer()``.
            **kwargs: ``N_optimizer`` for each other network ``N`` of
                ``optimizer_terms`` (default: a fresh optimizer of the same class
                and config as `optimizer`); the rest goes to ``keras.Model.compile``
                (``jit_compile``, ``steps_per_execution``, ...).
        """
        first, *others = self.optimizer_terms
        optimizer = keras.optimizers.get(optimizer if optimizer is not None
                                         else self.default_optimizer())
        chosen = {}
        for network in others:
            given = kwargs.pop(f"{network}_optimizer", None)
            if given is None:
                config = optimizer.get_config()
                config["name"] = f"{network}_{config.get('name') or 'optimizer'}"
                chosen[network] = type(optimizer).from_config(config)
            else:
                chosen[network] = keras.optimizers.get(given)
            if chosen[network] is optimizer:
                raise ValueError(f"{type(self).__name__}.compile: the {network} needs its own "
                                 f"optimizer instance, got the {first}'s optimizer as "
                                 f"{network}_optimizer")
        super().compile(optimizer=optimizer, **kwargs)
        for network, network_optimizer in chosen.items():
            setattr(self, f"{network}_optimizer", network_optimizer)
        # Each optimizer owns slots for its own network only; building them now
        # (not lazily inside the first step) also lets a reload restore them.
        for network in self.optimizer_terms:
            self.optimizer_for(network).build(self.network(network).trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            for network in list(self.optimizer_terms)[1:]:
                network_optimizer = self.optimizer_for(network)
                if network_optimizer is not None:
                    config[f"{network}_optimizer"] = keras.saving.serialize_keras_object(
                        network_optimizer)
        return config

    def compile_from_config(self, config):
        """Recompiles a reloaded model with every optimizer (their state is then
        restored by Keras from the ``optimizer`` and ``N_optimizer`` attributes)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def update(self, networks, terms, tape):
        """Applies each network's optimizer to the gradient of its loss term."""
        for network in networks:
            weights = self.network(network).trainable_variables
            grads = tape.gradient(terms[network], weights)
            self.optimizer_for(network).apply_gradients(zip(grads, weights))

    def critic_step(self, x):
        """One update of the critic networks on a raw real batch; all loss terms."""
        with tf.GradientTape(persistent=len(self.critic_networks) > 1) as tape:
            terms = self.compute_losses(x, training=True)
            scaled = {n: self.replica_scaled(terms[self.optimizer_terms[n]])
                      for n in self.critic_networks}
        self.update(self.critic_networks, scaled, tape)
        if self.weight_clip > 0:
            for weight in self.critic_network.trainable_variables:
                weight.assign(tf.clip_by_value(weight, -self.weight_clip, self.weight_clip))
        return terms

    def generator_step(self, batch_size):
        """One update of the other networks on a fresh latent batch, then of the
        generator's weight average; returns the generator's loss."""
        networks = [n for n in self.optimizer_terms if n not in self.critic_networks]
        with tf.GradientTape(persistent=len(networks) > 1) as tape:
            terms = self.generator_losses(batch_size)
            scaled = {n: self.replica_scaled(terms[self.optimizer_terms[n]]) for n in networks}
        self.update(networks, scaled, tape)
        if self.generator_average is not None:
            self.generator_average.update(self.generator_network, self.optimizer.iterations)
        return terms["generator_loss"]

    def generator_turn(self):
        """True after every n_critic-th critic update (WGAN-GP's Algorithm 1, line 2)."""
        counter = self.optimizer_for(self.critic_networks[0]).iterations
        return tf.equal(counter % self.n_critic, 0)

    def maybe_generator_step(self, batch_size):
        """A generator update if it is the generator's turn, in one graph (tf.cond).

        Under a strategy whose updates synchronise through ``merge_call`` (e.g.
        MirroredStrategy on CPUs), no synchronisation may happen inside a
        replica-context ``tf.cond``; there the condition is taken in the
        cross-replica context and the update runs in each replica from there
        (as Keras' LossScaleOptimizer does).
        """
        turn = self.generator_turn()
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(turn, lambda: self.generator_step(batch_size), lambda: tf.constant(0.0))
            return

        def cross_replica(strategy, turn, batch_size):
            # Every replica reads the same counter: take the first's decision.
            turn = strategy.experimental_local_results(turn)[0]

            def update():
                strategy.extended.call_for_each_replica(self.generator_step, args=(batch_size,))

            tf.cond(turn, update, lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(turn, batch_size))

    def train_step(self, data):
        """One critic update; every ``n_critic``-th step also a generator update."""
        if any(o is None for o in self.all_optimizers()):
            raise RuntimeError(f"{type(self).__name__}: call compile() before fit()")
        x = self.unpack(data)
        terms = self.critic_step(x)
        self.maybe_generator_step(tf.shape(x)[0])
        return self.update_trackers(terms)

    # ------------------------------------------------------------ public API
    def call(self, x, training=False):
        """Critic scores of raw `x` and generated data at z = 0 (touches every weight)."""
        scores = self.scores(self.to_model_space(x, noise=False))
        z = tf.zeros(tf.stack([tf.shape(x)[0], self.latent_dim]))
        generated = self.generator_network(z, training=training)
        return {"score": scores, "generated": self.to_data_space(generated)}

    def generated(self, z):
        """Data from latents, by the sampling weights (the average, if kept)."""
        if self.generator_average is None:
            y = self.generator_network(z, training=False)
        else:
            y = self.generator_average.call_averaged(self.generator_network, z, training=False)
        return self.to_data_space(y)

    @on_batches("latent")
    def generate(self, z):
        """Latent z (batch, latent_dim) -> data: images as raw levels in
        ``[0, num_levels - 1]`` (continuous), vectors as they are."""
        return self.generated(self.check_batch(z, "generate", (self.latent_dim,), what="z"))

    def draw_samples(self, n, seed):
        return self.generated(tf.random.stateless_normal(tf.stack([n, self.latent_dim]),
                                                         seed=seed))

    @on_batches("data")
    def critic(self, x):
        """Critic scores (batch,) of raw data, preprocessed as in training but
        without dequantization noise (images at their bin centres)."""
        x = self.validate_inputs(x, "critic")
        return self.scores(self.to_model_space(x, noise=False))

    def data_signatures(self):
        return {
            "generate": (lambda z: {"samples": self.generate(z)},
                         [tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")]),
            "critic": (lambda x: {"score": self.critic(x)}, [self.data_spec()]),
        }
