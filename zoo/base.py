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
  ``sample`` signature, written here, is added to them;
* validates inputs at that public boundary (eagerly, and with graph assertions
  inside exported signatures) with errors naming what was expected.
"""

import dataclasses
import functools
import inspect
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import precision as precision_module
from zoo.nn.random_stream import RandomStream

# What a model's ``nll`` is, by its ``likelihood``; ``zoo evaluate`` writes the text.
LIKELIHOODS = {
    "exact": "exact NLL of the continuous data",
    "dequantized": "NLL of uniformly dequantized data, an upper bound on the discrete "
                   "data's NLL",
    "discrete": "exact NLL of the discrete data",
    "bound": "negative ELBO (or a tighter variational bound), an upper bound on the NLL",
    "none": "no likelihood: the model is evaluated by the quality of its samples",
}
INT32_MAX = 2**31 - 1

# ``compile(steps_per_execution="auto")``, the default: the first ``fit`` times the
# train step and runs this many seconds' worth of steps per execution (at most
# MAX_STEPS_PER_EXECUTION), so that fit's per-execution cost (a Python round trip,
# the callbacks: 3-4 ms on a busy 2-core host) is a few percent of the time; at
# 0.05 s the 2-D RealNVP ran 5 steps an execution there, 25% slower than at 20.
# Fits shorter than AUTO_MIN_STEPS steps keep one step per execution: timing
# them would cost more than it saves.
EXECUTION_SECONDS = 0.2
MAX_STEPS_PER_EXECUTION = 100
AUTO_MIN_STEPS = 200


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
        doc: one line for ``zoo list`` and the docs.
    """

    default: float
    dtype: str = "float32"
    above: float = None
    below: float = None
    doc: str = ""

    def expected(self, name):
        """What the values must be, for error messages."""
        bounds = [f"{name} > {self.above:g}"] if self.above is not None else []
        bounds += [f"{name} < {self.below:g}"] if self.below is not None else []
        return " and ".join(bounds) or f"a finite {name}"

    def check(self, model, name, value):
        """The value as a Python number (eager) or a checked tensor (traced)."""
        if tf.is_tensor(value) and not tf.executing_eagerly():
            value = tf.cast(value, self.dtype)
            ok = tf.constant(True)
            if self.above is not None:
                ok = tf.logical_and(ok, tf.greater(value, tf.cast(self.above, self.dtype)))
            if self.below is not None:
                ok = tf.logical_and(ok, tf.less(value, tf.cast(self.below, self.dtype)))
            return _asserted(value, ok, f"{model.name}.sample: expected {self.expected(name)}")
        array = np.asarray(value.numpy() if tf.is_tensor(value) else value,
                           dtype=object if value is None else None)
        if array.ndim != 0 or array.dtype.kind not in "iuf":
            raise TypeError(f"{model.name}.sample: expected {name} to be a number, "
                            f"got {value!r}")
        number = array.item()
        if not np.isfinite(number) or (self.above is not None and not number > self.above) \
                or (self.below is not None and not number < self.below):
            raise ValueError(f"{model.name}.sample: expected {self.expected(name)}, got "
                             f"{value!r}")
        return number


def on_batches(kind):
    """Decorates a public method whose first argument is a batch of data (`kind`
    "data") or of latents ("latent"): an empty batch gives an empty result.

    The method runs on one example of zeros and its outputs are cut to the batch's
    size, 0 (eagerly, and with a ``tf.cond`` inside graphs), since many layers
    cannot take a batch of none (convolutions, reshapes by -1); other batched
    arguments (class labels) that are empty then become one zero each. Anything
    else goes to the method as it came, which checks it.
    """
    def one_if_empty(value, empty):
        if value is None or isinstance(value, (str, bytes)):
            return value
        if tf.is_tensor(value) and not tf.executing_eagerly():
            if value.shape.rank in (0, None):
                return value
            one = tf.zeros(tf.concat([[1], tf.shape(value)[1:]], 0), value.dtype)
            return tf.cond(tf.logical_and(empty, tf.equal(tf.size(value), 0)),
                           lambda: one, lambda: value)
        array = np.asarray(value)
        if empty and array.ndim >= 1 and array.shape[0] == 0:
            return np.zeros((1,) + array.shape[1:], array.dtype)
        return value

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, x, *args, **kwargs):
            event = tuple(self.data_shape if kind == "data" else self.latent_shape)
            if x is None or isinstance(x, (str, bytes)):
                return method(self, x, *args, **kwargs)
            if not tf.is_tensor(x):
                x = np.asarray(x)
            shape = tuple(x.shape)
            if len(shape) != len(event) + 1 or shape[1:] != event:
                return method(self, x, *args, **kwargs)
            one = tf.zeros((1,) + event, tf.float32)
            if tf.is_tensor(x) and not tf.executing_eagerly():
                size = tf.shape(x)[0]
                empty = tf.equal(size, 0)
                x = tf.cond(empty, lambda: one, lambda: tf.cast(x, tf.float32))
                args = [one_if_empty(a, empty) for a in args]
                outputs = method(self, x, *args, **kwargs)
                return tf.nest.map_structure(lambda y: y[:size], outputs)
            if shape[0] == 0:
                args = [one_if_empty(a, True) for a in args]
                return tf.nest.map_structure(lambda y: y[:0], method(self, one, *args, **kwargs))
            return method(self, x, *args, **kwargs)
        return wrapper
    return decorate


def _asserted(x, ok, message):
    """`x`, computed only after the graph assertion `ok` holds (else `message`)."""
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(x)


class _Functions:
    """A model's cache of compiled ``tf.function``s: a plain object, so that
    neither Keras nor a SavedModel tracks (or exports) what it holds."""

    def __init__(self):
        self.functions = {}


class GenerativeModel(keras.Model):
    """Base class of every model of the zoo.

    Args:
        data_shape: the shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``;
            ``zoo.get`` takes it from the dataset.
        num_levels: for images, the number of intensity levels of the raw data
            (256 for 8-bit pixels, 17 for scikit-learn's digits); raw inputs lie in
            ``[0, num_levels)``. ``None`` for continuous data such as 2-D densities.
    """

    family = None
    likelihood = "none"
    loss_names = ("loss",)
    sample_options = {}
    # Whether the deterministic part of ``draw_samples`` runs under XLA when sampling
    # is traced with a fixed n (see :meth:`xla_where_traced`); set by families whose
    # samplers were checked to compile and to give the same samples.
    xla_sampling = False
    # Constructor arguments of a base class that a subclass fixes (not in its config).
    fixed_parameters = ()
    # Whether a training step draws from the random stream ``rng`` (noise, latents,
    # dequantization); a deterministic step leaves the stream where it is.
    draws_training_noise = False

    def __init__(self, data_shape, num_levels=None, precision="float32", **kwargs):
        super().__init__(**kwargs)
        precision_module.check(precision, type(self), self.name)
        self.precision = precision
        self.data_shape = tuple(int(d) for d in data_shape)
        self.num_levels = None if num_levels is None else int(num_levels)
        if any(d <= 0 for d in self.data_shape):
            raise ValueError(f"data_shape must be positive, got {self.data_shape}")
        self.rng = RandomStream(name="rng")
        self._xla = _Functions()

    # ------------------------------------------------------------------ config
    @classmethod
    def parameter_names(cls):
        """The constructor arguments of this class (through its base classes)."""
        names = ["data_shape", "num_levels", "precision"]
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
        precision_module.apply(self, self.precision)
        self.rng.initialize()

    def build_weights(self):
        """Creates every weight by running ``call`` once on a zero batch."""
        with tf.init_scope():
            self(tf.zeros((1,) + self.data_shape))

    @property
    def data_kind(self):
        """``"images"`` ((H, W, C) levels), ``"points"`` (2-D) or ``"vectors"``."""
        if len(self.data_shape) == 3 and self.num_levels is not None:
            return "images"
        return "points" if self.data_shape == (2,) else "vectors"

    @property
    def value_range(self):
        """The interval inputs must lie in: [0, num_levels] for images."""
        if self.num_levels is None:
            return (-np.inf, np.inf)
        return (0.0, float(self.num_levels))

    @property
    def latent_shape(self):
        """The shape of one latent (``decode``/``generate`` take a batch of them)."""
        return self.data_shape

    @property
    def event_size(self):
        return int(np.prod(self.data_shape))

    @classmethod
    def likelihood_kinds(cls):
        """The values ``likelihood`` takes for this class, whatever the data."""
        return (cls.likelihood,)

    @property
    def likelihood_description(self):
        """What ``nll`` is, in words (for ``metrics.json``)."""
        return LIKELIHOODS[self.likelihood]

    # -------------------------------------------------------------- validation
    def check_batch(self, x, where, event_shape, value_range=(-np.inf, np.inf), what="x",
                    integers=False, values=True):
        """Checks a batch at the public boundary; returns it as float32.

        Dtype and static shape are checked whenever the function runs (also while
        tracing). Values (finiteness, range, integers) are checked with numpy when
        running eagerly, and inside traced graphs (exported signatures) with graph
        assertions, together with the dynamic shape, unless `values` is False
        (the training step's own input). Every message says what was expected.
        """
        prefix = f"{self.name}.{where}"
        data = what in ("x", "raw pixel values")
        expected = (f"shape (batch,) + {tuple(event_shape)}" if data else
                    f"{what} of shape (batch, {', '.join(map(str, event_shape))})")
        of = "" if data else f" in {what}"
        if x is None or isinstance(x, (str, bytes, dict)):
            raise TypeError(f"{prefix}: expected a float tensor of {expected}, "
                            f"got {type(x).__name__}")
        if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float, list)):
            raise TypeError(
                f"{prefix}: expected one tensor of {expected}, got a {type(x).__name__} of "
                f"{len(x)} elements (labels? use a pipeline of images only)"
            )
        if not tf.is_tensor(x):
            x = np.asarray(x)
        dtype = tf.as_dtype(x.dtype)
        if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
            kind = "a float (or integer) tensor" if data else f"a float tensor {what}"
            raise TypeError(f"{prefix}: expected {kind}, got dtype {dtype.name}")
        shape = tuple(x.shape)
        if len(shape) != len(event_shape) + 1 or any(
            s is not None and s != d for s, d in zip(shape[1:], event_shape)
        ):
            raise ValueError(f"{prefix}: expected {expected}, got {shape}")
        x = tf.cast(x, tf.float32)
        low, high = value_range
        if tf.executing_eagerly():
            array = x.numpy()
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{prefix}: expected finite values{of}, got "
                                 f"{int(np.sum(~np.isfinite(array)))} NaN/Inf entries")
            if array.size and (array.min() < low or array.max() > high):
                raise ValueError(f"{prefix}: expected {what} in [{low:g}, {high:g}], got "
                                 f"[{array.min()}, {array.max()}]")
            if integers and not np.array_equal(array, np.round(array)):
                raise ValueError(f"{prefix}: expected integer pixel levels (the model is of "
                                 "the discrete data), got non-integer values")
        elif values:
            rank = len(event_shape) + 1
            shape_ok = tf.cond(tf.equal(tf.rank(x), rank),
                               lambda: tf.reduce_all(tf.equal(tf.shape(x)[1:], event_shape)),
                               lambda: tf.constant(False))
            x = _asserted(x, shape_ok, f"{prefix}: expected {expected}")
            x = _asserted(x, tf.reduce_all(tf.math.is_finite(x)),
                          f"{prefix}: expected finite values{of}")
            if np.isfinite(low) or np.isfinite(high):
                x = _asserted(x, tf.reduce_all((x >= low) & (x <= high)),
                              f"{prefix}: expected {what} in [{low:g}, {high:g}]")
            if integers:
                x = _asserted(x, tf.reduce_all(tf.equal(x, tf.round(x))),
                              f"{prefix}: expected integer pixel levels")
        return x

    def validate_inputs(self, x, where="input", values=True):
        """:meth:`check_batch` for raw data: shape ``(batch,) + data_shape`` in
        ``value_range`` ("raw pixel values" for images)."""
        what = "raw pixel values" if self.num_levels is not None else "x"
        return self.check_batch(x, where, self.data_shape, self.value_range, what=what,
                                values=values)

    def validate_count(self, n, where="sample"):
        """A sample count: an int >= 1 (eager), or an int tensor checked >= 0 in graphs."""
        if tf.is_tensor(n) and not tf.executing_eagerly():
            if not n.dtype.is_integer or n.shape.rank not in (0, None):
                raise TypeError(f"{self.name}.{where}: expected an integer scalar n, got "
                                f"{n.dtype.name} of shape {n.shape}")
            n = tf.cast(n, tf.int32)
            return _asserted(n, n >= 0, f"{self.name}.{where}: expected n >= 0")
        value = np.asarray(n.numpy() if tf.is_tensor(n) else n, dtype=object if n is None else None)
        if value.ndim != 0 or value.dtype.kind not in "iu" or not 1 <= int(value) <= INT32_MAX:
            raise ValueError(f"{self.name}.{where}: expected n >= 1 (an integer), got {n!r}")
        return int(value)

    def stateless_seed(self, seed):
        """A stateless seed (shape [2] int32) from an int/tensor seed, random if None."""
        if seed is None:
            return tf.random.uniform([2], maxval=INT32_MAX, dtype=tf.int32)
        if not tf.is_tensor(seed):
            values = np.asarray(seed)
            if values.dtype.kind not in "iu" or values.shape not in ((), (2,)) \
                    or np.any(np.abs(values) > INT32_MAX):
                raise ValueError(f"{self.name}: expected seed to be an integer in "
                                 f"[-2**31 + 1, 2**31 - 1] (or two), or None, got {seed!r}")
        seed = tf.cast(seed, tf.int32)
        if seed.shape.rank == 0:
            seed = tf.stack([seed, tf.constant(0x5EED, tf.int32)])
        return seed

    # --------------------------------------------------------------- fitting
    def compile(self, optimizer=None, steps_per_execution="auto", jit_compile="auto", **kwargs):
        """``keras.Model.compile`` with the zoo's defaults: the model's
        ``default_optimizer()`` (not Keras' RMSprop), and ``steps_per_execution=
        "auto"``: the first long enough ``fit`` after it chooses the number from
        the train step's time (:meth:`auto_steps_per_execution`). An int fixes
        it, as in Keras. With both left at "auto", that fit may also choose to run
        each execution as one XLA program (:meth:`prefers_xla_executions`);
        ``jit_compile`` True or False is passed to Keras as it is."""
        auto = steps_per_execution == "auto"
        if not auto and not (isinstance(steps_per_execution, int) and steps_per_execution >= 1):
            raise ValueError(f"{type(self).__name__}.compile: steps_per_execution must be an "
                             f"int >= 1 or 'auto', got {steps_per_execution!r}")
        if optimizer is None:
            optimizer = self.default_optimizer()
        optimizer = precision_module.loss_scaled(keras.optimizers.get(optimizer), self.precision)
        super().compile(optimizer=optimizer, steps_per_execution=1 if auto else steps_per_execution,
                        jit_compile=jit_compile, **kwargs)
        self.steps_per_execution_is_auto = auto
        self.xla_executions_allowed = auto and jit_compile == "auto" and not self.jit_compile
        self.xla_executions = False  # chosen with the number of steps
        self.step_seconds = None  # timed again by the next long enough fit
        self.timed_train_step = None
        if auto:  # a reloaded model chooses again
            self._compile_config.config["steps_per_execution"] = "auto"

    def compile_from_config(self, config):
        """Recompiles a reloaded model (Keras skips models whose ``compile`` is
        their own), its optimizers built so that Keras restores their state (an
        adversarial model's compile has built each for its own network already)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.build_optimizers()

    def build_optimizers(self):
        """Builds each optimizer that is not built yet, for the model's trainable
        variables, now. Keras would build it inside the first traced train step,
        where each slot variable took about 25 ms to create: 7 s for the 296 Adam
        slots of the default Glow, against 0.5 s eagerly."""
        if not self.compiled:  # fit says so
            return
        with self.distribute_strategy.scope():
            for optimizer in self.all_optimizers():
                if not optimizer.built:
                    optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, with the optimizers built first
        (:meth:`build_optimizers`); after ``compile(steps_per_execution="auto")``
        it sets ``steps_per_execution`` first too (:meth:`auto_steps_per_execution`)."""
        self.build_optimizers()
        if getattr(self, "steps_per_execution_is_auto", False):
            given = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
            chosen = self.auto_steps_per_execution(
                given.get("x"), given.get("steps_per_epoch"),
                given.get("epochs", 1) - given.get("initial_epoch", 0), given.get("batch_size"))
            xla = (chosen > 1 and self.xla_executions_allowed
                   and isinstance(given.get("x"), tf.data.Dataset) and self.prefers_xla_executions())
            if chosen != self.steps_per_execution or xla != self.xla_executions:
                self.steps_per_execution = chosen
                self.xla_executions = xla
                self.train_function = None  # traced again for the new number
        return super().fit(*args, **kwargs)

    def auto_steps_per_execution(self, x, steps_per_epoch=None, epochs=1, batch_size=None):
        """How many train steps one execution of ``fit`` runs, chosen from their time.

        The first fit of at least ``AUTO_MIN_STEPS`` steps after ``compile`` runs
        the compiled train step on its first batch a few times (then puts back
        every weight, optimizer slot and the random stream's state); from then on
        an execution runs ``EXECUTION_SECONDS`` worth of steps, between 1 and
        ``MAX_STEPS_PER_EXECUTION``. When ``fit`` is given `steps_per_epoch`, its
        iterator runs on across epochs, so the number divides `steps_per_epoch`:
        an execution never runs into the next epoch, and each epoch's checkpoint
        is taken where it ends. One step per execution until the step is timed,
        under a distribution strategy (every worker would have to choose the same
        number), and for data that is not a ``tf.data`` pipeline or an array.
        """
        if tf.distribute.has_strategy() or self._distribute_strategy is not None:
            return 1
        if isinstance(x, tf.data.Dataset):
            per_epoch = steps_per_epoch or int(x.cardinality())
            first = lambda: next(iter(x.take(1)), None)  # noqa: E731
        elif isinstance(x, (np.ndarray, tf.Tensor)):
            per_epoch = steps_per_epoch or -(-len(x) // (batch_size or 32))
            first = lambda: x[:batch_size or 32]  # noqa: E731
        else:
            return 1
        if per_epoch < 1:  # tf.data's unknown or infinite cardinality
            return 1
        if getattr(self, "step_seconds", None) is None:
            if per_epoch * epochs < AUTO_MIN_STEPS or (batch := first()) is None:
                return 1
            self.step_seconds = self.train_step_seconds(batch)
        most = min(MAX_STEPS_PER_EXECUTION, per_epoch,
                   max(1, int(EXECUTION_SECONDS / self.step_seconds)))
        if steps_per_epoch:
            most = max(k for k in range(1, most + 1) if steps_per_epoch % k == 0)
        return most

    def train_step_seconds(self, batch, repeats=5):
        """The seconds one compiled train step takes on `batch` (the median of
        `repeats` after a first call); the model, its optimizers and the random
        stream are left as they were. The step is traced once, for any batch size,
        and ``fit`` then runs that same trace (:meth:`make_train_function`)."""
        self.build_optimizers()
        variables = list(self.variables) + [v for o in self.all_optimizers() for v in o.variables]
        saved = [v.numpy() for v in variables]
        step = tf.function(self.train_step, autograph=False, jit_compile=bool(self.jit_compile))
        step.get_concrete_function(tf.nest.map_structure(
            lambda t: tf.TensorSpec([None] + list(t.shape[1:]), t.dtype), batch))
        try:
            step(batch)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), step(batch))
                times.append(time.perf_counter() - start)
        finally:
            for variable, value in zip(variables, saved):
                variable.assign(value)
            for metric in self.metrics:
                metric.reset_state()
        self.timed_train_step = step
        return float(np.median(times))

    def prefers_xla_executions(self):
        """Whether ``fit``, when ``compile`` left ``steps_per_execution`` and
        ``jit_compile`` at "auto" and more than one step per execution is chosen,
        runs each execution as one XLA program (:meth:`xla_train_function`).
        Families where that was measured faster say so."""
        return False

    def make_train_function(self, force=False):
        """Keras' train function, around the step traced by
        :meth:`train_step_seconds` when there is one (a large model's step takes
        seconds to trace: it is not traced twice); or, when "auto" chose it,
        :meth:`xla_train_function`."""
        if getattr(self, "xla_executions", False):
            if self.train_function is None or force:
                self.train_function = self.xla_train_function()
            return self.train_function
        step = getattr(self, "timed_train_step", None)
        if step is None or not hasattr(self, "_make_function"):
            return super().make_train_function(force)
        if self.train_function is None or force:
            self.train_function = self._make_function(step)
        return self.train_function

    def xla_train_function(self):
        """``fit``'s train function with each execution run as one XLA program.

        An execution takes its ``steps_per_execution`` batches from the iterator,
        stacks them, and runs the train steps over the stack in a ``tf.while_loop``
        compiled with XLA. Keras' own loop runs each step as a separate call,
        whose fixed cost (the loop's conditionals, the optional inputs, and with
        XLA each launch's passing of every variable) is most of a small model's
        step on a CPU. The steps, their order and their updates are the same;
        the returned logs are the loss trackers' means, as ``train_step``'s are.
        When fewer batches are left, or their shapes differ (a smaller last
        batch), each runs as a stack of one (compiled once more for that shape).
        """
        count = self.steps_per_execution

        def run_steps(batches):
            def body(i):
                self.train_step(tf.nest.map_structure(lambda t: t[i], batches))
                return i + 1

            steps = tf.shape(tf.nest.flatten(batches)[0])[0]
            tf.while_loop(lambda i: i < steps, body, [tf.constant(0)])
            return self.tracker_means()

        def execution(iterator, run):
            spec = iterator.element_spec
            leaves = tf.nest.flatten(spec)

            def take(i, more, sizes, arrays):  # the next batch, if there is one
                batch = iterator.get_next_as_optional()
                more = batch.has_value()

                def keep():
                    values = tf.nest.flatten(batch.get_value())
                    return (sizes.write(i, tf.shape(values[0])[0]),
                            [a.write(i, v) for a, v in zip(arrays, values)])

                sizes, arrays = tf.cond(more, keep, lambda: (sizes, list(arrays)))
                return i + tf.cast(more, tf.int32), more, sizes, arrays

            arrays = [tf.TensorArray(s.dtype, size=count, infer_shape=False,
                                     element_shape=s.shape) for s in leaves]
            sizes = tf.TensorArray(tf.int32, size=count)
            taken, _, sizes, arrays = tf.while_loop(
                lambda i, more, *_: tf.logical_and(more, i < count), take,
                [tf.constant(0), tf.constant(True), sizes, arrays])
            sizes = sizes.stack()[:taken]

            def each():  # fewer batches, or of different sizes: one by one
                def step(j):
                    run(tf.nest.pack_sequence_as(spec, [a.read(j)[None] for a in arrays]))
                    return j + 1

                tf.while_loop(lambda j: j < taken, step, [tf.constant(0)])
                return self.tracker_means()

            together = tf.logical_and(tf.equal(taken, count),
                                      tf.reduce_all(tf.equal(sizes, sizes[:1])))
            return taken > 0, tf.cond(
                together, lambda: run(tf.nest.pack_sequence_as(spec, [a.stack() for a in arrays])),
                each)

        traced = {}

        def function(iterator):
            if "execution" not in traced:
                # One trace for stacks of any length and batch size; XLA compiles
                # a program per shape it meets (the smaller last batch, if any).
                spec = tf.nest.map_structure(
                    lambda s: tf.TensorSpec([None, None] + s.shape[1:], s.dtype),
                    iterator.element_spec)
                run = tf.function(run_steps, jit_compile=True, autograph=False,
                                  input_signature=[spec])
                traced["execution"] = tf.function(lambda it: execution(it, run), autograph=False)
            ran, step_logs = traced["execution"](iterator)
            if not ran:
                raise StopIteration
            return step_logs

        return function

    # ----------------------------------------------------------- the contract
    @staticmethod
    def default_optimizer(learning_rate=1e-3):
        """The optimizer ``zoo train`` compiles with (models override it)."""
        return keras.optimizers.Adam(learning_rate=learning_rate)

    def all_optimizers(self):
        """Every optimizer of the model (one here; one per network for adversarial ones)."""
        return [self.optimizer]

    def compute_losses(self, x, training=False):
        """A dict with one scalar tensor per name in ``loss_names``."""
        raise NotImplementedError

    def nll(self, x, seed=None):
        """Per-example negative log-likelihood in nats, or the bound that
        ``likelihood`` names; `seed` makes any noise (dequantization, posterior
        samples) reproducible."""
        raise TypeError(f"{self.name} has no likelihood (likelihood='{self.likelihood}'): "
                        "evaluate it by the quality of its samples")

    def sample(self, n, seed=None, **options):
        """`n` samples drawn statelessly from `seed` (reproducible), with the
        sampler options of ``sample_options`` (defaults where not given)."""
        n = self.validate_count(n)
        unknown = sorted(set(options) - set(self.sample_options))
        if unknown:
            raise TypeError(f"{self.name}.sample: unknown option(s) {unknown}; its options: "
                            f"{sorted(self.sample_options) or 'none'}")
        values = {name: option.check(self, name, options.get(name, option.default))
                  for name, option in self.sample_options.items()}
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

    def draw_samples(self, n, seed, **options):
        """`n` (>= 1) samples from the stateless seed `seed` (shape [2])."""
        raise NotImplementedError

    def xla_where_traced(self, name, fn, *tensors):
        """``fn(*tensors)``, compiled with XLA (``jit_compile``) when this runs
        inside a ``tf.function`` on tensors of fully known shape, as ``sample(n)``
        with a Python int ``n`` does in a user's graph; the model's
        ``xla_sampling`` must allow it. XLA fuses a flow's elementwise ops: its
        sampler ran 1.2-6x faster than as a plain graph on a 2-core CPU, for every
        flow on 2-D points and on digits.

        Otherwise `fn` runs as is: eagerly, where XLA's compile for each new shape
        (about 1 s) costs more than it saves, and with a batch size known only at
        run time, as in the exported ``sample`` signature, which stays a plain
        graph for TF Serving. `fn` must be deterministic (XLA draws other random
        numbers than TF's kernels for the same seed) and is cached under `name`
        for the life of the model.
        """
        if not (self.xla_sampling and tf.inside_function()
                and all(t.shape.is_fully_defined() for t in tensors)):
            return fn(*tensors)
        if name not in self._xla.functions:
            self._xla.functions[name] = tf.function(fn, jit_compile=True, reduce_retracing=True)
        return self._xla.functions[name](*tensors)

    def data_signatures(self):
        """Name -> (method, input TensorSpecs) of the serving signatures other than
        ``sample``; the first one is also exported as ``serving_default``."""
        raise NotImplementedError

    def serving_signatures(self):
        """Every serving signature: the first of ``data_signatures()``, ``sample``
        (``n``, ``seed`` and one input per sampler option, with its default), then
        the others."""
        data = dict(self.data_signatures())
        first = next(iter(data))
        return {first: data.pop(first), "sample": self.sample_signature(), **data}

    def sample_signature(self):
        """``sample(n, seed, *options)`` -> ``{"samples": ...}``, with the options'
        defaults as the Python defaults (which the SignatureDef records)."""
        names = list(self.sample_options)

        def sample(n, seed, *values):
            return {"samples": self.sample(n, seed, **dict(zip(names, values)))}

        specs = [tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int32, name="seed")]
        specs += [tf.TensorSpec([], self.sample_options[k].dtype, name=k) for k in names]
        defaults = {k: tf.constant(self.sample_options[k].default, self.sample_options[k].dtype)
                    for k in names}
        sample.__signature__ = _signature(specs, defaults)
        return sample, specs

    def data_spec(self, name="x"):
        return tf.TensorSpec((None,) + self.data_shape, tf.float32, name=name)

    # ----------------------------------------------------- train / test steps
    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    def unpack(self, data):
        """The images of a batch: accepts ``x``, ``(x,)`` or ``(x, label)``."""
        if isinstance(data, (list, tuple)):
            data = data[0]
        if isinstance(data, dict):
            data = data["x"] if "x" in data else data["image"]
        return self.validate_inputs(data, "train_step", values=False)

    def update_trackers(self, terms):
        """Updates each term's running mean; returns the means, the step's logs."""
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        logs = self.tracker_means()
        strategy = tf.distribute.get_strategy()
        # Keras (3.15) reduces a step's logs under a multi-worker strategy with
        # strategy.reduce(MEAN, axis=0), which fails on scalars
        # (tensorflow/tensorflow#72388): give it a batch axis of one to average over.
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
                strategy.extended._in_multi_worker_mode():
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def tracker_means(self):
        """Each loss term's running mean, by name."""
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @staticmethod
    def replica_scaled(loss):
        """Scales a per-replica mean loss so that summed replica gradients average."""
        return loss / tf.cast(
            tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype
        )

    @staticmethod
    def scaled_gradients(tape, loss, weights, optimizer):
        """The gradients of `loss` times the optimizer's loss scale: a
        ``LossScaleOptimizer`` (``mixed_float16``) unscales them, and skips the
        step if they overflowed; 1 for any other optimizer.

        A gather's gradient (an ``IndexedSlices``) is made dense: through
        ``MultiWorkerMirroredStrategy``'s all-reduce it gave other weights than
        one process (RealNVP with a gather of its last kernel's columns, on two
        workers), and dense it gives the same."""
        grads = tape.gradient(loss, weights,
                              output_gradients=optimizer.scale_loss(tf.ones_like(loss)))
        return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                for g in grads]

    def training_terms(self, x):
        """The loss terms of a training step, and what :meth:`after_update` needs
        of its forward pass (None here)."""
        return self.compute_losses(x, training=True), None

    def after_update(self, state):
        """Runs after the optimizer's update with what ``training_terms`` returned
        beside the terms (e.g. a codebook's moving averages); nothing here."""

    def train_step(self, data):
        x = self.unpack(data)
        with tf.GradientTape() as tape:
            terms, state = self.training_terms(x)
            loss = self.replica_scaled(terms["loss"])
        grads = self.scaled_gradients(tape, loss, self.trainable_weights, self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.after_update(state)
        return self.update_trackers(terms)

    def test_step(self, data):
        x = self.unpack(data)
        return self.update_trackers(self.compute_losses(x, training=False))


def _signature(specs, defaults=None):
    """An ``inspect.Signature`` naming a function's inputs after `specs` (TF takes the
    SignatureDef's input names, and their defaults, from it)."""
    defaults = defaults or {}
    return inspect.Signature([
        inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=defaults.get(s.name, inspect.Parameter.empty))
        for s in specs
    ])

