"""keras.io's generative examples as the peers of bench/family_speed.py.

Where they come from (github.com/keras-team/keras-io, examples/generative/, Apache 2.0):

* ``vae.py``, "Variational AutoEncoder" (fchollet, 2020; read at commit cca4efb):
  a convolutional VAE on 28x28x1 MNIST, batch 128, Adam() (lr 1e-3), latent 2;
* ``dcgan_overriding_train_step.py``, "DCGAN to generate face images" (fchollet,
  2019/2021; commit cca4efb): CelebA at 64x64x3, batch 32, Adam(1e-4) for both
  networks, binary cross-entropy on a sigmoid discriminator, label noise;
* ``wgan_gp.py``, "WGAN-GP overriding Model.train_step" (A_K_Nain, 2020; commit
  81aa0ed): Fashion-MNIST 28x28x1, batch 512, noise 128, Adam(2e-4, 0.5, 0.9)
  for both networks, 3 critic updates and 1 generator update per train step,
  gradient penalty weight 10.

The networks and the train steps below are those of the examples, layer for
layer and op for op, written again here (not pasted), with these changes:

* all three: ``tf.keras`` -> ``keras`` (Keras 3); ``LeakyReLU(alpha=)`` ->
  ``negative_slope=``; the networks are built by functions (``*_networks``)
  that also build the zoo's models in bench/family_speed.py; the data are the
  zoo's Fashion-MNIST batches (``zoo.datasets.load``) scaled as each example
  scales its own (VAE and DCGAN to [0, 1], WGAN-GP to [-1, 1]);
* VAE: the sampling layer draws with ``tf.random.normal`` (the example's
  ``tf.keras.backend.random_normal`` is gone in Keras 3);
* DCGAN: moved from 64x64x3 onto 28x28x1: the generator starts from a 7x7x128
  map (was 8x8x128) and has two stride-2 transposed convolutions (128 and 256
  channels; the third, of 512 channels to 64x64, is dropped: 28 = 7 * 2 * 2),
  its last convolution has 1 channel (was 3); the discriminator is the same
  (three stride-2 4x4 convolutions, 28 -> 14 -> 7 -> 4);
* WGAN-GP: unchanged (its shape is 28x28x1 already).

And for ``--part diffusion`` of bench/family_speed.py:

* ``ddim.py``, "Denoising Diffusion Implicit Models" (András Béres, 2022; read
  at commit 093dad4, the tf.keras version; keras.io publishes its Keras 3 port,
  with the same network, schedule and steps): Oxford Flowers at 64x64x3, a
  residual U-Net of widths [32, 64, 96, 128] with 2 blocks per level (batch
  norm without scale and centre, the noise variance's 32-wide sinusoidal
  embedding concatenated at the input only, average pooling down, bilinear
  upsampling up, no attention), the continuous cosine schedule between signal
  rates 0.95 and 0.02, mean absolute error on the noise, AdamW(1e-3, weight
  decay 1e-4), batch 64, an EMA copy (0.999) of the network for sampling, and
  ``reverse_diffusion``: DDIM's deterministic step (eta = 0) in a Python loop
  that calls the EMA network eagerly once per step. Moved onto the zoo's
  Fashion-MNIST (28x28x1): widths [32, 64, 96] (the level of 128 is dropped:
  28 = 7 * 2 * 2, as the DCGAN's third upsampling), 1 input and output channel
  (were 3), the embedding upsampled to 28 (was 64); the normalizer is adapted
  on ``DDIM_ADAPT_BATCHES`` batches (was the whole dataset); the batch size of
  the noise is the batch's (was the global ``batch_size``); the KID metric, its
  ``test_step`` and the plots are left out (not timed).

The zoo's models with the same networks are in bench/family_speed.py
(``ours_model``), which also says what still differs between the two.
"""

import math

import keras
import tensorflow as tf
from keras import layers

SHAPE = (28, 28, 1)
# Each example's batch size, latent size and optimizers.
BATCH = {"vae": 128, "dcgan": 32, "wgan_gp": 512}
LATENT = {"vae": 2, "dcgan": 128, "wgan_gp": 128}
WGAN_CRITIC_STEPS = 3  # critic updates per train step ("discriminator_extra_steps")


def optimizers(name):
    """(first network's, second network's) optimizer of the example: the VAE
    has one, the GANs (discriminator, generator)."""
    if name == "vae":
        return keras.optimizers.Adam(), None
    if name == "dcgan":
        return keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    return (keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
            keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))


def scale(name, x):
    """Raw levels 0..255 -> the example's range: [0, 1] (VAE, DCGAN), [-1, 1] (WGAN-GP)."""
    return (x - 127.5) / 127.5 if name == "wgan_gp" else x / 255.0


# ------------------------------------------------------------------ networks
def vae_networks(latent_dim=LATENT["vae"], heads=2):
    """The example's encoder trunk and decoder: (trunk, decoder).

    trunk: Conv(32, 3, s2, relu) -> Conv(64, 3, s2, relu) -> Flatten ->
    Dense(16, relu), then `heads` linear heads: 2 Dense(latent_dim) (z_mean,
    z_log_var; the example's) or 1 Dense(2 * latent_dim) (the same weights
    concatenated: the zoo's encoder output). decoder: Dense(7*7*64, relu) ->
    (7, 7, 64) -> ConvT(64, 3, s2, relu) -> ConvT(32, 3, s2, relu) -> ConvT(1, 3)
    with no activation (logits; the example's sigmoid is applied by its loss)."""
    x_in = keras.Input(SHAPE)
    h = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(x_in)
    h = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(h)
    h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
    outs = ([layers.Dense(latent_dim, name="z_mean")(h),
             layers.Dense(latent_dim, name="z_log_var")(h)] if heads == 2
            else layers.Dense(2 * latent_dim, name="posterior")(h))
    encoder = keras.Model(x_in, outs, name="encoder")
    z_in = keras.Input((latent_dim,))
    h = layers.Dense(7 * 7 * 64, activation="relu")(z_in)
    h = layers.Reshape((7, 7, 64))(h)
    h = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(h)
    h = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(h)
    logits = layers.Conv2DTranspose(1, 3, padding="same")(h)
    return encoder, keras.Model(z_in, logits, name="decoder")


def dcgan_networks(latent_dim=LATENT["dcgan"], output_activation="sigmoid",
                   score_activation="sigmoid"):
    """(discriminator, generator) of the DCGAN example on 28x28x1 (module docstring)."""
    discriminator = keras.Sequential([
        keras.Input(SHAPE),
        layers.Conv2D(64, 4, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"), layers.LeakyReLU(negative_slope=0.2),
        layers.Flatten(), layers.Dropout(0.2),
        layers.Dense(1, activation=score_activation),
    ], name="discriminator")
    generator = keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(7 * 7 * 128), layers.Reshape((7, 7, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(256, 4, strides=2, padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, 5, padding="same", activation=output_activation),
    ], name="generator")
    return discriminator, generator


def wgan_gp_networks(latent_dim=LATENT["wgan_gp"]):
    """(critic, generator) of the WGAN-GP example.

    critic: ZeroPadding 2 (-> 32x32), Conv(64, 5, s2) LeakyReLU, Conv(128, 5, s2)
    LeakyReLU Dropout(0.3), Conv(256, 5, s2) LeakyReLU Dropout(0.3), Conv(512, 5,
    s2) LeakyReLU, Flatten, Dropout(0.2), Dense(1). generator: Dense(4*4*256, no
    bias) BN LeakyReLU -> (4, 4, 256), three blocks of UpSampling(2) Conv(3x3, no
    bias) BN and LeakyReLU (128, 64 channels) or tanh (1 channel), Cropping 2."""
    img = keras.Input(SHAPE)
    h = layers.ZeroPadding2D((2, 2))(img)
    for filters, dropout in ((64, 0), (128, 0.3), (256, 0.3), (512, 0)):
        h = layers.Conv2D(filters, 5, strides=2, padding="same")(h)
        h = layers.LeakyReLU(negative_slope=0.2)(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
    h = layers.Dropout(0.2)(layers.Flatten()(h))
    critic = keras.Model(img, layers.Dense(1)(h), name="discriminator")
    z = keras.Input((latent_dim,))
    h = layers.Dense(4 * 4 * 256, use_bias=False)(z)
    h = layers.LeakyReLU(negative_slope=0.2)(layers.BatchNormalization()(h))
    h = layers.Reshape((4, 4, 256))(h)
    for filters in (128, 64, 1):
        h = layers.UpSampling2D((2, 2))(h)
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        h = layers.Activation("tanh")(h) if filters == 1 else \
            layers.LeakyReLU(negative_slope=0.2)(h)
    generator = keras.Model(z, layers.Cropping2D((2, 2))(h), name="generator")
    return critic, generator


# ------------------------------------------------------------------ models
class VAE(keras.Model):
    """The example's VAE: its train step (BCE summed over pixels + the closed-form KL)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = vae_networks()
        self.trackers = [keras.metrics.Mean(name=n) for n in ("total_loss",
                                                               "reconstruction_loss", "kl_loss")]

    @property
    def metrics(self):
        return self.trackers

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(data)
            eps = tf.random.normal(tf.shape(z_mean))
            z = z_mean + tf.exp(0.5 * z_log_var) * eps
            reconstruction = tf.sigmoid(self.decoder(z))
            reconstruction_loss = tf.reduce_mean(tf.reduce_sum(
                keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl = -0.5 * (1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
            kl_loss = tf.reduce_mean(tf.reduce_sum(kl, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        for tracker, value in zip(self.trackers, (total_loss, reconstruction_loss, kl_loss)):
            tracker.update_state(value)
        return {"loss": self.trackers[0].result(), "reconstruction_loss":
                self.trackers[1].result(), "kl_loss": self.trackers[2].result()}


class GAN(keras.Model):
    """The DCGAN example's model: one discriminator update on [generated, real]
    (labels 1 and 0, plus 0.05 U[0, 1) noise), then one generator update."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.discriminator, self.generator = dcgan_networks()
        self.latent_dim = LATENT["dcgan"]

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        z = tf.random.normal((batch_size, self.latent_dim))
        combined = tf.concat([self.generator(z), real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = tf.random.normal((batch_size, self.latent_dim))
        misleading = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


class WGAN(keras.Model):
    """The WGAN-GP example's model: per train step, ``WGAN_CRITIC_STEPS`` critic
    updates on the same real batch (fresh latents each, the penalty on
    interpolates at ``alpha ~ N(0, 1)``, as published), then one generator update."""

    def __init__(self, gp_weight=10.0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator, self.generator = wgan_gp_networks()
        self.latent_dim = LATENT["wgan_gp"]
        self.d_steps = WGAN_CRITIC_STEPS
        self.gp_weight = gp_weight

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def gradient_penalty(self, batch_size, real_images, fake_images):
        alpha = tf.random.normal([batch_size, 1, 1, 1], 0.0, 1.0)
        interpolated = real_images + alpha * (fake_images - real_images)
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = self.discriminator(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return tf.reduce_mean((norm - 1.0) ** 2)

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        for _ in range(self.d_steps):
            z = tf.random.normal((batch_size, self.latent_dim))
            with tf.GradientTape() as tape:
                fake_images = self.generator(z, training=True)
                fake_logits = self.discriminator(fake_images, training=True)
                real_logits = self.discriminator(real_images, training=True)
                d_cost = tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
                gp = self.gradient_penalty(batch_size, real_images, fake_images)
                d_loss = d_cost + gp * self.gp_weight
            d_gradient = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_gradient, self.discriminator.trainable_variables))
        z = tf.random.normal((batch_size, self.latent_dim))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.discriminator(self.generator(z, training=True),
                                                        training=True))
        gen_gradient = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(gen_gradient, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


def peer_model(name):
    """The example's model of `name`, compiled as the example compiles it."""
    first, second = optimizers(name)
    if name == "vae":
        model = VAE()
        model.compile(optimizer=first)
    elif name == "dcgan":
        model = GAN()
        model.compile(d_optimizer=first, g_optimizer=second,
                      loss_fn=keras.losses.BinaryCrossentropy())
    else:
        model = WGAN()
        model.compile(d_optimizer=first, g_optimizer=second)
    return model


# ------------------------------------------------------------------ DDIM
# The DDIM example's hyperparameters (module docstring: widths moved onto 28x28).
DDIM_WIDTHS = (32, 64, 96)
DDIM_BLOCK_DEPTH = 2
DDIM_EMBEDDING_DIMS = 32
DDIM_EMBEDDING_MAX_FREQUENCY = 1000.0
DDIM_MIN_SIGNAL_RATE = 0.02
DDIM_MAX_SIGNAL_RATE = 0.95
DDIM_EMA = 0.999
DDIM_BATCH = 64
DDIM_ADAPT_BATCHES = 20  # the normalizer's batches (the example adapts on all)


def ddim_optimizer():
    """The DDIM example's optimizer: AdamW(1e-3, weight decay 1e-4)."""
    return keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4)


@keras.saving.register_keras_serializable(package="keras_io")
def ddim_sinusoidal_embedding(x):
    """The example's embedding of the noise variances (batch, 1, 1, 1) ->
    (batch, 1, 1, 32): sines and cosines at 16 frequencies from 1 to 1000
    (registered, as in the Keras 3 port: ``clone_model`` serializes the Lambda)."""
    frequencies = tf.exp(tf.linspace(tf.math.log(1.0), tf.math.log(DDIM_EMBEDDING_MAX_FREQUENCY),
                                     DDIM_EMBEDDING_DIMS // 2))
    angular_speeds = 2.0 * math.pi * frequencies
    return tf.concat([tf.sin(angular_speeds * x), tf.cos(angular_speeds * x)], axis=3)


def ddim_residual_block(width):
    def apply(x):
        residual = x if x.shape[3] == width else layers.Conv2D(width, kernel_size=1)(x)
        x = layers.BatchNormalization(center=False, scale=False)(x)
        x = layers.Conv2D(width, kernel_size=3, padding="same",
                          activation=keras.activations.swish)(x)
        x = layers.Conv2D(width, kernel_size=3, padding="same")(x)
        return layers.Add()([x, residual])

    return apply


def ddim_network(widths=DDIM_WIDTHS, block_depth=DDIM_BLOCK_DEPTH):
    """The example's residual U-Net on 28x28x1: ``[noisy_images, noise_variances]``
    -> the predicted noise."""
    size, channels = SHAPE[0], SHAPE[-1]
    noisy_images = keras.Input(shape=SHAPE)
    noise_variances = keras.Input(shape=(1, 1, 1))
    e = layers.Lambda(ddim_sinusoidal_embedding,
                      output_shape=(1, 1, DDIM_EMBEDDING_DIMS))(noise_variances)
    e = layers.UpSampling2D(size=size, interpolation="nearest")(e)
    x = layers.Conv2D(widths[0], kernel_size=1)(noisy_images)
    x = layers.Concatenate()([x, e])
    skips = []
    for width in widths[:-1]:  # DownBlock
        for _ in range(block_depth):
            x = ddim_residual_block(width)(x)
            skips.append(x)
        x = layers.AveragePooling2D(pool_size=2)(x)
    for _ in range(block_depth):
        x = ddim_residual_block(widths[-1])(x)
    for width in reversed(widths[:-1]):  # UpBlock
        x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
        for _ in range(block_depth):
            x = layers.Concatenate()([x, skips.pop()])
            x = ddim_residual_block(width)(x)
    x = layers.Conv2D(channels, kernel_size=1, kernel_initializer="zeros")(x)
    return keras.Model([noisy_images, noise_variances], x, name="residual_unet")


class DDIM(keras.Model):
    """The DDIM example's model: its schedule, ``train_step`` (MAE on the noise,
    the EMA network updated after each step) and ``reverse_diffusion`` (a Python
    loop over the steps, the EMA network called eagerly at each)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.normalizer = layers.Normalization()
        self.network = ddim_network()
        self.ema_network = keras.models.clone_model(self.network)

    def compile(self, **kwargs):
        super().compile(**kwargs)
        self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
        self.image_loss_tracker = keras.metrics.Mean(name="i_loss")

    @property
    def metrics(self):
        return [self.noise_loss_tracker, self.image_loss_tracker]

    def denormalize(self, images):
        images = self.normalizer.mean + images * self.normalizer.variance ** 0.5
        return tf.clip_by_value(images, 0.0, 1.0)

    def diffusion_schedule(self, diffusion_times):
        start_angle = tf.acos(DDIM_MAX_SIGNAL_RATE)
        end_angle = tf.acos(DDIM_MIN_SIGNAL_RATE)
        diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
        return tf.sin(diffusion_angles), tf.cos(diffusion_angles)  # noise, signal rates

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        network = self.network if training else self.ema_network
        pred_noises = network([noisy_images, noise_rates ** 2], training=training)
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        return pred_noises, pred_images

    def reverse_diffusion(self, initial_noise, diffusion_steps):
        num_images = initial_noise.shape[0]
        step_size = 1.0 / diffusion_steps
        next_noisy_images = initial_noise
        for step in range(diffusion_steps):
            noisy_images = next_noisy_images
            diffusion_times = tf.ones((num_images, 1, 1, 1)) - step * step_size
            noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates,
                                                    training=False)
            next_noise_rates, next_signal_rates = self.diffusion_schedule(
                diffusion_times - step_size)
            next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
        return pred_images

    def generate(self, num_images, diffusion_steps):
        initial_noise = tf.random.normal(shape=(num_images,) + SHAPE)
        return self.denormalize(self.reverse_diffusion(initial_noise, diffusion_steps))

    def train_step(self, images):
        images = self.normalizer(images, training=True)
        batch_size = tf.shape(images)[0]
        noises = tf.random.normal(shape=tf.shape(images))
        diffusion_times = tf.random.uniform(shape=(batch_size, 1, 1, 1), minval=0.0, maxval=1.0)
        noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
        noisy_images = signal_rates * images + noise_rates * noises
        with tf.GradientTape() as tape:
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates,
                                                    training=True)
            noise_loss = self.loss(noises, pred_noises)
            image_loss = self.loss(images, pred_images)
        gradients = tape.gradient(noise_loss, self.network.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))
        self.noise_loss_tracker.update_state(noise_loss)
        self.image_loss_tracker.update_state(image_loss)
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(DDIM_EMA * ema_weight + (1 - DDIM_EMA) * weight)
        return {m.name: m.result() for m in self.metrics}


def ddim_model(data):
    """The DDIM example's model, its normalizer adapted on `data` (images in
    [0, 1]; ``DDIM_ADAPT_BATCHES`` batches), compiled as the example compiles it."""
    model = DDIM()
    model.normalizer.adapt(data.take(DDIM_ADAPT_BATCHES))
    model.compile(optimizer=ddim_optimizer(), loss=keras.losses.mean_absolute_error)
    return model
