"""PixelVAE (Gulrajani et al. 2017): a VAE whose decoder is a small PixelCNN
conditioned on z."""

import keras
import tensorflow as tf

from zoo.autoregressive.gated_pixelcnn import GatedPixelCNNNetwork
from zoo.registry import register
from zoo.vae.base import VariationalAutoencoder
from zoo.vae.conv_encoder import ConvEncoder
from zoo.validation import on_batches


@register(
    "pixel_vae",
    presets={
        "digits": dict(latent_dim=8, filters=32, hidden_units=256, decoder_filters=32,
                       decoder_layers=3, decoder_units=64),
        "fashion_mnist": dict(latent_dim=32, filters=32, hidden_units=512, decoder_filters=32,
                              decoder_layers=3, decoder_units=64),
    },
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class PixelVAE(VariationalAutoencoder):
    """A VAE whose decoder p(x|z) = prod_i p(x_i | x_<i, z) is a Gated PixelCNN
    conditioned on z.

    Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez & Courville, "PixelVAE: A
    Latent Variable Model for Natural Images", ICLR 2017,
    https://arxiv.org/abs/1611.05013. The encoder and the Gaussian q(z|x), the
    prior N(0, I), the bound, the importance-weighted bound and the active units
    are the Gaussian VAE's; the decoder is the network of Gated PixelCNN (van den
    Oord et al. 2016b, https://arxiv.org/abs/1606.05328) over the observed
    values, in raster-then-channel order, with z given to every gate as a learned
    bias (that paper's global conditioning, eq. 4; the PixelVAE paper feeds z
    through a deconvolutional decoder's feature maps instead). Its depth,
    ``decoder_layers``, sets how much of the image the decoder models without z:
    with more layers less of the information goes into the latents (the paper's
    Sec. 4.1; ``bench/pixel_vae_depth.py``).

    The observation model of each value must be over the discrete levels
    (``categorical``, a softmax per value as in PixelCNN, by default). Sampling
    draws z ~ p(z) and then x ~ p(x | z) one value at a time (one compiled loop
    over the H * W * C values); ``decode`` and ``reconstruct`` give, in the same
    order, the mean of each conditional given the means before it: a
    deterministic picture of p(x | z) (an autoregressive decoder has no mean in
    closed form).

    Args:
        data_shape, num_levels, latent_dim, filters, hidden_units, observation,
            beta, kl_warmup_steps: as :class:`~zoo.vae.base.VariationalAutoencoder`
            (``filters`` and ``hidden_units`` are the encoder's).
        decoder_filters: channels of each stack of the decoder.
        decoder_layers: gated layers of the decoder (>= 1).
        decoder_units: channels of its hidden output layer.
        decoder_kernel: side of its vertical stack's window (odd).

    Losses (``loss_names``): those of the Gaussian VAE.
    """

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, latent_dim=8, filters=32,
                 hidden_units=256, decoder_filters=32, decoder_layers=3, decoder_units=64,
                 decoder_kernel=3, observation="categorical", **kwargs):
        kwargs.setdefault("name", "pixel_vae")
        self.decoder_filters = int(decoder_filters)
        self.decoder_layers = int(decoder_layers)
        self.decoder_units = int(decoder_units)
        self.decoder_kernel = int(decoder_kernel)
        if min(self.decoder_filters, self.decoder_layers, self.decoder_units) < 1:
            raise ValueError(f"PixelVAE: expected decoder_filters, decoder_layers and "
                             f"decoder_units >= 1, got {decoder_filters}, {decoder_layers}, "
                             f"{decoder_units}")
        if self.decoder_kernel < 1 or self.decoder_kernel % 2 == 0:
            raise ValueError(f"PixelVAE: expected an odd decoder_kernel >= 1, got "
                             f"{decoder_kernel}")
        super().__init__(data_shape=data_shape, num_levels=num_levels, latent_dim=latent_dim,
                         filters=filters, hidden_units=hidden_units, observation=observation,
                         **kwargs)

    def make_networks(self):
        """The Gaussian VAE's encoder and the Gated PixelCNN decoder."""
        if not self.observation_model.discrete:
            raise ValueError(f"PixelVAE: expected an observation model of the discrete "
                             f"levels (its decoder feeds back the values it draws), got "
                             f"{self.observation!r}")
        c = self.data_shape[-1]
        self.encoder = ConvEncoder(self.filters, self.hidden_units, self.posterior_units(),
                                   name="encoder")
        self.decoder = GatedPixelCNNNetwork(
            self.decoder_filters, self.decoder_layers, self.decoder_units,
            self.observation_model.params_per_channel * c, c, self.decoder_kernel,
            num_classes=self.latent_dim, name="decoder")

    def call(self, x):
        """The decoder's parameters at the posterior's draw (touches every weight)."""
        observed = self.observed(x, seed=tf.constant([0, 0]))
        latents = self.infer(observed, tf.constant([0, 0]), 1)
        return self.pixel_params(observed, latents["z"][0])

    # --------------------------------------------------------- the decoder
    def pixel_params(self, observed, z):
        """The parameters of every p(x_i | x_<i, z) (B, H, W, P * C) of observed
        values (B, H, W, C) and latents (B, latent_dim)."""
        return self.decoder(self.encoder_input(observed), z)

    def decoder_log_prob(self, observed, z):
        """log p(x | z) per example (nats); `z` (B, D) -> (B,), or (S, B, D) -> (S, B)."""
        if z.shape.rank == 2:
            return tf.reduce_sum(self.observation_model.log_prob(
                observed, self.pixel_params(observed, z)), axis=[-3, -2, -1])
        samples = tf.shape(z)[0]
        tiled = tf.reshape(tf.repeat(observed[None], samples, axis=0),
                           tf.concat([[-1], tf.shape(observed)[1:]], 0))
        log_p = tf.reduce_sum(self.observation_model.log_prob(
            tiled, self.pixel_params(tiled, tf.reshape(z, [-1, self.latent_dim]))),
            axis=[-3, -2, -1])
        return tf.reshape(log_p, tf.shape(z)[:2])

    def decoder_params(self, z):
        raise TypeError("PixelVAE: the decoder's parameters depend on the values before "
                        "each one; use pixel_params(observed, z) or generate(z, seed)")

    def generate(self, z, seed=None):
        """Levels from p(x | z), one value at a time in raster-then-channel order,
        value i drawn by ``sample_from_noise`` of its own uniforms of the
        observation model's noise, drawn from the stateless `seed` before the
        loop; with `seed` None, the mean of each conditional given the means
        before it. One ``tf.while_loop``, compiled at every call: under XLA where
        ``xla_sampling`` says it wins, outside the serving signatures
        (:meth:`~zoo.serving.Serving.xla_where_traced`), else a plain graph."""
        z = tf.convert_to_tensor(z, tf.float32)
        if seed is None:
            return self.xla_where_traced("decode", lambda z: self._generate_loop(z, None), z,
                                         loop=True)
        noise = self.observation_model.noise(tf.stack([tf.shape(z)[0], self.event_size]),
                                             tf.cast(seed, tf.int32))
        return self.xla_where_traced("generate", self._generate_loop, z, noise, loop=True)

    def _generate_loop(self, z, noise):
        size = self.event_size
        shape = tf.concat([tf.shape(z)[:1], self.data_shape], 0)
        n = tf.shape(z)[0]
        if noise is not None:  # each value's uniforms where the value is
            uniforms = self.observation_model.uniforms_per_value
            noise = tf.reshape(noise, tf.concat([shape, [uniforms]], 0))

        def body(i, flat):
            x = tf.reshape(flat, shape)
            params = self.pixel_params(self.deterministic_observed(x), z)
            values = (self.observation_model.mean(params) if noise is None else
                      self.observation_model.sample_from_noise(params, noise))
            value = tf.reshape(values, tf.stack([n, size]))[:, i]
            here = tf.cast(tf.equal(tf.range(size), i), flat.dtype)[None]
            return i + 1, flat * (1.0 - here) + value[:, None] * here

        _, flat = tf.while_loop(lambda i, _: i < size, body,
                                (tf.constant(0), tf.zeros(tf.stack([n, size]))),
                                maximum_iterations=size, parallel_iterations=1)
        return tf.reshape(flat, shape)

    # ------------------------------------------------------------ public API
    @on_batches("latent")
    def decode(self, z):
        """Latents -> the means of the conditionals in turn, each given the means
        before it, in levels [0, num_levels - 1]."""
        return self.generate(self.check_latents(z, "decode"))

    @on_batches("data")
    def reconstruct(self, x):
        """``decode`` of the posterior's mean of raw levels `x`."""
        x = self.validate_levels(x, "reconstruct")
        return self.generate(self.posterior_mode(self.deterministic_observed(x)))

    def draw_samples(self, n, seed):
        """z ~ N(0, I), then x ~ p(x | z) one value at a time, as integer levels."""
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        return self.generate(self.draw_prior(n, z_seed), x_seed)
