"""What every autoregressive model of the zoo shares: p(x) = prod_i p(x_i | x_<i)
over a sequence of discrete symbols with a data shape."""

import math

import numpy as np
import tensorflow as tf

from zoo.base import GenerativeModel, SampleOption
from zoo.distributions import Categorical
from zoo.metrics.likelihood import bits_per_dim
from zoo.validation import on_batches


class AutoregressiveModel(GenerativeModel):
    """An autoregressive model of discrete data: p(x) = prod_i p(x_i | x_<i), the
    dimensions in the model's order, trained by maximum likelihood.

    The data are integer levels (symbols) in ``[0, num_levels)`` with any
    ``data_shape``. The last axis of data of rank >= 2 is the channels (an
    image's colours); 1-D data (a text) have one channel. The model's order is
    the row-major order of ``data_shape``: for images, raster order over the
    pixels, and at each pixel its channels in turn (van den Oord et al. 2016a,
    Sec. 2.1). ``nll`` is the exact NLL of the integer levels: no dequantization
    (``likelihood = "discrete"``).

    A subclass gives :meth:`params`, the observation model's parameters of every
    dimension at once (a masked network: those of dimension i may depend only on
    the dimensions before it), and may change the observation model
    (:meth:`make_observation`, a categorical over the levels here; any of
    :mod:`zoo.distributions` whose ``discrete`` is true). Sampling and completion
    run one compiled sequential loop (``tf.while_loop``) over the dimensions,
    whose step :meth:`step_params` computes the network over the whole input
    here; a subclass whose architecture allows it gives a cached step
    (:meth:`sampling_state`, :meth:`step_params`).

    Args:
        data_shape: the shape of one example, e.g. ``(8, 8, 1)`` or ``(128,)``.
        num_levels: L >= 2, the levels (symbols) of the data.
        (others): as :class:`~zoo.base.GenerativeModel` (``num_classes`` for a
            subclass that sets ``conditional``).
    """

    family = "autoregressive"
    likelihood = "discrete"
    loss_names = ("loss", "bits_per_dim")
    sample_options = {
        "temperature": SampleOption(1.0, above=0.0,
                                    doc="divides the logits of every conditional (1: the "
                                        "model's distribution)"),
    }

    def __init__(self, data_shape, num_levels=256, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        where = type(self).__name__
        if self.num_levels is None or self.num_levels < 2:
            raise ValueError(f"{where}: expected num_levels >= 2 (the data's discrete levels), "
                             f"got {num_levels}")
        self.observation_model = self.make_observation()
        if not self.observation_model.discrete:
            raise ValueError(f"{where}: expected an observation model of the discrete levels, "
                             f"got {type(self.observation_model).__name__}")

    # -------------------------------------------------- what a model writes
    def make_observation(self):
        """The observation model of each dimension (:mod:`zoo.distributions`)."""
        return Categorical(self.num_levels)

    def params(self, x, labels=None, training=False):
        """The observation parameters of every dimension, from raw levels `x`
        ``(B,) + data_shape`` (float32): ``(B,) + site_shape + (P * channels,)``,
        P = ``observation_model.params_per_channel``, in P blocks of ``channels``
        (:meth:`zoo.distributions.ObservationModel.split`). Those of dimension i
        may depend only on the dimensions before it in the model's order (and on
        `labels`, the classes of a conditional model)."""
        raise NotImplementedError

    def sampling_state(self, n, labels=None):
        """What a cached sampler keeps between the steps of its loop (a nest of
        tensors of fixed shapes; none here)."""
        return ()

    def step_params(self, x, i, state, labels=None):
        """The observation parameters ``(B, P)`` of dimension `i` (a scalar tensor)
        of the partly drawn batch `x` (dimensions from i on are zero), and the next
        `state`. Here the network over the whole input (cost D passes for a draw);
        a subclass may cache."""
        return tf.gather(self.ordered_params(self.params(x, labels)), i, axis=1), state

    # ---------------------------------------------------------------- shapes
    @property
    def channels(self):
        """Values per site: the last axis of data of rank >= 2, else 1."""
        return self.data_shape[-1] if len(self.data_shape) >= 2 else 1

    @property
    def site_shape(self):
        """The data's shape without its channel axis (pixels; a text's positions)."""
        return self.data_shape[:-1] if len(self.data_shape) >= 2 else self.data_shape

    @property
    def value_range(self):
        """Integer levels in [0, num_levels - 1]."""
        return (0.0, float(self.num_levels - 1))

    def scaled(self, x):
        """Raw levels -> [-1, 1], a network's input."""
        return 2.0 * x / (self.num_levels - 1.0) - 1.0

    def ordered_params(self, params):
        """``params`` as :meth:`params` gives them -> ``(B, D, P)``, the dimensions
        in the model's order (raster, then channel)."""
        p = self.observation_model.params_per_channel
        batch = tf.shape(params)[0]
        sites = int(np.prod(self.site_shape))
        blocks = tf.reshape(params, tf.stack([batch, sites, p, self.channels]))
        return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2]),
                          tf.stack([batch, sites * self.channels, p]))

    def ordered(self, x):
        """A batch ``(B,) + data_shape`` -> ``(B, D)`` in the model's order."""
        return tf.reshape(x, [-1, self.event_size])

    def call(self, x):
        labels = tf.zeros(tf.shape(x)[:1], tf.int32) if self.num_classes else None
        return self.params(x, labels)

    # ------------------------------------------------------------ the data
    def validate_inputs(self, x, where="input", values=True):
        """Raw data: ``(batch,) + data_shape``, integer levels in [0, num_levels - 1]
        (the model is of the discrete data)."""
        what = {"images": "raw pixel values", "sequences": "symbols"}.get(self.data_kind, "x")
        return self.check_batch(x, where, self.data_shape, self.value_range, what=what,
                                integers=True, values=values)

    # ----------------------------------------------------------- likelihood
    def log_probs_given(self, x, labels=None, training=False):
        """log p(x_i | x_<i) per dimension ``(B, D)`` of checked levels `x`."""
        params = self.ordered_params(self.params(x, labels, training=training))
        return self.observation_model.log_prob(self.ordered(x)[..., None], params)[..., 0]

    def log_likelihood(self, x, labels=None, training=False):
        """log p(x | y) per example; for a conditional model without labels,
        log p(x) under classes uniform a priori (the logsumexp over classes)."""
        if not self.num_classes or labels is not None:
            return tf.reduce_sum(self.log_probs_given(x, labels, training), axis=-1)
        batch = tf.shape(x)[0]
        per_class = tf.stack([
            tf.reduce_sum(self.log_probs_given(x, tf.fill(tf.stack([batch]), k), training),
                          axis=-1)
            for k in range(self.num_classes)])
        return tf.reduce_logsumexp(per_class, axis=0) - math.log(self.num_classes)

    @on_batches("data")
    def conditional_log_probs(self, x, labels=None):
        """log p(x_i | x_<i) (nats) per dimension, ``(B, D)`` in the model's order
        (raster, then channel): the causal structure seen from outside. A
        conditional model needs `labels`."""
        x = self.validate_inputs(x, "conditional_log_probs")
        if self.num_classes and labels is None:
            raise ValueError(f"{self.name}.conditional_log_probs: a class-conditional model "
                             f"needs labels: integers of shape (batch,) in "
                             f"[0, {self.num_classes}), got none")
        labels = None if labels is None else self.check_labels(labels, x,
                                                               "conditional_log_probs")
        return self.log_probs_given(x, labels)

    @on_batches("data")
    def log_prob(self, x, labels=None):
        """Exact log-probability (nats) of the integer levels `x`; a conditional
        model gives log p(x | y) for `labels`, and without them log p(x) under
        uniform classes."""
        x = self.validate_inputs(x, "log_prob")
        labels = None if labels is None else self.check_labels(labels, x, "log_prob")
        return self.log_likelihood(x, labels)

    @on_batches("data")
    def nll(self, x, seed=None, labels=None):
        """-log p(x) per example (nats), exact: nothing is drawn, `seed` is unused."""
        x = self.validate_inputs(x, "nll")
        labels = None if labels is None else self.check_labels(labels, x, "nll")
        return -self.log_likelihood(x, labels)

    # -------------------------------------------------------------- training
    def compute_losses(self, x, training=False, labels=None):
        nll = -tf.reduce_mean(self.log_likelihood(x, labels, training=training))
        return {"loss": nll, "bits_per_dim": bits_per_dim(nll, self.event_size)}

    # -------------------------------------------------------------- sampling
    def generate(self, x, keep, seed, temperature=1.0, labels=None):
        """The sequential loop: each dimension in the model's order is drawn from
        its conditional (tempered by `temperature`) given those before it, where
        `keep` is 0; where it is 1 the value of `x` is kept. The noise is drawn
        before the loop by TF's kernels, the observation model's uniforms of every
        dimension (``noise``, from the stateless `seed`), and dimension i is
        ``sample_from_noise`` of its own. One ``tf.while_loop``, compiled at every
        call: under XLA where the model's ``xla_sampling`` says it wins, outside
        the serving signatures (:meth:`~zoo.serving.Serving.xla_where_traced`),
        else a plain graph. XLA and the plain graph compute the parameters to float
        rounding, so a draw whose uniform lies that close to a boundary of its
        inverse CDF can differ between them."""
        x = tf.convert_to_tensor(x, tf.float32)
        noise = self.observation_model.noise(tf.shape(self.ordered(x)), seed)
        return self.xla_where_traced(
            "generate", self._generate_loop, x, tf.convert_to_tensor(keep, tf.float32), noise,
            tf.convert_to_tensor(temperature, tf.float32), labels, loop=True)

    def _generate_loop(self, x, keep, noise, temperature, labels):
        shape = tf.shape(x)
        flat, known = self.ordered(x), self.ordered(keep) > 0.5
        size = self.event_size
        state = self.sampling_state(shape[0], labels)

        def body(i, flat, state):
            params, state = self.step_params(tf.reshape(flat, shape), i, state, labels)
            params = self.observation_model.temper(params, temperature)
            drawn = self.observation_model.sample_from_noise(params, noise[:, i][:, None])[:, 0]
            value = tf.where(known[:, i], flat[:, i], drawn)
            here = tf.one_hot(i, size, dtype=flat.dtype)
            return i + 1, flat * (1.0 - here) + value[:, None] * here, state

        _, flat, _ = tf.while_loop(lambda i, *_: i < size, body, (tf.constant(0), flat, state),
                                   maximum_iterations=size, parallel_iterations=1)
        return tf.reshape(flat, shape)

    def draw_samples(self, n, seed, temperature=1.0, label=-1):
        """Every dimension drawn in turn (for a conditional model, of the class
        `label`, or of classes drawn uniformly for -1)."""
        labels = (self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, -1),
                                     label) if self.num_classes else None)
        zeros = tf.zeros(tf.concat([tf.reshape(n, [1]), self.data_shape], 0))
        return self.generate(zeros, zeros, seed, temperature, labels)

    def draw_completion(self, x, mask, seed, temperature=1.0, label=-1):
        """The dimensions where `mask` is 0 drawn in the model's order, each given
        everything before it (kept values and those drawn): the exact conditional
        only for what comes after the kept part (the bottom of an image given its
        top, the continuation of a prompt)."""
        labels = (self.sample_labels(tf.shape(x)[0],
                                     tf.random.experimental.stateless_fold_in(seed, -1), label)
                  if self.num_classes else None)
        return self.generate(x, mask, seed, temperature, labels)

    def data_signatures(self):
        if self.num_classes:
            return {
                "log_prob": (lambda x, label: {"log_prob": self.log_prob(x, label)},
                             [self.data_spec(), self.label_spec()]),
                "conditional_log_probs": (
                    lambda x, label: {"log_probs": self.conditional_log_probs(x, label)},
                    [self.data_spec(), self.label_spec()]),
            }
        return {
            "log_prob": (lambda x: {"log_prob": self.log_prob(x)}, [self.data_spec()]),
            "conditional_log_probs": (lambda x: {"log_probs": self.conditional_log_probs(x)},
                                      [self.data_spec()]),
        }
