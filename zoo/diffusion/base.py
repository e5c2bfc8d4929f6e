"""The diffusion family's base class: a Gaussian forward process, a learned reverse
process and its variational bound; the DDPM/DDIM samplers are its mixin
:class:`~zoo.diffusion.sampling.DiffusionSampling`, the probability-flow likelihood
:class:`~zoo.diffusion.probability_flow.ProbabilityFlow`, what ``zoo evaluate``
reports beside the NLL :class:`~zoo.diffusion.evaluation.DiffusionEvaluation`.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
https://arxiv.org/abs/2006.11239; Song, Meng & Ermon, "Denoising Diffusion
Implicit Models", ICLR 2021, https://arxiv.org/abs/2010.02502 (the sampler with
``eta`` and the deterministic ``encode``/``decode``); Ho & Salimans,
"Classifier-Free Diffusion Guidance", 2022, https://arxiv.org/abs/2207.12598
(``guidance``). A subclass fixes the schedule, the variance and the loss
(:mod:`zoo.diffusion.ddpm`, :mod:`zoo.diffusion.iddpm`).
"""

import math

import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.base import GenerativeModel, SampleOption
from zoo.diffusion import schedules
from zoo.diffusion.denoiser import Denoiser
from zoo.diffusion.evaluation import DiffusionEvaluation
from zoo.diffusion.probability_flow import ProbabilityFlow
from zoo.diffusion.sampling import DiffusionSampling
from zoo.validation import on_batches


# Models of at most this many timesteps run their loops eagerly when called eagerly.
EAGER_TIMESTEPS = 16
# RePaint's resamplings at most (a schedule of up to 2 MAX_RESAMPLE T steps).
MAX_RESAMPLE = 1000


class DiffusionModel(DiffusionSampling, ProbabilityFlow, DiffusionEvaluation, GenerativeModel):
    """A diffusion model: ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` over
    ``T`` steps of a noise schedule (:mod:`zoo.diffusion.schedules`), and a
    reverse process ``p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2)`` whose
    mean comes from the predicted noise ``eps_theta(x_t, t)`` (a
    :class:`~zoo.diffusion.denoiser.Denoiser`: a U-Net on images, an MLP on
    vectors). ``sigma_t^2`` is the posterior variance beta~_t, or with
    ``learned_variance`` (a class attribute) the interpolation ``exp(v log beta_t
    + (1 - v) log beta~_t)`` of the network's second output.

    Images: raw levels ``x`` in ``[0, L)`` are scaled to ``[-1, 1]`` (``2 x / (L -
    1) - 1``, as Ho et al.); samples are scaled back (not rounded). The decoder
    ``p(x_0 | x_1)`` is Ho et al.'s discretized Gaussian over the L levels, so
    :meth:`nll` is a bound on the discrete data's NLL. Vectors: no scaling, and
    a Gaussian decoder density (a bound on the continuous NLL).

    ``nll`` (``likelihood = "bound"``) is the negative variational bound in nats
    (Ho et al. eq. 5): ``KL(q(x_T | x_0) || N(0, I)) + sum_{t >= 1} KL(q(x_{t-1} |
    x_t, x_0) || p(x_{t-1} | x_t)) - log p(x_0 | x_1)``, each term at one draw of
    ``x_t``, ``p``'s mean from the predicted ``x_0`` clipped to ``[-1, 1]`` on
    images as the sampler's (and the paper's code's ``calc_bpd_loop``); with
    ``bound_timesteps = K`` (0 < K < T) the sum over the T terms is a stratified
    estimate: one uniformly drawn timestep in each of K equal strata, each
    example its own, weighted by the stratum's size (unbiased; ``zoo evaluate``'s
    standard error over the examples includes the draws).

    Sampling (``sample``'s options, and the exported ``sample`` signature's
    inputs): ``num_steps`` of ``1..T`` timesteps respaced evenly (Nichol &
    Dhariwal 2021), ``eta`` (DDIM's: 0 deterministic, 1 DDPM's ancestral sampler
    with the model's variance, between them the noise ``eta^2 sigma_t^2``), and for a
    class-conditional model trained with label dropout, ``guidance`` ``w``:
    ``(1 + w) eps(x, y) - w eps(x, null)`` (``w = 0``: the conditional model), with
    ``label``. Images clip each predicted ``x_0`` to ``[-1, 1]``. The loop over the
    steps is one ``tf.while_loop``. ``encode``/``decode`` are DDIM's deterministic
    ODE (``eta = 0``, no clipping) from data to ``x_T`` and back. Completion
    (``complete``) is the replacement method, or with ``complete``'s own options
    ``resample`` r and ``jump`` j RePaint's resampling (Lugmayr et al., CVPR 2022,
    https://arxiv.org/abs/2201.09865: every j steps, back up j steps and down
    again, r times in all; r = 1 the replacement method). All of these are the mixin
    :class:`~zoo.diffusion.sampling.DiffusionSampling`'s.

    Class conditioning (``num_classes > 0``): a class embedding conditions the
    network; while training, each label is replaced by the null label with
    probability ``label_dropout``, so the same network is also the unconditional
    model (Ho & Salimans 2022).

    Args:
        data_shape, num_levels: from the dataset.
        timesteps: T.
        schedule: ``"linear"`` or ``"cosine"`` (:func:`zoo.diffusion.schedules.betas`).
        channels, channel_mults, num_res_blocks, dropout: the U-Net's (images).
        hidden_units, num_hidden: the MLP's (vectors).
        label_dropout: the probability of the null label while training (a
            conditional model).
        bound_timesteps: terms of the bound's stratified estimate (0, or T and
            above: all T).
        sampling_steps: the default of ``num_steps`` (0, or T and above: T);
            ``eta``'s default is 0 (DDIM) when it is fewer than T, else 1.
    """

    family = "diffusion"
    likelihood = "bound"
    conditional = True
    draws_training_noise = True
    averaged_networks = ("denoiser",)
    learned_variance = False
    # Fixed by a subclass: its schedule.
    fixed_parameters = ()
    # RePaint's (``complete`` only; a subclass that cannot complete has none).
    complete_options = {
        "resample": SampleOption(1, "int32", at_least=1, at_most=MAX_RESAMPLE,
                                 doc="RePaint's r: each stretch of jump steps denoised r "
                                     "times (1: the replacement method)"),
        "jump": SampleOption(1, "int32", at_least=1,
                             doc="RePaint's jump length j (at most num_steps)"),
    }

    def __init__(self, data_shape, num_levels=None, timesteps=1000, schedule="linear",
                 channels=32, channel_mults=(1, 2), num_res_blocks=2, dropout=0.0,
                 hidden_units=128, num_hidden=3, label_dropout=0.1, bound_timesteps=0,
                 sampling_steps=0, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        self.timesteps = validation.check_int(timesteps, "timesteps", kind)
        self.schedule = schedule
        self.table = schedules.tables(schedules.betas(schedule, self.timesteps))
        if len(self.data_shape) not in (1, 3) or (len(self.data_shape) == 3) != \
                (self.num_levels is not None):
            raise ValueError(f"{kind}: expected images (data_shape (H, W, C) with num_levels) "
                             f"or vectors (data_shape (D,), num_levels None), got data_shape "
                             f"{self.data_shape} and num_levels {self.num_levels}")
        if not 0.0 <= float(label_dropout) < 1.0:
            raise ValueError(f"{kind}: expected 0 <= label_dropout < 1, got {label_dropout}")
        for name, value in (("bound_timesteps", bound_timesteps),
                            ("sampling_steps", sampling_steps)):
            validation.check_int(value, name, kind, at_least=0, hint=" (0 or T and above: all T)")
        self.channels = channels
        self.channel_mults = tuple(channel_mults)
        self.num_res_blocks = num_res_blocks
        self.dropout = dropout
        self.hidden_units = hidden_units
        self.num_hidden = num_hidden
        self.label_dropout = float(label_dropout)
        self.bound_timesteps = int(bound_timesteps)
        self.sampling_steps = int(sampling_steps)
        self.sample_options = {
            "num_steps": SampleOption(self.default_steps, "int32", above=0,
                                      below=self.timesteps + 1,
                                      doc=f"sampler steps, respaced over the T = "
                                          f"{self.timesteps} timesteps"),
            "eta": SampleOption(1.0 if self.default_steps == self.timesteps else 0.0,
                                at_least=0.0,
                                doc="DDIM's eta: 0 deterministic, 1 DDPM's ancestral sampler"),
            **({"guidance": SampleOption(0.0, at_least=0.0,
                                         doc="classifier-free guidance weight (0: the "
                                             "conditional model)")}
               if self.guided else {}),
            **self.sample_options,  # the base's label
        }
        self.denoiser_network = Denoiser(
            self.latent_shape, self.timesteps, 2 if self.learned_variance else 1,
            self.num_classes, channels=channels, channel_mults=channel_mults,
            num_res_blocks=num_res_blocks, dropout=dropout, hidden_units=hidden_units,
            num_hidden=num_hidden, name="denoiser")

    @property
    def default_steps(self):
        """``num_steps``' default: ``sampling_steps``, at most T (0: T)."""
        return min(self.sampling_steps or self.timesteps, self.timesteps)

    @property
    def guided(self):
        """Whether ``guidance`` is an option: a conditional model trained with
        label dropout (its null label is the unconditional model)."""
        return bool(self.num_classes) and self.label_dropout > 0

    def build(self, input_shape):
        x = tf.zeros((1,) + self.latent_shape)
        t = tf.zeros((1,), tf.int32)
        self.denoiser_network(x, t, tf.zeros((1,), tf.int32) if self.num_classes else None)
        self.built = True

    def call(self, x):
        """The network's output at the last timestep, for Keras (raw data in)."""
        t = tf.fill(tf.shape(x)[:1], self.timesteps - 1)
        return self.network_output(self.scale(x), t)

    # ---------------------------------------------------------------- data
    def scale(self, x):
        """Raw data -> the diffusion's space: levels to [-1, 1] for images."""
        if self.num_levels is None:
            return x
        return 2.0 * x / (self.num_levels - 1) - 1.0

    def unscale(self, y):
        """The diffusion's space -> raw data (levels in [0, L - 1], not rounded)."""
        if self.num_levels is None:
            return y
        return tf.clip_by_value((y + 1.0) * (self.num_levels - 1) / 2.0, 0.0,
                                self.num_levels - 1.0)

    def run_compiled(self, name, fn, *tensors):
        """``fn(*tensors)``, through a ``tf.function`` cached per model when called
        eagerly (an eager loop of T network calls dispatches every op from
        Python); as it is inside a traced function, and eagerly for models of at
        most ``EAGER_TIMESTEPS`` timesteps (tracing costs them more than it saves)."""
        if tf.inside_function() or self.timesteps <= EAGER_TIMESTEPS:
            return fn(*tensors)
        if name not in self._xla.functions:
            self._xla.functions[name] = tf.function(fn, reduce_retracing=True)
        return self._xla.functions[name](*tensors)

    def const(self, name):
        return tf.constant(self.table[name], tf.float32)

    # ------------------------------------------------------------- network
    def network_output(self, xt, t, labels=None, averaged=False):
        """The network's raw output: the noise, and ``v`` where the variance is
        learned (last axis doubled), for classes `labels` in ``[0, num_classes]``
        (``num_classes``: the null label); with `averaged` the EMA weights."""
        net = self.averaged("denoiser") if averaged else self.denoiser_network
        if self.num_classes and labels is None:
            labels = tf.fill(tf.shape(t), self.num_classes)
        return net(xt, t, labels) if self.num_classes else net(xt, t)

    def split_output(self, output):
        """(eps, v or None) of the network's output."""
        if not self.learned_variance:
            return output, None
        eps, v = tf.split(output, 2, axis=-1)
        return eps, v

    def model_log_variance(self, v, t, x):
        """log sigma_t^2 of p(x_{t-1} | x_t): the clipped posterior log-variance,
        or its interpolation with log beta_t by ``v`` in [-1, 1] (learned)."""
        small = schedules._at(self.const("posterior_log_variance_clipped"), t, x)
        if v is None:
            return small * tf.ones_like(x)
        large = schedules._at(tf.math.log(self.const("betas")), t, x)
        frac = (v + 1.0) / 2.0
        return frac * large + (1.0 - frac) * small

    def p_mean_log_variance(self, xt, t, output, clip=False):
        """Mean, log-variance and predicted x_0 of ``p(x_{t-1} | x_t)`` from the
        network's `output`."""
        eps, v = self.split_output(output)
        x0 = schedules.predict_x0(xt, t, eps, self.const("alphas_cumprod"))
        if clip:
            x0 = tf.clip_by_value(x0, -1.0, 1.0)
        mean, _, _ = schedules.q_posterior(x0, xt, t, self.table)
        return mean, self.model_log_variance(v, t, xt), x0

    # --------------------------------------------------------------- losses
    def training_labels(self, labels, batch, training):
        """The classes the network sees while training: the batch's (random ones
        if none), each replaced by the null label with ``label_dropout``."""
        if not self.num_classes:
            return None
        if labels is None:
            labels = self.random_labels(batch)
        if training and self.label_dropout > 0:
            drop = self.rng.uniform(tf.stack([batch])) < self.label_dropout
            labels = tf.where(drop, self.num_classes, tf.cast(labels, tf.int32))
        return labels

    def draw_training_timesteps(self, batch):
        """Uniform timesteps, and the weight of each example's terms (1 here)."""
        t = tf.random.stateless_uniform(tf.stack([batch]), seed=self.rng.next_seed(),
                                        minval=0, maxval=self.timesteps, dtype=tf.int32)
        return t, tf.ones([batch])

    def compute_losses(self, x, training=False, labels=None):
        return self.loss_terms(x, training, labels)[0]

    def training_terms(self, x, labels=None):
        return self.loss_terms(x, True, labels)

    def noised_batch(self, x, training, labels=None):
        """A step's x0, weighted timesteps t, noise, output at x_t and noise MSE."""
        x0 = self.scale(tf.convert_to_tensor(x, tf.float32))
        batch = tf.shape(x0)[0]
        t, weights = self.draw_training_timesteps(batch)
        noise = self.rng.normal(tf.shape(x0))
        xt = schedules.q_sample(x0, t, noise, self.const("alphas_cumprod"))
        output = self.network_output(xt, t, self.training_labels(labels, batch, training))
        eps, _ = self.split_output(output)
        mse = tf.reduce_mean(tf.square(noise - eps), axis=list(range(1, len(x0.shape))))
        return x0, t, weights, noise, output, mse

    def loss_terms(self, x, training, labels=None):
        """The loss terms, and what :meth:`after_update` needs (None here)."""
        _, _, weights, _, _, mse = self.noised_batch(x, training, labels)
        return {"loss": tf.reduce_mean(weights * mse)}, None

    # ---------------------------------------------------------------- bound
    def decoder_nll(self, x0, mean, log_variance):
        """-log p(x_0 | x_1) per example: the discretized Gaussian (images) or the
        Gaussian density (vectors)."""
        axes = list(range(1, len(x0.shape)))
        if self.num_levels is None:
            return -tf.reduce_sum(schedules.gaussian_log_likelihood(x0, mean, log_variance),
                                  axis=axes)
        log_p = schedules.discretized_gaussian_log_likelihood(
            x0, mean, 0.5 * log_variance, 2.0 / (self.num_levels - 1))
        return -tf.reduce_sum(log_p, axis=axes)

    @property
    def clips_x0(self):
        """Whether the reverse process clips each predicted ``x_0`` to ``[-1, 1]``
        (images): the sampler's steps and the bound's terms, the same model."""
        return self.num_levels is not None

    def term_at(self, x0, t, noise, labels=None, output=None, averaged=True, clip=None):
        """The bound's term at timesteps `t` per example (nats): the KL of the
        reverse step against the posterior for t >= 1, the decoder's NLL at t = 0;
        `output` is the network's at ``x_t`` (computed here if None). `clip`: the
        predicted ``x_0`` clipped (default :attr:`clips_x0`, as the sampler and
        the paper's code's bound evaluation; a training loss passes False, as
        the paper's code, so that its gradient reaches every value)."""
        xt = schedules.q_sample(x0, t, noise, self.const("alphas_cumprod"))
        if output is None:
            output = self.network_output(xt, t, labels, averaged=averaged)
        clip = self.clips_x0 if clip is None else clip
        mean, log_variance, _ = self.p_mean_log_variance(xt, t, output, clip=clip)
        true_mean, _, true_log_variance = schedules.q_posterior(x0, xt, t, self.table)
        axes = list(range(1, len(x0.shape)))
        kl = tf.reduce_sum(schedules.normal_kl(true_mean, true_log_variance, mean,
                                               log_variance), axis=axes)
        return tf.where(t == 0, self.decoder_nll(x0, mean, log_variance), kl)

    def prior_term(self, x0):
        """``KL(q(x_T | x_0) || N(0, I))`` per example (nats)."""
        t = tf.fill(tf.shape(x0)[:1], self.timesteps - 1)
        mean, _, log_variance = schedules.q_mean_variance(x0, t, self.const("alphas_cumprod"))
        return tf.reduce_sum(schedules.normal_kl(mean, log_variance, 0.0, 0.0),
                             axis=list(range(1, len(x0.shape))))

    def bound_strata(self):
        """(K, the strata's first timesteps (K + 1 boundaries)) of the bound's sum."""
        k = min(self.bound_timesteps or self.timesteps, self.timesteps)
        bounds = np.floor(np.arange(k + 1) * self.timesteps / k).astype(np.int32)
        return k, bounds

    def vlb(self, x0, seed, labels=None):
        """(prior term (batch,), the K terms (batch, K) already weighted by their
        strata's sizes, their timesteps (batch, K)) of the bound on ``x_0`` (scaled)."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        if labels is None:
            return self.run_compiled("vlb", self.vlb_terms, tf.convert_to_tensor(x0), seed)
        return self.run_compiled("vlb_labels", self.vlb_terms, tf.convert_to_tensor(x0), seed,
                             tf.convert_to_tensor(labels, tf.int32))

    def vlb_terms(self, x0, seed, labels=None):
        """:meth:`vlb`'s computation."""
        k, bounds = self.bound_strata()
        batch = tf.shape(x0)[0]
        low = tf.constant(bounds[:-1])
        size = tf.constant(bounds[1:] - bounds[:-1])
        if k == self.timesteps:
            timesteps = tf.tile(low[None], tf.stack([batch, 1]))
        else:  # each example its own timestep in each stratum: independent estimates
            offsets = tf.random.stateless_uniform(
                tf.stack([batch, k]), seed=tf.random.experimental.stateless_fold_in(seed, -1),
                dtype=tf.float32)
            timesteps = low + tf.minimum(tf.cast(offsets * tf.cast(size, tf.float32), tf.int32),
                                         size - 1)

        def body(i, terms):
            t = timesteps[:, i]
            noise = tf.random.stateless_normal(tf.shape(x0),
                                               tf.random.experimental.stateless_fold_in(seed, i))
            term = self.term_at(x0, t, noise, labels) * tf.cast(size[i], tf.float32)
            return i + 1, terms.write(i, term)

        _, terms = tf.while_loop(lambda i, _: i < k, body,
                                 (tf.constant(0), tf.TensorArray(tf.float32, size=k)))
        return self.prior_term(x0), tf.transpose(terms.stack()), timesteps

    @on_batches("data")
    def nll(self, x, seed=None, labels=None):
        """The negative variational bound per example in nats (an upper bound on
        the NLL, never the NLL itself), its noise drawn statelessly from `seed`:
        over all T terms, or their stratified estimate with ``bound_timesteps``.

        A conditional model bounds ``-log p(x | y)`` for `labels`; without them,
        ``-log p(x)``: through the null label when trained with label dropout,
        else ``-log mean_y exp(-bound(x, y))`` over the classes (still a bound)."""
        x = self.validate_inputs(x, "nll")
        seed = self.stateless_seed(seed)
        x0 = self.scale(x)
        if not self.num_classes or labels is not None or self.guided:
            labels = self.check_labels(labels, x, "nll") if labels is not None else None
            prior, terms, _ = self.vlb(x0, seed, labels)
            return prior + tf.reduce_sum(terms, axis=1)
        bounds = []
        for y in range(self.num_classes):
            prior, terms, _ = self.vlb(x0, seed, tf.fill(tf.shape(x0)[:1], y))
            bounds.append(prior + tf.reduce_sum(terms, axis=1))
        return math.log(self.num_classes) - tf.reduce_logsumexp(-tf.stack(bounds), axis=0)

    @on_batches("data")
    def bound_terms(self, x, seed=None, labels=None):
        """``{"prior": (batch,), "terms": (batch, K), "timesteps": (batch, K)}``:
        the bound's terms (nats), each weighted by its stratum's size (1 over all
        T), and the timestep of each (with ``bound_timesteps`` each example draws
        its own in each stratum, so the examples' estimates are independent);
        :meth:`nll` is ``prior + terms.sum(1)`` (at the same seed)."""
        x = self.validate_inputs(x, "bound_terms")
        labels = self.check_labels(labels, x, "bound_terms") if labels is not None else None
        prior, terms, timesteps = self.vlb(self.scale(x), self.stateless_seed(seed), labels)
        return {"prior": prior, "terms": terms, "timesteps": timesteps}

    # ---------------------------------------------------------------- serving
    def data_signatures(self):
        conditional = [self.label_spec()] if self.num_classes else []
        steps = tf.TensorSpec([], tf.int32, name="num_steps")

        def with_labels(fn):
            # Labels go positionally: on_batches makes an empty batch's labels one too.
            if self.num_classes:
                return lambda x, label, *more: fn(x, *more, label)
            return fn

        nll = with_labels(lambda x, seed, labels=None: {"nll": self.nll(x, seed, labels)})
        encode = with_labels(lambda x, num_steps, labels=None: {
            "z": self.encode(x, num_steps, labels)})
        decode = with_labels(lambda z, num_steps, labels=None: {
            "x": self.decode(z, num_steps, labels)})
        return {
            "nll": (nll, [self.data_spec(), *conditional,
                          tf.TensorSpec([], tf.int32, name="seed")]),
            "encode": (encode, [self.data_spec(), *conditional, steps]),
            "decode": (decode, [tf.TensorSpec((None,) + self.latent_shape, tf.float32, name="z"),
                                *conditional, steps]),
        }
