"""How ``GenerativeModel.compile`` and ``fit`` run the training steps (docs/architecture.md).

The model keeps Keras' methods (``compile``, ``fit``, ``make_train_function``,
``compile_from_config``) and hands them to the functions here:

* :func:`compile`: the zoo's defaults, ``steps_per_execution="auto"`` among them;
* :func:`prepare_fit`: the optimizers built eagerly (:func:`build_optimizers`),
  and after "auto" the number of steps per execution chosen from the train
  step's time (:func:`auto_steps_per_execution`, :func:`train_step_seconds`);
* :func:`make_train_function`: Keras' train function around the step already
  traced for timing, or each execution as one XLA program
  (:func:`xla_train_function`);
* what keeps a step's results the same under a multi-worker strategy
  (:func:`replica_scaled`, :func:`scaled_gradients`, :func:`step_logs`).

The state they keep is on the model: ``steps_per_execution_is_auto``,
``xla_executions_allowed``, ``xla_executions``, ``step_seconds`` and
``timed_train_step``.
"""

import inspect
import time

import keras
import numpy as np
import tensorflow as tf

from zoo import precision as precision_module

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


def compile(model, keras_compile, optimizer=None, steps_per_execution="auto",
            jit_compile="auto", **kwargs):
    """``keras.Model.compile`` (`keras_compile`, the model's next ``compile``)
    with the zoo's defaults: the model's ``default_optimizer()`` (not Keras'
    RMSprop), and ``steps_per_execution="auto"``: the first long enough ``fit``
    after it chooses the number from the train step's time
    (:func:`auto_steps_per_execution`). An int fixes it, as in Keras. With both
    left at "auto", that fit may also choose to run each execution as one XLA
    program (``model.prefers_xla_executions()``); ``jit_compile`` True or False
    is passed to Keras as it is."""
    auto = steps_per_execution == "auto"
    if not auto and not (isinstance(steps_per_execution, int) and steps_per_execution >= 1):
        raise ValueError(f"{type(model).__name__}.compile: steps_per_execution must be an "
                         f"int >= 1 or 'auto', got {steps_per_execution!r}")
    if optimizer is None:
        optimizer = model.default_optimizer()
    optimizer = precision_module.loss_scaled(keras.optimizers.get(optimizer), model.precision)
    keras_compile(optimizer=optimizer, steps_per_execution=1 if auto else steps_per_execution,
                  jit_compile=jit_compile, **kwargs)
    model.steps_per_execution_is_auto = auto
    model.xla_executions_allowed = auto and jit_compile == "auto" and not model.jit_compile
    model.xla_executions = False  # chosen with the number of steps
    model.step_seconds = None  # timed again by the next long enough fit
    model.timed_train_step = None
    if auto:  # a reloaded model chooses again
        model._compile_config.config["steps_per_execution"] = "auto"


def build_optimizers(model):
    """Builds each optimizer that is not built yet, for the model's trainable
    variables, now. Keras would build it inside the first traced train step,
    where each slot variable took about 25 ms to create: 7 s for the 296 Adam
    slots of the default Glow, against 0.5 s eagerly."""
    if not model.compiled:  # fit says so
        return
    with model.distribute_strategy.scope():
        for optimizer in model.all_optimizers():
            if not optimizer.built:
                optimizer.build(model.trainable_variables)


def prepare_fit(model, *args, **kwargs):
    """What ``fit(*args, **kwargs)`` does before Keras' ``fit``: builds the
    optimizers (:func:`build_optimizers`); after ``compile(steps_per_execution=
    "auto")`` it sets ``steps_per_execution`` (:func:`auto_steps_per_execution`)
    and whether each execution runs as one XLA program, and drops the train
    function where they changed."""
    build_optimizers(model)
    if getattr(model, "steps_per_execution_is_auto", False):
        given = inspect.signature(keras.Model.fit).bind(model, *args, **kwargs).arguments
        chosen = auto_steps_per_execution(
            model, given.get("x"), given.get("steps_per_epoch"),
            given.get("epochs", 1) - given.get("initial_epoch", 0), given.get("batch_size"))
        xla = (chosen > 1 and model.xla_executions_allowed
               and isinstance(given.get("x"), tf.data.Dataset) and model.prefers_xla_executions())
        if chosen != model.steps_per_execution or xla != model.xla_executions:
            model.steps_per_execution = chosen
            model.xla_executions = xla
            model.train_function = None  # traced again for the new number


def auto_steps_per_execution(model, x, steps_per_epoch=None, epochs=1, batch_size=None):
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
    if tf.distribute.has_strategy() or model._distribute_strategy is not None:
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
    if getattr(model, "step_seconds", None) is None:
        if per_epoch * epochs < AUTO_MIN_STEPS or (batch := first()) is None:
            return 1
        model.step_seconds = train_step_seconds(model, batch)
    most = min(MAX_STEPS_PER_EXECUTION, per_epoch,
               max(1, int(EXECUTION_SECONDS / model.step_seconds)))
    if steps_per_epoch:
        most = max(k for k in range(1, most + 1) if steps_per_epoch % k == 0)
    return most


def train_step_seconds(model, batch, repeats=5):
    """The seconds one compiled train step takes on `batch` (the median of
    `repeats` after a first call); the model, its optimizers and the random
    stream are left as they were. The step is traced once, for any batch size,
    and ``fit`` then runs that same trace (:func:`make_train_function`)."""
    build_optimizers(model)
    variables = list(model.variables) + [v for o in model.all_optimizers() for v in o.variables]
    saved = [v.numpy() for v in variables]
    step = tf.function(model.train_step, autograph=False, jit_compile=bool(model.jit_compile))
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
        for metric in model.metrics:
            metric.reset_state()
    model.timed_train_step = step
    return float(np.median(times))


def make_train_function(model, keras_make_train_function, force=False):
    """Keras' train function (`keras_make_train_function`, the model's next
    ``make_train_function``), around the step traced by
    :func:`train_step_seconds` when there is one (a large model's step takes
    seconds to trace: it is not traced twice); or, when "auto" chose it,
    :func:`xla_train_function`."""
    if getattr(model, "xla_executions", False):
        if model.train_function is None or force:
            model.train_function = xla_train_function(model)
        return model.train_function
    step = getattr(model, "timed_train_step", None)
    if step is None or not hasattr(model, "_make_function"):
        return keras_make_train_function(force)
    if model.train_function is None or force:
        model.train_function = model._make_function(step)
    return model.train_function


def xla_train_function(model):
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
    count = model.steps_per_execution

    def run_steps(batches):
        def body(i):
            model.train_step(tf.nest.map_structure(lambda t: t[i], batches))
            return i + 1

        steps = tf.shape(tf.nest.flatten(batches)[0])[0]
        tf.while_loop(lambda i: i < steps, body, [tf.constant(0)])
        return model.tracker_means()

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
            return model.tracker_means()

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


# ------------------------------------------------- multi-replica training steps
def replica_scaled(loss):
    """Scales a per-replica mean loss so that summed replica gradients average."""
    return loss / tf.cast(
        tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype
    )


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


def step_logs(logs):
    """A train or test step's logs (name -> scalar) as Keras can reduce them.

    Keras (3.15) reduces a step's logs under a multi-worker strategy with
    strategy.reduce(MEAN, axis=0), which fails on scalars
    (tensorflow/tensorflow#72388): there each gets a batch axis of one to
    average over. Elsewhere the logs are returned as they are."""
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
            strategy.extended._in_multi_worker_mode():
        logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


class Fitting:
    """A mixin of :class:`~zoo.base.GenerativeModel`: Keras' ``compile``, ``fit``
    and train function through this module's engine, and the step plumbing
    (``train_step`` and ``test_step`` from the model's loss terms, one running
    mean per term), which no model writes again."""

    def compile(self, optimizer=None, steps_per_execution="auto", jit_compile="auto", **kwargs):
        """``keras.Model.compile`` with the zoo's defaults (:func:`zoo.fitting.compile`):
        the model's ``default_optimizer()``, and ``steps_per_execution="auto"``, which
        the first long enough ``fit`` chooses from the train step's time."""
        compile(self, super().compile, optimizer, steps_per_execution, jit_compile,
                        **kwargs)

    def compile_from_config(self, config):
        """Recompiles a reloaded model (Keras skips models whose ``compile`` is
        their own), its optimizers built so that Keras restores their state (an
        adversarial model's compile has built each for its own network already)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        build_optimizers(self)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, with the optimizers built first and, after
        ``compile(steps_per_execution="auto")``, the number of steps per execution
        chosen (:func:`zoo.fitting.prepare_fit`)."""
        prepare_fit(self, *args, **kwargs)
        return super().fit(*args, **kwargs)

    def make_train_function(self, force=False):
        """Keras' train function, or the one ``fit`` chose
        (:func:`zoo.fitting.make_train_function`)."""
        return make_train_function(self, super().make_train_function, force)

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
        """Updates each term's running mean; returns the means, the step's logs
        (:func:`zoo.fitting.step_logs`)."""
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return step_logs(self.tracker_means())

    def tracker_means(self):
        """Each loss term's running mean, by name."""
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    replica_scaled = staticmethod(replica_scaled)
    scaled_gradients = staticmethod(scaled_gradients)

    def train_step(self, data):
        x, labels = self.unpack_labels(data)
        with tf.GradientTape() as tape:
            terms, state = self.training_terms(x, labels)
            loss = self.replica_scaled(terms["loss"])
        grads = self.scaled_gradients(tape, loss, self.trainable_weights, self.optimizer)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.after_update(state)
        self.update_averages()
        return self.update_trackers(terms)

    def test_step(self, data):
        """The loss terms on a batch (a conditional model's at the batch's labels
        if it has them, else at random ones)."""
        x, labels = self.unpack_labels(data, required=False)
        return self.update_trackers(self.compute_losses(x, training=False,
                                                        **self.with_labels(labels)))
