"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017): a grid of discrete codes,
each the index of its nearest vector in a learned codebook."""

import math

import keras
import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.nn.resnet import residual_relu
from zoo.precision import network
from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder
from zoo.validation import on_batches


def code_perplexity(codes, num_embeddings):
    """exp(-sum_k p_k log p_k) of the codes' empirical distribution p (0 log 0 = 0):
    how many of the `num_embeddings` codes are in use, from 1 (one code) to K
    (uniform usage)."""
    counts = tf.reduce_sum(tf.one_hot(tf.reshape(codes, [-1]), num_embeddings), axis=0)
    p = counts / tf.maximum(tf.reduce_sum(counts), 1.0)
    entropy = -tf.reduce_sum(p * tf.math.log(tf.where(p > 0, p, 1.0)))
    return tf.exp(entropy)


@keras.saving.register_keras_serializable(package="zoo")
class ResidualStack(keras.layers.Layer):
    """Residual blocks ``h + conv1x1(relu(conv3x3(relu(h))))``, then a ReLU (the
    blocks of the paper's Sec. 4.1).

    Args:
        filters: channels of the input and output.
        hidden_units: channels inside a block.
        num_blocks: blocks.
    """

    def __init__(self, filters, hidden_units, num_blocks, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.num_blocks = int(num_blocks)
        self.blocks = [
            (keras.layers.Conv2D(self.hidden_units, 3, padding="same", name=f"block_{i}_a"),
             keras.layers.Conv2D(self.filters, 1, name=f"block_{i}_b"))
            for i in range(self.num_blocks)
        ]

    def build(self, input_shape):
        hidden = tuple(input_shape[:-1]) + (self.hidden_units,)
        for a, b in self.blocks:
            a.build(input_shape)
            b.build(hidden)

    def call(self, h):
        for a, b in self.blocks:
            h = h + b(keras.ops.relu(a(residual_relu(h))))
        return residual_relu(h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "hidden_units": self.hidden_units, "num_blocks": self.num_blocks}


@keras.saving.register_keras_serializable(package="zoo")
@network
class VQEncoder(keras.layers.Layer):
    """Images -> z_e(x), a grid (H / 2**n, W / 2**n) of `latent_dim`-vectors.

    ``n`` stride-2 4x4 convolutions (ReLU), a 3x3 convolution, residual blocks,
    and a linear 1x1 convolution to `latent_dim` channels (the paper's Sec. 4.1).

    Args:
        filters: channels of the feature maps.
        hidden_units: channels inside a residual block.
        latent_dim: D, the codebook vectors' dimension.
        num_downsamplings: n.
        num_blocks: residual blocks.
    """

    def __init__(self, filters, hidden_units, latent_dim, num_downsamplings, num_blocks,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.latent_dim = int(latent_dim)
        self.num_downsamplings = int(num_downsamplings)
        self.num_blocks = int(num_blocks)
        self.downsamplings = [
            keras.layers.Conv2D(self.filters, 4, strides=2, padding="same", activation="relu",
                                name=f"downsample_{i}")
            for i in range(self.num_downsamplings)
        ]
        self.conv = keras.layers.Conv2D(self.filters, 3, padding="same", name="conv")
        self.residual = ResidualStack(self.filters, self.hidden_units, self.num_blocks,
                                      name="residual")
        self.out = keras.layers.Conv2D(self.latent_dim, 1, name="out")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.downsamplings:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        self.residual.build(shape)
        self.out.build(shape)

    def call(self, x):
        for conv in self.downsamplings:
            x = conv(x)
        return self.out(self.residual(self.conv(x)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "hidden_units": self.hidden_units, "latent_dim": self.latent_dim,
                "num_downsamplings": self.num_downsamplings, "num_blocks": self.num_blocks}


@keras.saving.register_keras_serializable(package="zoo")
@network
class VQDecoder(keras.layers.Layer):
    """z_q, a grid of `latent_dim`-vectors -> per-pixel parameters, upsampled 2**n times.

    A 3x3 convolution, residual blocks, ``n - 1`` stride-2 4x4 transposed
    convolutions (ReLU) and a last linear one to `output_channels` (the paper's
    Sec. 4.1).

    Args:
        filters: channels of the feature maps.
        hidden_units: channels inside a residual block.
        output_channels: channels of the output.
        num_upsamplings: n.
        num_blocks: residual blocks.
    """

    def __init__(self, filters, hidden_units, output_channels, num_upsamplings, num_blocks,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_units = int(hidden_units)
        self.output_channels = int(output_channels)
        self.num_upsamplings = int(num_upsamplings)
        self.num_blocks = int(num_blocks)
        self.conv = keras.layers.Conv2D(self.filters, 3, padding="same", name="conv")
        self.residual = ResidualStack(self.filters, self.hidden_units, self.num_blocks,
                                      name="residual")
        self.upsamplings = [
            keras.layers.Conv2DTranspose(self.filters, 4, strides=2, padding="same",
                                         activation="relu", name=f"upsample_{i}")
            for i in range(self.num_upsamplings - 1)
        ]
        self.out = keras.layers.Conv2DTranspose(self.output_channels, 4, strides=2,
                                                padding="same", name="out")

    def build(self, input_shape):
        self.conv.build(input_shape)
        shape = self.conv.compute_output_shape(tuple(input_shape))
        self.residual.build(shape)
        for conv in self.upsamplings:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.out.build(shape)

    def call(self, z):
        h = self.residual(self.conv(z))
        for conv in self.upsamplings:
            h = conv(h)
        return self.out(h)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "hidden_units": self.hidden_units, "output_channels": self.output_channels,
                "num_upsamplings": self.num_upsamplings, "num_blocks": self.num_blocks}


@register(
    "vq_vae",
    presets={
        "digits": dict(latent_dim=8, num_embeddings=32, filters=32, hidden_units=32,
                       num_downsamplings=1),
        "fashion_mnist": dict(latent_dim=16, num_embeddings=128, filters=64, hidden_units=32,
                              num_downsamplings=2),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class VQVAE(VariationalAutoencoder):
    """The vector-quantised VAE: discrete codes from nearest-neighbour lookup.

    van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation
    Learning", NeurIPS 2017, https://arxiv.org/abs/1711.00937.

    A convolutional encoder maps an image to a grid of N = h * w vectors
    z_e(x) in R^D. Each is replaced by its nearest vector of a codebook
    e_1..e_K (a weight): the posterior is one-hot (eq. 1),

        q(z = k | x) = 1 if k = argmin_j ||z_e(x) - e_j||_2, else 0,

    and z_q(x) = e_k (eq. 2) goes to a convolutional decoder, which gives the
    parameters of p(x | z_q) over the image's levels (the observation models of
    :class:`~zoo.vae.base.VariationalAutoencoder`). The argmin has no gradient:
    the decoder's gradient is copied to the encoder unchanged (straight
    through, ``z_e + sg[z_q - z_e]``). Training minimises eq. 3,

        -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,

    the squared norms summed over the N positions and D dimensions (per
    example, like the reconstruction), beta = ``commitment_weight``. With
    ``ema=True`` the codebook term is dropped and the codebook follows
    exponential moving averages instead (Appendix A.1): per code k, with n_k the
    batch's vectors assigned to it and s_k their sum,

        N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) s_k,
        e_k = m_k / N~_k,   N~_k = (N_k + eps) / (n + K eps) * n,   n = sum_k N_k,

    N~ a Laplace smoothing of the cluster sizes (as in the authors' Sonnet
    code) that keeps an unused code finite. The statistics start at N_k = 1,
    m_k = e_k (so e_k = m_k / N_k from the start) and are non-trainable weights
    updated in the training step; under ``tf.distribute`` the counts and sums
    are summed over the replicas first, so every replica makes the same update
    from the whole batch.

    The likelihood is a bound (Sec. 3.1): with a uniform prior p(z) over the K
    codes at each of the N positions and the one-hot posterior, KL(q || p) =
    N log K, so ``-ELBO = -log p(x | z_q(x)) + N log K >= -log p(x)`` is what
    ``nll`` and ``bits_per_dim`` report (training leaves the constant out). The
    posterior being deterministic, every importance sample is z_q(x) itself and
    the importance-weighted bound equals the ELBO for every k.

    ``encode`` gives the code indices (batch, h, w) and ``decode`` takes them;
    the learned priors over codes (a PixelCNN, latent diffusion) build on those.
    ``sample`` decodes codes drawn from the uniform prior, the prior of the
    bound: such samples are poor (the codes' joint structure is missing) until
    a learned prior replaces it.

    Losses (``loss_names``): ``loss`` (eq. 3, optimised), ``reconstruction``
    (-log p(x | z_q), nats per example), ``kl`` (N log K), ``bits_per_dim``
    ((reconstruction + kl) / (D ln 2)), ``codebook`` (||sg[z_e] - e||^2, in the
    loss unless ``ema``), ``commitment`` (||z_e - sg[e]||^2, unweighted; the
    loss adds beta times it), ``perplexity`` (exp of the entropy of the batch's
    code usage: 1 to K).

    Args:
        data_shape: ``(H, W, C)`` with H and W divisible by ``2**num_downsamplings``.
        num_levels: intensity levels of the raw images.
        latent_dim: D, the dimension of the codebook's vectors.
        num_embeddings: K, the codebook's size.
        filters: channels of the encoder's and decoder's feature maps.
        hidden_units: channels inside their residual blocks.
        num_downsamplings: stride-2 convolutions of the encoder: the code grid is
            ``(H / 2**n, W / 2**n)``.
        num_residual_blocks: residual blocks of the encoder and of the decoder.
        observation: the model of p(x | z_q), one of
            :data:`~zoo.distributions.OBSERVATIONS`.
        commitment_weight: beta of eq. 3.
        ema: update the codebook by exponential moving averages (Appendix A.1)
            instead of the codebook loss.
        ema_decay: gamma, the decay of the moving averages.
        ema_epsilon: eps, the Laplace smoothing of the cluster sizes.
        observation_scale: the scale of ``"gaussian_fixed"`` (in [0, 1] units).
    """

    kl_names = ("kl",)
    extra_loss_names = ("codebook", "commitment", "perplexity")
    # The base's KL weight and warm-up: the KL here is the constant N log K.
    fixed_parameters = ("beta", "kl_warmup_steps")

    def __init__(
        self,
        data_shape=(8, 8, 1),
        num_levels=17,
        latent_dim=8,
        num_embeddings=32,
        filters=32,
        hidden_units=32,
        num_downsamplings=1,
        num_residual_blocks=2,
        observation="logistic",
        commitment_weight=0.25,
        ema=False,
        ema_decay=0.99,
        ema_epsilon=1e-5,
        observation_scale=0.1,
        **kwargs,
    ):
        kwargs.setdefault("name", "vq_vae")
        where = type(self).__name__
        self.num_embeddings = int(num_embeddings)
        self.num_downsamplings = int(num_downsamplings)
        self.num_residual_blocks = int(num_residual_blocks)
        self.commitment_weight = float(commitment_weight)
        self.ema = bool(ema)
        self.ema_decay = float(ema_decay)
        self.ema_epsilon = float(ema_epsilon)
        if self.num_embeddings < 1:
            raise ValueError(f"{where}: expected num_embeddings >= 1, got {num_embeddings}")
        if self.num_downsamplings < 1 or self.num_residual_blocks < 0:
            raise ValueError(f"{where}: expected num_downsamplings >= 1 and "
                             f"num_residual_blocks >= 0, got {num_downsamplings}, "
                             f"{num_residual_blocks}")
        if not self.commitment_weight >= 0:
            raise ValueError(f"{where}: expected commitment_weight >= 0, got "
                             f"{commitment_weight}")
        if not 0.0 < self.ema_decay < 1.0 or not self.ema_epsilon > 0:
            raise ValueError(f"{where}: expected 0 < ema_decay < 1 and ema_epsilon > 0, got "
                             f"{ema_decay}, {ema_epsilon}")
        super().__init__(data_shape=data_shape, num_levels=num_levels, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, observation=observation,
                         observation_scale=observation_scale, **kwargs)

    # ------------------------------------------------------------- networks
    def make_networks(self):
        """The encoder, the decoder, the codebook and (``ema``) its statistics."""
        h, w, c = self.data_shape
        factor = 2**self.num_downsamplings
        if h % factor or w % factor:
            raise ValueError(f"{type(self).__name__}: {self.num_downsamplings} downsamplings "
                             f"need H and W divisible by {factor}, got data_shape "
                             f"{self.data_shape}")
        self.encoder = VQEncoder(self.filters, self.hidden_units, self.latent_dim,
                                 self.num_downsamplings, self.num_residual_blocks,
                                 name="encoder")
        self.decoder = VQDecoder(self.filters, self.hidden_units,
                                 self.observation_model.params_per_channel * c,
                                 self.num_downsamplings, self.num_residual_blocks, name="decoder")
        # Entries of variance 1/D: codebook vectors of about unit norm.
        limit = math.sqrt(3.0 / self.latent_dim)
        self.codebook = self.add_weight(
            name="codebook", shape=(self.num_embeddings, self.latent_dim),
            initializer=keras.initializers.RandomUniform(-limit, limit),
            trainable=not self.ema, aggregation="mean" if self.ema else "none")
        if self.ema:
            # MEAN aggregation: the replicas' (equal) updates keep every copy equal.
            self.ema_cluster_size = self.add_weight(
                name="ema_cluster_size", shape=(self.num_embeddings,), initializer="ones",
                trainable=False, aggregation="mean")
            self.ema_embedding_sum = self.add_weight(
                name="ema_embedding_sum", shape=(self.num_embeddings, self.latent_dim),
                initializer="zeros", trainable=False, aggregation="mean")
            self.ema_embedding_sum.assign(self.codebook)

    @property
    def latent_shape(self):
        """The grid (h, w) of code indices."""
        factor = 2**self.num_downsamplings
        return (self.data_shape[0] // factor, self.data_shape[1] // factor)

    @property
    def num_latents(self):
        """N = h * w, the codes per example."""
        return int(np.prod(self.latent_shape))

    @property
    def integer_input_ranges(self):
        """[low, high) of the integer inputs of the serving signatures."""
        return {"codes": (0, self.num_embeddings)}

    # ------------------------------------------------------ quantization
    def encoder_output(self, observed):
        """z_e(x): (B, h, w, D)."""
        return self.encoder(self.encoder_input(observed))

    def squared_distances(self, z_e):
        """||z_e - e_k||^2 for each vector of `z_e` (..., D) and code k: (..., K)."""
        flat = tf.reshape(z_e, [-1, self.latent_dim])
        codebook = tf.convert_to_tensor(self.codebook)
        distances = (tf.reduce_sum(tf.square(flat), axis=-1, keepdims=True)
                     - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
                     + tf.reduce_sum(tf.square(codebook), axis=-1)[None])
        return tf.reshape(distances, tf.concat([tf.shape(z_e)[:-1], [self.num_embeddings]], 0))

    def nearest_codes(self, z_e):
        """The index of each vector's nearest codebook vector (eq. 1): int32 (...)."""
        return tf.argmin(self.squared_distances(z_e), axis=-1, output_type=tf.int32)

    def embed(self, codes):
        """z_q = e_codes (eq. 2): (..., D). A one-hot product rather than a gather,
        so that the codebook's gradient is a dense tensor."""
        return tf.einsum("...k,kd->...d", tf.one_hot(codes, self.num_embeddings),
                         tf.convert_to_tensor(self.codebook))

    @staticmethod
    def straight_through(z_e, z_q):
        """z_q forward (exactly: z_q + 0); backward, the gradient w.r.t. z_q passes
        to z_e unchanged, and none to z_q: ``sg[z_q] + (z_e - sg[z_e])``."""
        return tf.stop_gradient(z_q) + (z_e - tf.stop_gradient(z_e))

    @property
    def code_kl(self):
        """KL(q(z|x) || p(z)) = N log K: a one-hot posterior against the uniform prior."""
        return self.num_latents * math.log(self.num_embeddings)

    # ---------------------------------------------------- posterior, prior
    def posterior(self, observed):
        """The one-hot posterior's codes (eq. 1): int32 (B, h, w)."""
        return self.nearest_codes(self.encoder_output(observed))

    def infer(self, observed, seed, num_samples, training=False):
        """The deterministic posterior, repeated `num_samples` times (`seed` unused).

        Returns a dict of ``z`` (S, B, h, w, D), the straight-through z_q;
        ``log_q`` (0: q is one-hot), ``log_prior`` (-N log K) and ``kl`` (N log K),
        each (S, B); and ``z_e``, ``z_q`` (B, h, w, D) and ``codes`` (B, h, w).
        """
        z_e = self.encoder_output(observed)
        codes = self.nearest_codes(z_e)
        z_q = self.embed(codes)
        z = tf.repeat(self.straight_through(z_e, z_q)[None], num_samples, axis=0)
        kl = tf.fill(tf.stack([num_samples, tf.shape(observed)[0]]), self.code_kl)
        return {"z": z, "log_q": tf.zeros_like(kl), "log_prior": -kl, "kl": kl,
                "z_e": z_e, "z_q": z_q, "codes": codes}

    def decoder_log_prob(self, observed, z):
        """log p(x | z_q) per example (nats) of a batch `observed`; `z` is
        (B, h, w, D) -> (B,), or (S, B, h, w, D) -> (S, B)."""
        if z.shape.rank == 5:
            params = self.decoder_params(tf.reshape(z, tf.concat([[-1], tf.shape(z)[2:]], 0)))
            params = tf.reshape(params, tf.concat([tf.shape(z)[:2], tf.shape(params)[1:]], 0))
        else:
            params = self.decoder_params(z)
        return tf.reduce_sum(self.observation_model.log_prob(observed, params), axis=[-3, -2, -1])

    def draw_prior(self, n, seed):
        """z_q of `n` code grids drawn from the uniform prior: (n, h, w, D)."""
        codes = tf.random.stateless_uniform(tf.stack([n, *self.latent_shape]), seed=seed,
                                            minval=0, maxval=self.num_embeddings,
                                            dtype=tf.int32)
        return self.embed(codes)

    def latent_mean(self, x):
        """E_q[z_q | x] = z_q(x) of raw levels (q is one-hot), flattened: (B, N * D)."""
        z_q = self.posterior_mode(self.deterministic_observed(x))
        return tf.reshape(z_q, [-1, self.num_latents * self.latent_dim])

    def posterior_mode(self, observed):
        """z_q(x), what ``reconstruct`` decodes."""
        return self.embed(self.posterior(observed))

    # ------------------------------------------------------------ training
    def vq_terms(self, x, training=False):
        """The loss terms (batch means, ``loss_names``) and the latents of `infer`."""
        data_seed, z_seed = self.split_seed(None, 2)
        observed = self.observed(x, seed=data_seed)
        latents = self.infer(observed, z_seed, 1, training=training)
        z_e, z_q = latents["z_e"], latents["z_q"]
        reconstruction = -tf.reduce_mean(self.decoder_log_prob(observed, latents["z"])[0])
        codebook = tf.reduce_mean(tf.reduce_sum(
            tf.square(tf.stop_gradient(z_e) - z_q), axis=[1, 2, 3]))
        commitment = tf.reduce_mean(tf.reduce_sum(
            tf.square(z_e - tf.stop_gradient(z_q)), axis=[1, 2, 3]))
        kl = tf.reduce_mean(latents["kl"][0])
        loss = reconstruction + self.commitment_weight * commitment
        if not self.ema:
            loss += codebook
        terms = {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "bits_per_dim": (reconstruction + kl) / (self.event_size * math.log(2.0)),
            "codebook": codebook,
            "commitment": commitment,
            "perplexity": code_perplexity(latents["codes"], self.num_embeddings),
        }
        return terms, latents

    def compute_losses(self, x, training=False):
        return self.vq_terms(x, training=training)[0]

    def training_terms(self, x, labels=None):
        """The terms of eq. 3, and the latents the EMA update needs."""
        return self.vq_terms(x, training=True)

    def after_update(self, latents):
        """With ``ema``, the codebook's moving averages after the step of eq. 3."""
        if self.ema:
            self.update_codebook(latents["z_e"], latents["codes"])

    def update_codebook(self, z_e, codes):
        """One EMA step of the codebook (Appendix A.1) from encoder outputs `z_e`
        (..., D) and their codes (...): the counts n_k and sums s_k, summed over
        the replicas of a ``tf.distribute`` strategy, move the cluster sizes N_k
        and sums m_k; then e_k = m_k / N~_k with Laplace-smoothed sizes N~_k."""
        one_hot = tf.one_hot(tf.reshape(codes, [-1]), self.num_embeddings)
        counts = tf.reduce_sum(one_hot, axis=0)
        sums = tf.matmul(one_hot, tf.reshape(tf.stop_gradient(z_e), [-1, self.latent_dim]),
                         transpose_a=True)
        context = tf.distribute.get_replica_context()
        if context is not None:  # None in a strategy's cross-replica context: one batch
            counts, sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [counts, sums])
        decay = self.ema_decay
        cluster_size = decay * tf.convert_to_tensor(self.ema_cluster_size) \
            + (1.0 - decay) * counts
        embedding_sum = decay * tf.convert_to_tensor(self.ema_embedding_sum) \
            + (1.0 - decay) * sums
        total = tf.reduce_sum(cluster_size)
        smoothed = (cluster_size + self.ema_epsilon) \
            / (total + self.num_embeddings * self.ema_epsilon) * total
        self.ema_cluster_size.assign(cluster_size)
        self.ema_embedding_sum.assign(embedding_sum)
        self.codebook.assign(embedding_sum / smoothed[:, None])

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def importance_weighted_bound(self, x, num_samples=64, seed=None):
        """The importance-weighted bound (Burda et al. 2016), per example (nats).

        With a one-hot posterior every sample z_s is z_q(x) and q(z_s|x) = 1, so
        ``log (1/k) sum_s p(x, z_s) / q(z_s|x) = log p(x | z_q) - N log K`` for
        every k: the ELBO itself (computed once; equal to ``elbo(x, seed)``).
        """
        self.check_num_samples(num_samples, "importance_weighted_bound")
        x = self.validate_levels(x, "importance_weighted_bound")
        reconstruction, kls = self.elbo_terms(x, self.stateless_seed(seed))
        return -reconstruction - kls["kl"]

    @on_batches("data")
    def encode(self, x):
        """The code indices of raw levels `x`: int32 (batch, h, w). Bernoulli models
        see the pixels thresholded at half range, Gaussian ones the bins' centres."""
        x = self.validate_levels(x, "encode")
        return self.posterior(self.deterministic_observed(x))

    def check_codes(self, codes, where):
        """A batch of code indices (batch, h, w) of an integer dtype in [0, K), as
        int32 (:func:`zoo.validation.check_codes`): checked eagerly, or with graph
        assertions inside traced functions; else an error naming what was expected."""
        return validation.check_codes(codes, f"{self.name}.{where}", tuple(self.latent_shape),
                                      self.num_embeddings)

    def check_latents(self, z, where):
        return self.check_codes(z, where)

    def decode(self, codes):
        """Code indices (batch, h, w), integers in [0, K) -> the decoder's mean image
        in levels [0, num_levels - 1] (logistic: its location; Bernoulli: (L - 1)
        times the pixel's probability)."""
        codes = self.check_codes(codes, "decode")
        # An empty batch: decode one grid of zeros, return none of it (as on_batches).
        one = tf.zeros((1, *self.latent_shape), tf.int32)
        if tf.executing_eagerly():
            if codes.shape[0] == 0:
                return self.decode_codes(one)[:0]
            return self.decode_codes(codes)
        size = tf.shape(codes)[0]
        codes = tf.cond(tf.equal(size, 0), lambda: one, lambda: codes)
        return self.decode_codes(codes)[:size]

    def decode_codes(self, codes):
        """The mean image of checked codes."""
        return self.decoder_mean(self.decoder_params(self.embed(codes)))

    def draw_samples(self, n, seed):
        """Images from codes drawn from the uniform prior, then x ~ p(x | z_q), as
        integer levels. Poor samples: the uniform prior ignores how codes go
        together (train a prior over ``encode``'s codes for good ones)."""
        return super().draw_samples(n, seed)

    def latent_spec(self):
        return tf.TensorSpec((None, *self.latent_shape), tf.int32, name="codes")

    def encode_signature(self):
        return (lambda x: {"codes": self.encode(x)}), [self.data_spec()]
