"""WGAN-GP: Wasserstein GAN with gradient penalty (Gulrajani et al. 2017)."""

import keras
import numpy as np
import tensorflow as tf

from zoo.base import GenerativeModel
from zoo.gan.dcgan_critic import DCGANCritic
from zoo.gan.dcgan_generator import DCGANGenerator
from zoo.nn.mlp import MLP
from zoo.gan.mlp_critic import MLPCritic
from zoo.preprocessing import dequantize
from zoo.datasets.toy import for_each_density
from zoo.registry import register



@register(
    "wgan_gp",
    family="gan",
    losses=("critic_loss", "generator_loss", "gradient_penalty", "wasserstein"),
    presets={
        **for_each_density(data_shape=(2,), latent_dim=2, hidden_units=128, num_hidden=3),
        "digits": dict(data_shape=(8, 8, 1), num_levels=17, latent_dim=32, filters=32),
        "fashion_mnist": dict(data_shape=(28, 28, 1), num_levels=256, latent_dim=64,
                              filters=32),
    },
    training={
        # Learning rates for Adam(lr, beta_1=0, beta_2=0.9): WGANGP.default_optimizer.
        **for_each_density(batch_size=256, epochs=50, learning_rate=1e-3, steps_per_epoch=400),
        "digits": dict(batch_size=64, epochs=300, learning_rate=2e-4),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=2e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class WGANGP(GenerativeModel):
    """Wasserstein GAN with gradient penalty.

    Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of
    Wasserstein GANs", NeurIPS 2017, https://arxiv.org/abs/1704.00028
    (Algorithm 1); the Wasserstein GAN itself: Arjovsky, Chintala & Bottou 2017,
    https://arxiv.org/abs/1701.07875.

    A generator G maps z ~ N(0, I) to data; a critic D scores data. The critic
    minimises ``E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2]``
    with ``x_hat`` uniformly on the segments between real and generated
    examples, so that ``E[D(x)] - E[D(G(z))]`` estimates the Wasserstein-1
    distance (up to the Lipschitz constant); the generator minimises
    ``-E[D(G(z))]``. Each ``train_step`` makes one critic update on one real
    batch, and every ``n_critic``-th step also one generator update, so that
    ``fit`` runs Algorithm 1 with one graph per step.

    Images: a DCGAN generator (dense, reshape, transposed convolutions with batch
    norm and ReLU, ``tanh``) and a DCGAN critic (strided convolutions with
    LeakyReLU, no batch norm, linear output; Sec. 4 of the paper: the penalty
    is per example, which batch norm in the critic would break). Raw images (levels in
    ``[0, num_levels)``) are dequantized, ``x + u`` with ``u ~ U[0, 1)``, and
    scaled by ``2 / num_levels`` to ``[-1, 1)``, the range of the generator's
    ``tanh``, so real and generated data have the same support. 2-D data: ReLU
    MLPs for both networks, data used as they are.

    A GAN defines no density: this model has no ``log_prob``. Evaluate it with
    sample-based metrics (FID/KID) or, on 2-D data, by comparing samples.

    Losses (``loss_names``): ``critic_loss``; ``generator_loss`` (-E[D(G(z))],
    reported on each step's generated batch);
    ``gradient_penalty`` (before its weight ``gp_weight``); ``wasserstein``
    (E[D(x)] - E[D(G(z))], the critic's estimate of W1, which falls as the
    generator improves).

    ``compile(optimizer=None, critic_optimizer=None, **kwargs)`` takes the
    generator's optimizer (default Adam(1e-4, beta_1=0, beta_2=0.9), as in the
    paper) and the critic's (default: a fresh copy of the generator's).

    Args:
        data_shape: ``(2,)`` for 2-D data or ``(H, W, C)`` for images with H and
            W divisible by 4.
        num_levels: intensity levels of raw images (None for continuous data).
        latent_dim: dimension of the latent z ~ N(0, I).
        filters: channels of the DCGAN networks (images).
        hidden_units: width of the MLPs (2-D data).
        num_hidden: hidden layers of the MLPs (2-D data).
        n_critic: critic updates per generator update.
        gp_weight: lambda, the weight of the gradient penalty.
    """

    loss_names = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")

    @staticmethod
    def default_optimizer(learning_rate=1e-4):
        """Adam(learning_rate, beta_1=0, beta_2=0.9), the optimizer of Algorithm 1.

        Momentum (beta_1 = 0.9, Keras' default) makes WGAN-GP train markedly
        worse; pass this (or your own) to ``compile``.
        """
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.0, beta_2=0.9)

    def __init__(
        self,
        data_shape=(2,),
        num_levels=None,
        latent_dim=32,
        filters=32,
        hidden_units=128,
        num_hidden=3,
        n_critic=5,
        gp_weight=10.0,
        **kwargs,
    ):
        kwargs.setdefault("name", "wgan_gp")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        if self.latent_dim < 1:
            raise ValueError(f"WGANGP: expected latent_dim >= 1, got {self.latent_dim}")
        if self.n_critic < 1:
            raise ValueError(f"WGANGP: expected n_critic >= 1, got {self.n_critic}")
        if self.gp_weight < 0:
            raise ValueError(f"WGANGP: expected gp_weight >= 0, got {self.gp_weight}")
        if len(self.data_shape) == 1:
            self.generator_network = MLP(self.hidden_units, self.num_hidden,
                                         self.data_shape[0], zero_init=False, name="generator")
            self.critic_network = MLPCritic(self.hidden_units, self.num_hidden, name="critic")
        elif len(self.data_shape) == 3:
            if self.num_levels is None:
                raise ValueError("WGANGP: images need num_levels (the raw intensity levels)")
            self.generator_network = DCGANGenerator(self.data_shape, self.filters,
                                                    name="generator")
            self.critic_network = DCGANCritic(self.filters, name="critic")
        else:
            raise ValueError(
                f"WGANGP: expected data_shape (D,) or (H, W, C), got {self.data_shape}"
            )
        self.critic_optimizer = None
        self.build_model()

    # ------------------------------------------------------------ data spaces
    def to_model_space(self, x, noise=True):
        """Raw data -> the space the networks see.

        Images: dequantized levels (``x + u``, ``u ~ U[0, 1)``; the bin centre
        ``x + 1/2`` when ``noise`` is False) scaled to ``[-1, 1)``. 2-D data: as
        they are.
        """
        if self.num_levels is None:
            return x
        levels = dequantize(x) if noise else x + 0.5
        return 2.0 * levels / self.num_levels - 1.0

    def to_data_space(self, y):
        """The inverse of ``to_model_space`` without noise: [-1, 1] -> levels in
        ``[0, num_levels - 1]`` (continuous, clipped)."""
        if self.num_levels is None:
            return y
        levels = (y + 1.0) * self.num_levels / 2.0 - 0.5
        return tf.clip_by_value(levels, 0.0, self.num_levels - 1.0)

    def latent_noise(self, batch_size, seed=None):
        """z ~ N(0, I) of shape (batch_size, latent_dim); stateless if `seed` is given."""
        shape = tf.stack([tf.cast(batch_size, tf.int32), self.latent_dim])
        if seed is None:
            return tf.random.normal(shape)
        return tf.random.stateless_normal(shape, seed=self.stateless_seed(seed))

    # ------------------------------------------------------------ the losses
    def scores(self, y):
        """Critic scores, shape (batch,), of data in model space."""
        return self.critic_network(y)[:, 0]

    def gradient_penalty(self, real, fake, eps=None):
        """E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps real + (1 - eps) fake.

        ``eps ~ U[0, 1]`` per example (Algorithm 1, lines 4-8) unless given
        (shape ``(batch,)``); ``real`` and ``fake`` are in model space.
        """
        batch = tf.shape(real)[0]
        eps_shape = tf.concat([[batch], tf.ones([len(self.data_shape)], tf.int32)], 0)
        if eps is None:
            eps = tf.random.uniform(eps_shape)
        else:
            eps = tf.reshape(tf.cast(eps, real.dtype), eps_shape)
        x_hat = eps * real + (1.0 - eps) * fake
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            scores = self.scores(x_hat)
        grads = tape.gradient(scores, x_hat)
        axes = list(range(1, len(self.data_shape) + 1))
        # The floor keeps the norm's own gradient finite at a zero gradient
        # (it changes the norm by at most 1e-10).
        norms = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(grads), axis=axes), 1e-20))
        return tf.reduce_mean(tf.square(norms - 1.0))

    def critic_terms(self, real, fake):
        """Every loss term of one critic step, as a dict keyed by ``loss_names``.

        (1) wasserstein = E[D(real)] - E[D(fake)];
        (2) gradient_penalty (see ``gradient_penalty``);
        (3) critic_loss = -wasserstein + gp_weight * gradient_penalty;
        (4) generator_loss = -E[D(fake)].
        """
        real_scores = self.scores(real)
        fake_scores = self.scores(fake)
        wasserstein = tf.reduce_mean(real_scores) - tf.reduce_mean(fake_scores)
        penalty = self.gradient_penalty(real, fake)
        return {
            "critic_loss": -wasserstein + self.gp_weight * penalty,
            "generator_loss": -tf.reduce_mean(fake_scores),
            "gradient_penalty": penalty,
            "wasserstein": wasserstein,
        }

    def critic_loss(self, real, fake):
        """E[D(fake)] - E[D(real)] + gp_weight * gradient_penalty (model space)."""
        return self.critic_terms(real, fake)["critic_loss"]

    def generator_loss(self, fake):
        """-E[D(fake)], ``fake`` generated in model space."""
        return -tf.reduce_mean(self.scores(fake))

    def compute_losses(self, x, training=False):
        """The loss terms on a raw batch `x` and as many generated examples."""
        real = self.to_model_space(x, noise=True)
        fake = self.generator_network(self.latent_noise(tf.shape(x)[0]), training=training)
        return self.critic_terms(real, fake)

    # -------------------------------------------------------------- training
    def compile(self, optimizer=None, critic_optimizer=None, **kwargs):
        """Configures training with one optimizer per network.

        Args:
            optimizer: the generator's optimizer (name, config or instance);
                default Adam(1e-4, beta_1=0, beta_2=0.9) (Algorithm 1).
            critic_optimizer: the critic's; default a fresh optimizer of the
                same class and config as ``optimizer``.
            **kwargs: passed to ``keras.Model.compile`` (``jit_compile``,
                ``steps_per_execution``, ...).
        """
        optimizer = keras.optimizers.get(optimizer if optimizer is not None
                                         else self.default_optimizer())
        if critic_optimizer is None:
            config = optimizer.get_config()
            config["name"] = f"critic_{config.get('name') or 'optimizer'}"
            critic_optimizer = type(optimizer).from_config(config)
        else:
            critic_optimizer = keras.optimizers.get(critic_optimizer)
        if critic_optimizer is optimizer:
            raise ValueError("WGANGP.compile: the critic needs its own optimizer instance, "
                             "got the generator's optimizer as critic_optimizer")
        super().compile(optimizer=optimizer, **kwargs)
        self.critic_optimizer = critic_optimizer
        # Each optimizer owns slots for its own network only; building them now
        # (not lazily inside the first step) also lets a reload restore them.
        self.optimizer.build(self.generator_network.trainable_variables)
        self.critic_optimizer.build(self.critic_network.trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.critic_optimizer is not None:
            config["critic_optimizer"] = keras.saving.serialize_keras_object(
                self.critic_optimizer)
        return config

    def compile_from_config(self, config):
        """Recompiles a reloaded model with both optimizers (their state is then
        restored by Keras from the ``optimizer`` and ``critic_optimizer``
        attributes)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def generator_turn(self):
        """True after every n_critic-th critic update (Algorithm 1, line 2 / 10)."""
        return tf.equal(self.critic_optimizer.iterations % self.n_critic, 0)

    def critic_step(self, x):
        """One critic update on a raw real batch (Algorithm 1, lines 3-9)."""
        with tf.GradientTape() as tape:
            terms = self.compute_losses(x, training=True)
            loss = self.replica_scaled(terms["critic_loss"])
        weights = self.critic_network.trainable_variables
        grads = tape.gradient(loss, weights)
        self.critic_optimizer.apply_gradients(zip(grads, weights))
        return terms

    def generator_step(self, batch_size):
        """One generator update on a fresh latent batch (Algorithm 1, lines 10-11)."""
        z = self.latent_noise(batch_size)
        with tf.GradientTape() as tape:
            loss = self.generator_loss(self.generator_network(z, training=True))
            scaled = self.replica_scaled(loss)
        weights = self.generator_network.trainable_variables
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return loss

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
        """One critic update; every ``n_critic``-th step also a generator update.

        The reported ``generator_loss`` is -E[D(G(z))] on this step's generated
        batch, scored by the critic before its update.
        """
        if self.critic_optimizer is None:
            raise RuntimeError("WGANGP: call compile() before fit()")
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

    def validate_latent(self, z, where="generate"):
        """Checks z: a float tensor of shape (batch, latent_dim), finite; returns float32."""
        if not tf.is_tensor(z):
            z = np.asarray(z)
        dtype = tf.as_dtype(z.dtype)
        if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
            raise TypeError(
                f"{self.name}.{where}: expected a float tensor z, got dtype {dtype.name}"
            )
        shape = tuple(z.shape)
        if len(shape) != 2 or (shape[1] is not None and shape[1] != self.latent_dim):
            raise ValueError(
                f"{self.name}.{where}: expected z of shape (batch, {self.latent_dim}), "
                f"got {shape}"
            )
        z = tf.cast(z, tf.float32)
        if tf.executing_eagerly() and not np.all(np.isfinite(z.numpy())):
            raise ValueError(f"{self.name}.{where}: expected finite values in z")
        return z

    def generate(self, z):
        """Latent z (batch, latent_dim) -> data: images as raw levels in
        ``[0, num_levels - 1]`` (continuous), 2-D points as they are."""
        z = self.validate_latent(z, "generate")
        return self.to_data_space(self.generator_network(z, training=False))

    def sample(self, n, seed=None):
        """`n` samples from z ~ N(0, I) drawn statelessly from `seed` (reproducible)."""
        n = self.validate_count(n)
        z = self.latent_noise(n, seed=self.stateless_seed(seed))
        return self.to_data_space(self.generator_network(z, training=False))

    def critic(self, x):
        """Critic scores (batch,) of raw data, preprocessed as in training but
        without dequantization noise (images at their bin centres)."""
        x = self.validate_inputs(x, "critic")
        return self.scores(self.to_model_space(x, noise=False))

    def serving_signatures(self):
        scalar = lambda name: tf.TensorSpec([], tf.int32, name=name)
        return {
            "generate": (
                lambda z: {"samples": self.generate(z)},
                [tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")],
            ),
            "sample": (
                lambda n, seed: {"samples": self.sample(n, seed)},
                [scalar("n"), scalar("seed")],
            ),
            "critic": (lambda x: {"score": self.critic(x)}, [self.data_spec()]),
        }
