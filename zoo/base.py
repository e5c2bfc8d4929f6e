"""The model contract every model of the zoo follows (docs/architecture.md).

A model is a ``keras.Model`` subclass that

* says what it is: ``family`` ("flow", "vae", "gan", ...) and ``likelihood``
  (one of :data:`LIKELIHOODS`), with ``nll(x, seed=None)``, the per-example
  negative log-likelihood in nats or its bound, where it has one;
* names its loss terms in ``loss_names``; ``compute_losses(x, training)`` returns
  one scalar per name, and the shared steps keep one ``keras.metrics.Mean`` per
  term, so ``model.fit``/``model.evaluate`` on a ``tf.data`` pipeline just work,
  under ``tf.distribute`` strategies and with ``jit_compile=True``;
* draws the random numbers of its training step from ``self.rng`` (a
  :class:`~zoo.nn.random_stream.RandomStream` whose state checkpoints hold);
* stores every constructor argument as an attribute of the same name, which is
  all ``get_config`` returns, so ``.keras`` save -> load round-trips;
* builds all its weights in ``__init__`` (by ending it with ``self.build_model()``);
* samples with ``sample(n, seed=None, **options)``, the options declared in
  ``sample_options`` and implemented by ``draw_samples``;
* lists its serving signatures that take data in ``data_signatures()``; the
  ``sample`` signature (:mod:`zoo.serving`) is added to them;
* validates inputs at that public boundary (eagerly, and with graph assertions
  inside exported signatures) with errors naming what was expected
  (:mod:`zoo.validation`).

How ``compile`` and ``fit`` run the steps (steps per execution, XLA executions,
multi-worker reduction) is :mod:`zoo.fitting`'s, to which the model delegates.
"""

import dataclasses
import inspect

import keras
import numpy as np
import tensorflow as tf

from zoo import fitting
from zoo import precision as precision_module
from zoo import validation
from zoo.completion import Completion
from zoo.conditioning import ClassConditioning
from zoo.nn.random_stream import RandomStream
from zoo.nn.weight_average import WeightAverage
from zoo.serving import Serving, CompiledFunctions

# What a model's ``nll`` is, by its ``likelihood``; ``zoo evaluate`` writes the text.
LIKELIHOODS = {
    "exact": "exact NLL of the continuous data",
    "dequantized": "NLL of uniformly dequantized data, an upper bound on the discrete "
                   "data's NLL",
    "discrete": "exact NLL of the discrete data",
    "bound": "negative ELBO (or a tighter variational bound), an upper bound on the NLL",
    "none": "no likelihood: the model is evaluated by the quality of its samples",
}


@dataclasses.dataclass(frozen=True)
class SampleOption:
    """A sampler option a model declares in ``sample_options``.

    Exported as a scalar input of the ``sample`` signature whose default is
    written into the SignatureDef, so a served model may be asked for it or not.

    Args:
        default: the value when the option is not given.
        dtype: ``"float32"`` or ``"int32"``.
        above: values must be greater than this (None: no bound).
        below: values must be smaller than this (None: no bound).
        at_least: values must be at least this (None: no bound).
        at_most: values must be at most this (None: no bound).
        doc: one line for ``zoo list`` and the docs.
    """

    default: float
    dtype: str = "float32"
    above: float = None
    below: float = None
    doc: str = ""
    at_least: float = None
    at_most: float = None

    def expected(self, name):
        """What the values must be, for error messages."""
        return validation.expected_number(name, self.above, self.below, self.at_least,
                                          self.at_most)

    def check(self, model, name, value, where="sample"):
        """The value as a Python number (eager) or a checked tensor (traced); `where`
        is the method in messages."""
        return validation.check_number(value, name, f"{model.name}.{where}", self.dtype,
                                       self.above, self.below, self.at_least, self.at_most)


class GenerativeModel(ClassConditioning, Completion, Serving, fitting.Fitting, keras.Model):
    """Base class of every model of the zoo.

    A model (or its family's base class) sets ``family``, ``likelihood``,
    ``loss_names`` and ``sample_options``, and writes the methods of the first
    section below: ``compute_losses``, ``nll`` (if it has a likelihood),
    ``draw_samples`` and ``data_signatures``, with a constructor that stores its
    arguments and ends with ``self.build_model()``. The rest is written here,
    with the input checks of :mod:`zoo.validation`, and in four mixins: class
    labels (:class:`zoo.conditioning.ClassConditioning`), completion
    (:class:`zoo.completion.Completion`), compiled samplers and the serving
    signatures (:class:`zoo.serving.Serving`), and ``compile``/``fit`` with the
    train and test steps (:class:`zoo.fitting.Fitting`).

    Args:
        data_shape: the shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``;
            ``zoo.get`` takes it from the dataset.
        num_levels: for images, the number of intensity levels of the raw data
            (256 for 8-bit pixels, 17 for scikit-learn's digits); raw inputs lie in
            ``[0, num_levels)``. ``None`` for continuous data such as 2-D densities.
        num_classes: classes of a class-conditional model (models whose class
            sets ``conditional``); 0: unconditional. A conditional model trains
            on ``(x, label)`` batches, ``compute_losses`` takes ``labels``,
            ``sample`` the option ``label`` (-1: classes at random) and its data
            signatures a ``label`` input.
        ema_decay: the decay of an exponential moving average of the weights of
            the model's ``averaged_networks``, which sampling and export use
            (:meth:`averaged`); 0: none.
    """

    family = None
    likelihood = "none"
    loss_names = ("loss",)
    sample_options = {}
    # Constructor arguments of a base class that a subclass fixes (not in its config).
    fixed_parameters = ()
    # Whether a training step draws from the random stream ``rng`` (noise, latents,
    # dequantization); a deterministic step leaves the stream where it is.
    draws_training_noise = False
    # Whether the model can be class-conditional (``num_classes > 0``).
    conditional = False
    # The networks (``self.<name>_network``) whose weights ``ema_decay`` averages.
    averaged_networks = ()
    # Whether ``extra_metrics`` takes ``(x, label)`` batches (a classifier's
    # accuracy) rather than ``x``.
    evaluation_labels = False

    def __init__(self, data_shape, num_levels=None, precision="float32", num_classes=0,
                 ema_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        precision_module.check(precision, type(self), self.name)
        self.precision = precision
        self.data_shape = tuple(int(d) for d in data_shape)
        self.num_levels = None if num_levels is None else int(num_levels)
        if any(d <= 0 for d in self.data_shape):
            raise ValueError(f"data_shape must be positive, got {self.data_shape}")
        self.num_classes = int(num_classes)
        if self.num_classes < 0:
            raise ValueError(f"{kind}: expected num_classes >= 0 (0: unconditional), got "
                             f"{num_classes}")
        if self.num_classes and not self.conditional:
            raise ValueError(f"{kind}: this model cannot be class-conditional; expected "
                             f"num_classes=0, got {num_classes}")
        if self.num_classes:
            self.sample_options = {**self.sample_options, "label": SampleOption(
                -1, "int32", above=-2, below=self.num_classes,
                doc="the class of every sample; -1: classes uniformly at random")}
        if not self.averaged_networks:  # (a subclass may use the name for its own)
            if ema_decay:
                raise ValueError(f"{kind}: this model keeps no weight average; expected "
                                 f"ema_decay=0, got {ema_decay}")
        else:
            self.ema_decay = float(ema_decay)
            if not 0.0 <= self.ema_decay < 1.0:
                raise ValueError(f"{kind}: expected 0 <= ema_decay < 1, got {self.ema_decay}")
        for network in self.averaged_networks:  # tracked by build_model
            setattr(self, f"{network}_average",
                    WeightAverage(self.ema_decay, name=f"{network}_average")
                    if self.ema_decay else None)
        self.rng = RandomStream(name="rng")
        self._xla = CompiledFunctions()

    # -------------------------------------------------- what a model writes
    def compute_losses(self, x, training=False):
        """A dict with one scalar tensor per name in ``loss_names``."""
        raise NotImplementedError

    def nll(self, x, seed=None):
        """Per-example negative log-likelihood in nats, or the bound that
        ``likelihood`` names; `seed` makes any noise (dequantization, posterior
        samples) reproducible."""
        raise TypeError(f"{self.name} has no likelihood (likelihood='{self.likelihood}'): "
                        "evaluate it by the quality of its samples")

    def draw_samples(self, n, seed, **options):
        """`n` (>= 1) samples from the stateless seed `seed` (shape [2])."""
        raise NotImplementedError

    def data_signatures(self):
        """Name -> (method, input TensorSpecs) of the serving signatures other than
        ``sample``; the first one is also exported as ``serving_default``."""
        raise NotImplementedError

    # ------------------------------------------ what a model may override
    @staticmethod
    def default_optimizer(learning_rate=1e-3):
        """The optimizer ``zoo train`` compiles with (models override it)."""
        return keras.optimizers.Adam(learning_rate=learning_rate)

    def all_optimizers(self):
        """Every optimizer of the model (one here; one per network for adversarial ones)."""
        return [self.optimizer]

    # ---------------- what training and evaluating it take (zoo train, zoo evaluate)
    def training_optimizers(self, learning_rate, critic_learning_rate=None):
        """The ``compile`` keyword arguments of ``zoo train``: here
        ``default_optimizer(learning_rate)``. A model with critics gives them
        `critic_learning_rate` where set (:mod:`zoo.adversarial`).

        Raises:
            ValueError: a `critic_learning_rate` for a model that trains no critic.
        """
        if critic_learning_rate is not None:
            raise ValueError(f"{type(self).__name__} trains no critic")
        return {"optimizer": self.default_optimizer(learning_rate)}

    def evaluation_defaults(self):
        """What ``zoo evaluate`` spends on the model unless told otherwise:
        ``nll_examples`` (the examples the likelihood averages over; None: the
        whole split), ``num_samples`` (drawn for the sample-quality metrics) and
        ``sample_options`` (sampler options they are drawn with, of
        ``sample_options``); a family adds the settings of its
        :meth:`extra_metrics` (a VAE's ``iwae_samples``, ``iwae_examples``)."""
        return {"nll_examples": None, "num_samples": 10_000, "sample_options": {}}

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """The family's own entries of ``metrics.json`` (name -> JSON value),
        measured on the batched `data` with the `settings` of
        :meth:`evaluation_defaults` (overridden by ``zoo evaluate``'s flags); a
        family that draws pictures writes them under ``run_dir/evaluation/`` and
        lists them under ``pictures``. The batches are ``(x, label)`` for a model
        whose ``evaluation_labels`` is set. None here."""
        return {}

    def build_weights(self):
        """Creates every weight by running ``call`` once on a zero batch."""
        with tf.init_scope():
            self(tf.zeros((1,) + self.data_shape))

    @property
    def latent_shape(self):
        """The shape of one latent (``decode``/``generate`` take a batch of them)."""
        return self.data_shape

    @classmethod
    def likelihood_kinds(cls):
        """The values ``likelihood`` takes for this class, whatever the data."""
        return (cls.likelihood,)

    def prefers_xla_executions(self):
        """Whether ``fit``, when ``compile`` left ``steps_per_execution`` and
        ``jit_compile`` at "auto" and more than one step per execution is chosen,
        runs each execution as one XLA program (:func:`zoo.fitting.xla_train_function`).
        Families where that was measured faster say so."""
        return False

    def training_terms(self, x, labels=None):
        """The loss terms of a training step (on the classes `labels` of a
        conditional model), and what :meth:`after_update` needs of its forward
        pass (None here)."""
        return self.compute_losses(x, training=True, **self.with_labels(labels)), None

    def after_update(self, state):
        """Runs after the optimizer's update with what ``training_terms`` returned
        beside the terms (e.g. a codebook's moving averages); nothing here."""

    # ------------------------------------------------------------------ config
    @classmethod
    def parameter_names(cls):
        """The constructor arguments of this class (through its base classes)."""
        names = ["data_shape", "num_levels", "precision"]
        names += ["num_classes"] if cls.conditional else []
        names += ["ema_decay"] if cls.averaged_networks else []
        for klass in cls.__mro__:
            if klass is not GenerativeModel and issubclass(klass, GenerativeModel):
                names += [p.name for p in inspect.signature(klass.__init__).parameters.values()
                          if p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        fixed = set(cls.fixed_parameters) | {"name"}
        return [n for n in dict.fromkeys(names) if n not in fixed]

    def get_config(self):
        """The constructor's arguments (read back from attributes of the same name)."""
        config = {"name": self.name}
        for p in self.parameter_names():
            value = getattr(self, p)
            config[p] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def build_model(self):
        """Creates the loss trackers, every weight (:meth:`build_weights`) and then
        the random stream (so that its seed, drawn from Python's ``random``, does
        not change the weights' initial values)."""
        self.trackers = {n: keras.metrics.Mean(name=n) for n in self.loss_names}
        self.build_weights()
        for network in self.averaged_networks:
            average = getattr(self, f"{network}_average")
            if average is not None:
                average.track(getattr(self, f"{network}_network"))
        precision_module.apply(self, self.precision)
        self.rng.initialize()

    @property
    def data_kind(self):
        """``"images"`` ((H, W, C) levels), ``"sequences"`` ((T,) symbols: a text's
        bytes), ``"points"`` (2-D) or ``"vectors"``."""
        if len(self.data_shape) == 3 and self.num_levels is not None:
            return "images"
        if len(self.data_shape) == 1 and self.num_levels is not None:
            return "sequences"
        return "points" if self.data_shape == (2,) else "vectors"

    @property
    def value_range(self):
        """The interval inputs must lie in: [0, num_levels] for images."""
        if self.num_levels is None:
            return (-np.inf, np.inf)
        return (0.0, float(self.num_levels))

    @property
    def event_size(self):
        return int(np.prod(self.data_shape))

    @property
    def likelihood_description(self):
        """What ``nll`` is, in words (for ``metrics.json``)."""
        return LIKELIHOODS[self.likelihood]

    # ------------------------------------------------- inputs (zoo.validation)
    def check_batch(self, x, where, event_shape, value_range=(-np.inf, np.inf), what="x",
                    integers=False, values=True):
        """Checks a batch at the public boundary of method `where`; returns it as
        float32 (:func:`zoo.validation.check_batch`): dtype and static shape
        always; values with numpy when eager and with graph assertions inside
        traced graphs, unless `values` is False (the training step's own input)."""
        return validation.check_batch(x, f"{self.name}.{where}", event_shape, value_range,
                                      what=what, integers=integers, values=values)

    def validate_inputs(self, x, where="input", values=True):
        """:meth:`check_batch` for raw data: shape ``(batch,) + data_shape`` in
        ``value_range`` ("raw pixel values" for images)."""
        what = "raw pixel values" if self.num_levels is not None else "x"
        return self.check_batch(x, where, self.data_shape, self.value_range, what=what,
                                values=values)

    def validate_count(self, n, where="sample"):
        """A sample count: an int >= 1 (eager), or an int tensor checked >= 0 in graphs."""
        return validation.validate_count(n, f"{self.name}.{where}")

    def stateless_seed(self, seed):
        """A stateless seed (shape [2] int32) from an int/tensor seed, random if None."""
        return validation.stateless_seed(seed, self.name)

    def options_of(self, where):
        """The options the method `where` takes: ``sample_options``, and for
        ``complete`` also the model's ``complete_options``
        (:class:`~zoo.completion.Completion`)."""
        if where == "complete":
            return {**self.sample_options, **self.complete_options}
        return self.sample_options

    def check_options(self, options, where):
        """Every option `where` takes (:meth:`options_of`) checked, its default where
        `options` does not give it; a TypeError names unknown ones."""
        declared = self.options_of(where)
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise TypeError(f"{self.name}.{where}: unknown option(s) {unknown}; its options: "
                            f"{sorted(declared) or 'none'}")
        return {name: option.check(self, name, options.get(name, option.default), where)
                for name, option in declared.items()}

    # ---------------------------------------------------------------- sampling
    def sample(self, n, seed=None, **options):
        """`n` samples drawn statelessly from `seed` (reproducible), with the
        sampler options of ``sample_options`` (defaults where not given)."""
        n = self.validate_count(n)
        values = self.check_options(options, "sample")
        seed = self.stateless_seed(seed)
        if isinstance(n, int):
            return self.draw_samples(n, seed, **values)
        # In a graph n may be 0: draw one and return none of it (a shape-0 draw
        # breaks layers that reshape with -1).
        return self.draw_samples(tf.maximum(n, 1), seed, **values)[:n]

    def sample_batches(self, n, seed=0, batch_size=1000, **options):
        """Yields `n` samples as NumPy batches of at most `batch_size`, every batch
        drawn by one graph (the exported ``sample`` signature's; about 3x faster
        than eager sampling for a flow), with the sampler `options`. The first batch
        is ``sample(count, seed, **options)``; batch ``i`` uses the seed ``[seed, i]``,
        so the draw is reproducible."""
        draw = tf.function(lambda count, s: self.sample(count, s, **options))
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            # Both seeds of shape [2] (an int seed s is [s, 0x5EED]): one trace.
            batch_seed = np.asarray(self.stateless_seed(seed)) if start == 0 else \
                np.array([seed, start // batch_size], np.int32)
            yield np.asarray(draw(tf.constant(count, tf.int32),
                                  tf.constant(batch_seed, tf.int32)))

    # --------------------------------------------------------- weight averages
    def averaged(self, network):
        """``self.<network>_network`` as sampling and export run it: with the
        weights' moving average where ``ema_decay`` keeps one, else as it is."""
        layer = getattr(self, f"{network}_network")
        average = getattr(self, f"{network}_average", None)
        if average is None:
            return layer
        return lambda *args, **kwargs: average.call_averaged(layer, *args, **kwargs)

    def update_averages(self, networks=None):
        """One step of the weight averages of `networks` (default: every averaged
        one) after an optimizer update; nothing without ``ema_decay``."""
        for network in self.averaged_networks if networks is None else networks:
            average = getattr(self, f"{network}_average", None)
            if average is not None:
                average.update(getattr(self, f"{network}_network"), self.optimizer.iterations)
