"""Super-resolution by diffusion (SR3, Saharia et al. 2021)."""

import keras
import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.base import GenerativeModel
from zoo.completion import Completion
from zoo.diffusion import schedules
from zoo.diffusion.base import DiffusionModel
from zoo.nn import resize
from zoo.registry import register

# digits 4x4 -> 8x8 (the U-Net's levels 8, 4); Fashion-MNIST 14x14 -> 28x28 (28, 14, 7).
DIGITS = dict(factor=2, channels=32, channel_mults=(1, 2), num_res_blocks=1, ema_decay=0.999,
              sampling_steps=100)
FASHION = dict(factor=2, channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
               ema_decay=0.9995, sampling_steps=50)


@register(
    "sr_diffusion",
    presets={"digits": DIGITS, "fashion_mnist": FASHION},
    training={
        "digits": dict(batch_size=64, epochs=100, learning_rate=2e-4),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=2e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class SuperResolutionDiffusion(DiffusionModel):
    """A diffusion model of an image given its downsampled version.

    Saharia, Ho, Chan, Salimans, Fleet & Norouzi, "Image Super-Resolution via
    Iterative Refinement" (SR3), 2021, https://arxiv.org/abs/2104.07636. The
    low-resolution image (the ``factor x factor`` average of the levels: digits
    4x4 -> 8x8, Fashion-MNIST 14x14 -> 28x28) is upsampled bicubically to the
    data's size, scaled to [-1, 1] like x, and concatenated on the channels to the
    noisy x_t the U-Net sees (Sec. 2.2); the rest is DDPM's
    (:class:`~zoo.diffusion.base.DiffusionModel`: epsilon prediction, ``L_simple``
    on the linear schedule, the samplers with ``num_steps`` and ``eta``, EMA
    weights for sampling and export). The base class threads this conditioning
    image through its ``labels`` argument (the network's input besides x_t, t).

    :meth:`super_resolve` (and the exported ``super_resolve`` signature) draws
    x ~ p(x | low) for low-resolution images in levels. :meth:`conditional_nll`
    (the ``conditional_nll`` signature) is the variational bound on
    ``-log p(x | downsample(x))`` in nats (the T terms, or their stratified
    estimate with ``bound_timesteps``, with the discretized Gaussian decoder).

    ``sample`` needs low-resolution inputs, and the test split is not in an export:
    the model keeps ``bank_size`` low-resolution training images (the first
    training batch's, repeated if smaller; a non-trainable weight, in every
    checkpoint and export; blank images before training), and ``sample(n)`` is the
    super-resolution of ``n`` of them drawn uniformly. Its samples' FID thus
    measures super-resolution of real digits, not unconditional generation: it
    does not compare with the unconditional models' (stated in ``metrics.json``).
    The model has no likelihood of x (``"none"``); no completion, no class
    conditioning, no unconditional ``encode``/``decode``.

    Args:
        data_shape, num_levels: from the dataset (images).
        factor: the downsampling factor (divides the height and width).
        bank_size: low-resolution training images kept for ``sample``.
        (others): as :class:`~zoo.diffusion.base.DiffusionModel`.
    """

    likelihood = "none"
    conditional = False
    probability_flow_of_data = False
    fixed_parameters = ("label_dropout", "hidden_units", "num_hidden")
    # No completion: the model generates from a low-resolution image.
    draw_completion = Completion.draw_completion
    complete_options = {}
    nll = GenerativeModel.nll

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, factor=2, bank_size=64,
                 timesteps=1000, schedule="linear", **kwargs):
        kwargs.setdefault("name", "sr_diffusion")
        super().__init__(data_shape=data_shape, num_levels=num_levels, timesteps=timesteps,
                         schedule=schedule, label_dropout=0.0, **kwargs)
        kind = type(self).__name__
        if len(self.data_shape) != 3:
            raise ValueError(f"{kind}: expected images (data_shape (H, W, C)), got "
                             f"{self.data_shape}")
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 2 \
                or self.data_shape[0] % factor or self.data_shape[1] % factor:
            raise ValueError(f"{kind}: expected factor to be an int >= 2 that divides the "
                             f"height and width {self.data_shape[:2]}, got {factor!r}")
        validation.check_int(bank_size, "bank_size", kind)
        self.factor = int(factor)
        self.bank_size = int(bank_size)
        self.low_shape = (self.data_shape[0] // self.factor, self.data_shape[1] // self.factor,
                          self.data_shape[2])
        self.low_res_bank = self.add_weight(
            shape=(self.bank_size,) + self.low_shape, initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="low_res_bank")
        self.bank_filled = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           aggregation="only_first_replica", name="bank_filled")
        self.build_model()

    def build(self, input_shape):
        """The network, on ``[x_t, condition]`` (twice the data's channels)."""
        x = tf.zeros((1,) + self.data_shape[:2] + (2 * self.data_shape[2],))
        self.denoiser_network(x, tf.zeros((1,), tf.int32))
        self.built = True

    def call(self, x):
        """The network's output at the last timestep on `x` and its own low
        resolution, for Keras (raw data in)."""
        t = tf.fill(tf.shape(x)[:1], self.timesteps - 1)
        return self.network_output(self.scale(x), t, self.condition(self.downsample(x)))

    # ------------------------------------------------------------ conditioning
    def downsample(self, x):
        """Raw levels (B, H, W, C) -> their ``factor x factor`` means (B, h, w, C)."""
        return tf.nn.avg_pool2d(tf.convert_to_tensor(x, tf.float32), self.factor, self.factor,
                                "VALID")

    def condition(self, low):
        """Low-resolution levels -> the conditioning image: upsampled bicubically to
        the data's size and scaled to [-1, 1] as x is."""
        return self.scale(resize.separable(low, self.data_shape[:2], "bicubic"))

    def network_output(self, xt, t, labels=None, averaged=False):
        """The network on ``[x_t, condition]`` (`labels` is the conditioning image)."""
        if labels is None:
            raise TypeError(f"{self.name}: the network needs the low-resolution image it "
                            f"super-resolves (the conditioning image)")
        net = self.averaged("denoiser") if averaged else self.denoiser_network
        return net(tf.concat([xt, tf.cast(labels, xt.dtype)], axis=-1), t)

    @property
    def float_input_ranges(self):
        """[low, high] of the float inputs of the serving signatures besides data."""
        return {"low": self.value_range}

    def check_low(self, low, where):
        """A batch of low-resolution images: (batch,) + ``low_shape``, in the data's
        ``value_range``."""
        return self.check_batch(low, where, self.low_shape, self.value_range,
                                what="low-resolution raw pixel values")

    # ---------------------------------------------------------------- losses
    def loss_terms(self, x, training, labels=None):
        """``L_simple`` with the network conditioned on the batch's own low
        resolution; the first training batch fills the bank of ``sample``."""
        x = tf.convert_to_tensor(x, tf.float32)
        low = self.downsample(x)
        if training:
            self.fill_bank(low)
        x0 = self.scale(x)
        t, weights = self.draw_training_timesteps(tf.shape(x0)[0])
        noise = self.rng.normal(tf.shape(x0))
        xt = schedules.q_sample(x0, t, noise, self.const("alphas_cumprod"))
        eps, _ = self.split_output(self.network_output(xt, t, self.condition(low)))
        mse = tf.reduce_mean(tf.square(noise - eps), axis=[1, 2, 3])
        return {"loss": tf.reduce_mean(weights * mse)}, None

    def fill_bank(self, low):
        """Keeps the first batch's low-resolution images (repeated to
        ``bank_size``) for ``sample``; later batches leave them."""
        batch = tf.shape(low)[0]
        first = tf.gather(low, tf.math.floormod(tf.range(self.bank_size), batch))
        filled = self.bank_filled > 0.0
        self.low_res_bank.assign(tf.where(filled, tf.convert_to_tensor(self.low_res_bank),
                                          first))
        self.bank_filled.assign(1.0)

    # ----------------------------------------------------------- generation
    def super_resolve(self, low, seed=None, **options):
        """x ~ p(x | low) for low-resolution images `low` (levels, (batch,) +
        ``low_shape``), drawn from the stateless `seed` with the sampler `options`
        (``num_steps``, ``eta``); levels in [0, num_levels - 1], not rounded."""
        low = self.check_low(low, "super_resolve")
        values = self.check_options(options, "super_resolve")
        seed = self.stateless_seed(seed)
        one = tf.zeros((1,) + self.low_shape)
        if tf.executing_eagerly():
            if low.shape[0] == 0:
                return self.resolved(one, seed, **values)[:0]
            return self.resolved(low, seed, **values)
        size = tf.shape(low)[0]
        low = tf.cond(tf.equal(size, 0), lambda: one, lambda: low)
        return self.resolved(low, seed, **values)[:size]

    def resolved(self, low, seed, num_steps, eta):
        """The sampler from x_T ~ N(0, I), conditioned on `low` (checked); compiled
        once per model when eager."""
        return self.run_compiled("super_resolve", self.resolving, tf.convert_to_tensor(low),
                                 tf.convert_to_tensor(seed, tf.int32),
                                 tf.convert_to_tensor(num_steps, tf.int32),
                                 tf.convert_to_tensor(eta, tf.float32))

    def resolving(self, low, seed, num_steps, eta):
        """:meth:`resolved`'s computation."""
        x = tf.random.stateless_normal(tf.concat([tf.shape(low)[:1], self.data_shape], 0),
                                       tf.random.experimental.stateless_fold_in(seed, 0))
        y = self.run_sampler(x, tf.random.experimental.stateless_fold_in(seed, 1), num_steps,
                             eta, labels=self.condition(low))
        return self.unscale(y)

    def draw_samples(self, n, seed, num_steps, eta):
        """Super-resolutions of `n` low-resolution images of the bank, drawn uniformly."""
        index = tf.random.stateless_uniform(
            tf.reshape(n, [1]), tf.random.experimental.stateless_fold_in(seed, 3), 0,
            self.bank_size, tf.int32)
        return self.resolved(tf.gather(self.low_res_bank, index), seed, num_steps, eta)

    def conditional_nll(self, x, seed=None):
        """The negative variational bound on ``-log p(x | downsample(x))`` per
        example (nats), its noise drawn statelessly from `seed`."""
        x = self.validate_inputs(x, "conditional_nll")
        seed = self.stateless_seed(seed)

        def bound(x):
            return self.run_compiled("conditional_nll", self.conditional_bound, x, seed)

        one = tf.zeros((1,) + self.data_shape)
        if tf.executing_eagerly():
            return bound(one)[:0] if x.shape[0] == 0 else bound(x)
        size = tf.shape(x)[0]
        return bound(tf.cond(tf.equal(size, 0), lambda: one, lambda: x))[:size]

    def conditional_bound(self, x, seed):
        """:meth:`conditional_nll`'s computation, on checked data."""
        prior, terms, _ = self.vlb_terms(self.scale(x), seed, self.condition(self.downsample(x)))
        return prior + tf.reduce_sum(terms, axis=1)

    def encode(self, x, num_steps=None, labels=None):
        raise TypeError(f"{self.name} has no unconditional encode: it generates from a "
                        f"low-resolution image (super_resolve)")

    def decode(self, z, num_steps=None, labels=None):
        raise TypeError(f"{self.name} has no unconditional decode: it generates from a "
                        f"low-resolution image (super_resolve)")

    # ---------------------------------------------------------------- serving
    def data_signatures(self):
        def resolve(low, seed, *values):
            return {"x": self.super_resolve(low, seed, **dict(zip(options, values)))}

        options = list(self.sample_options)
        return {
            "conditional_nll": (lambda x, seed: {"nll": self.conditional_nll(x, seed)},
                                [self.data_spec(), tf.TensorSpec([], tf.int32, name="seed")]),
            "super_resolve": self.with_option_inputs(resolve, [
                tf.TensorSpec((None,) + self.low_shape, tf.float32, name="low"),
                tf.TensorSpec([], tf.int32, name="seed")]),
        }

    # ------------------------------------------------------------- evaluation
    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """What the samples are: super-resolutions of the bank's training images."""
        return {"samples": f"super-resolutions of {self.bank_size} low-resolution "
                           f"({'x'.join(map(str, self.low_shape[:2]))}) training images "
                           f"kept by the model: not comparable with unconditional models"}
