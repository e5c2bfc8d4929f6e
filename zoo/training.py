"""The training loop of ``zoo train``: one ``model.fit`` per run, resumable bit for bit.

:func:`train` runs ``model.fit(epochs=E, initial_epoch=k)`` on
:func:`zoo.datasets.training_epochs` with these callbacks:

* :class:`NonFiniteStop` stops at the first batch with NaN/Inf in any logged value;
* :class:`RunCheckpoint` writes, after each good epoch, the checkpoint, then
  ``history.json``, then ``checkpoints/latest.json`` (each atomically), and keeps
  the last ``KEEP_CHECKPOINTS``; it writes nothing for an epoch that went bad;
* :class:`SampleGrid` draws the epoch's samples every ``sample_every`` epochs
  and after the last (the same seed every time);
* :class:`RunTensorBoard`, Keras' TensorBoard callback, writes ``logs/``: the
  loss terms and learning rate per epoch (run ``train``), the test split's loss
  terms every ``validate_every`` epochs (run ``validation``), each epoch's sample
  grid and, for 2-D data with a density, the density picture, and the run's
  hyperparameters for TensorBoard's HParams plugin.

Validation (``fit``'s ``validation_data``) leaves the model's random stream as it
found it (:class:`KeepRandomStream`), so a run trains the same bits with
validation or without.

A killed run resumes from its last good checkpoint and continues exactly as if
it had never stopped: the data order of epoch ``e`` depends on ``e`` alone, and the
step's random numbers come from the model's random stream, whose state the
checkpoint holds with the weights and the optimizer's state. A run that diverged
can resume with a lower learning rate (``--lr``), recorded in ``run.json`` and in
every record of ``history.json``.
"""

import gc
import json
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo import datasets, distribute, plotting, registry, runs
from zoo import precision as precision_module
from zoo.runs import (CHECKPOINTS, EVERY_SETTINGS, HISTORY_FILE, KEEP_CHECKPOINTS,
                      LATEST_FILE, LOGS, RUN_FILE, SAMPLES, Checkpoint, NonFiniteLossError,
                      RunError, non_finite_weights)
from zoo.validation import INT32_MAX

SEED_RANGE = (0, INT32_MAX)
# `validate_every`'s default: every epoch where the test split holds at most this
# many values (examples x dimensions: digits 19,008, each 2-D density 20,000),
# never on larger ones (Fashion-MNIST's 7,840,000) unless asked.
VALIDATE_MAX_VALUES = 1_000_000
# Validation batches hold at least this many values (at least the training batch):
# the 10,000 test points of a 2-D density in one batch, digits in 1,024s; a test
# step needs no gradients, and Keras' loop costs per batch.
VALIDATION_BATCH_VALUES = 65_536
# Settings that a resumed run keeps unless given again (the learning rate may change).
FIXED_SETTINGS = ("batch_size", "steps_per_epoch", "jit_compile", "critic_learning_rate")
DATA_PARAMETERS = ("data_shape", "num_levels")


# ------------------------------------------------------------ models and settings
def model_entry(name):
    """The registry entry of `name`, or RunError listing the known models."""
    try:
        return registry.entry(name)
    except ValueError as e:
        raise RunError(str(e)) from None


def build_model(name, dataset, overrides, first_stage=None):
    """``zoo.get(name, dataset, **overrides)``, with errors naming the parameters;
    a two-stage model also gets its loaded `first_stage` model."""
    entry = model_entry(name)
    check_preset(entry, dataset)
    fixed = sorted(set(overrides) & set(DATA_PARAMETERS))
    if fixed:
        info = datasets.info(dataset)
        raise RunError(f"{', '.join(fixed)} come from the dataset ({dataset}: data_shape "
                       f"{list(info.shape)}, num_levels {info.num_levels}) and cannot be set")
    parameters = entry.cls.parameter_names()
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise RunError(f"model {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                       f"its parameters: {sorted(set(parameters) - set(DATA_PARAMETERS))}")
    stages = {} if first_stage is None else {"first_stage": first_stage}
    try:
        return registry.get(name, dataset=dataset, **overrides, **stages)
    except (TypeError, ValueError) as e:
        raise RunError(f"model {name!r} with overrides {overrides}: {e}") from None


def check_preset(entry, dataset):
    """A RunError naming the presets (and a close one) if `dataset` has none."""
    if dataset is not None and dataset not in entry.presets:
        raise RunError(entry.no_preset(dataset))


def first_stage_folder(run, run_dir, first_stage, resume):
    """The run folder of the first stage to build a two-stage model with (its
    class sets ``first_stage_kinds``): `first_stage` for a new run, the recorded
    one on resume (which `first_stage`, if given, must name); None for other
    models, which take none. Checks the arguments only; :func:`load_first_stage`
    loads it."""
    entry = model_entry(run["model"])
    if "first_stage" in run["overrides"]:
        raise RunError("first_stage is not a parameter to set: pass --first-stage RUN_FOLDER, "
                       "a run to take as the first stage")
    if not getattr(entry.cls, "first_stage_kinds", ()):
        if first_stage is not None:
            raise RunError(f"model {run['model']!r} takes no first stage; leave --first-stage out")
        return None
    stored = run.get("first_stage")
    if resume and stored is not None:  # checked by runs.read_run
        if first_stage is not None and os.fspath(first_stage) != stored["run"]:
            raise RunError(f"run {run_dir!r} was started with --first-stage {stored['run']!r}, "
                           f"but {os.fspath(first_stage)!r} was given; resume without it")
        return stored["run"]
    if first_stage is None:
        kinds = " or ".join(map(repr, entry.cls.first_stage_kinds))
        raise RunError(f"model {run['model']!r} needs a trained first stage: pass "
                       f"--first-stage RUN_FOLDER, a run of {kinds} on {run['dataset']!r}")
    return os.fspath(first_stage)


def load_first_stage(run, run_dir, folder):
    """The first stage in `folder` (:func:`zoo.runs.load_first_stage`), recorded in
    `run` as ``first_stage``; on resume the recorded one, unchanged."""
    model, record = runs.load_first_stage(folder, model_entry(run["model"]), run["dataset"])
    stored = run.get("first_stage")
    if stored is not None and record != stored:
        raise RunError(f"the first stage of run {run_dir!r} has changed since the run "
                       f"started (it recorded {stored['checkpoint']!r} of SHA-256 "
                       f"{stored['sha256'][:12]}..., {folder!r} now holds "
                       f"{record['checkpoint']!r} of {record['sha256'][:12]}...); start a new "
                       "run with another --out")
    run["first_stage"] = record
    return model


def _jsonable(value):
    return json.loads(json.dumps(value))


def _check_positive(name, value, kind):
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
    if kind is float:
        ok = ok and math.isfinite(value)
    if not ok:
        raise RunError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def check_seed(seed):
    low, high = SEED_RANGE
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not low <= seed <= high):
        raise RunError(f"--seed must be an integer in [{low}, {high}], got {seed!r}")


def default_validate_every(dataset):
    """1 (the test split's loss terms every epoch) for a built-in dataset whose
    test split holds at most :data:`VALIDATE_MAX_VALUES` values, else 0 (never)."""
    try:
        info = datasets.info(dataset)
    except (ValueError, KeyError):  # a tfds name: its size is not known here
        return 0
    size = info.splits.get("test", 0) * int(np.prod(info.shape))
    return 1 if 0 < size <= VALIDATE_MAX_VALUES else 0


def check_every(key, value):
    """`value` of ``validate_every`` or ``sample_every``: None or an int >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 0):
        raise RunError(f"{key} must be an integer >= 0 (0: never), got {value!r}")


def validate_every(run):
    """How often the run evaluates the test split: its ``validate_every``, or the
    dataset's default for a run that recorded none."""
    value = run["training"].get("validate_every")
    return default_validate_every(run["dataset"]) if value is None else value


def sample_every(run):
    """How often the run draws its epoch's sample grid: its ``sample_every``, or
    every epoch for a run that recorded none."""
    value = run["training"].get("sample_every")
    return 1 if value is None else value


def new_run(name, dataset, epochs, overrides, seed, settings):
    """The settings of a fresh run: explicit values, else the preset's training defaults."""
    entry = model_entry(name)
    dataset = dataset or entry.default_dataset
    check_preset(entry, dataset)
    try:
        defaults = entry.training_for(dataset)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_seed(seed)
    training = {
        "epochs": epochs or defaults.get("epochs", 10),
        "batch_size": settings["batch_size"] or defaults.get("batch_size", 64),
        "learning_rate": float(settings["learning_rate"] or defaults.get("learning_rate", 1e-3)),
        "steps_per_epoch": settings["steps_per_epoch"] or defaults.get("steps_per_epoch"),
        "jit_compile": "auto" if settings["jit_compile"] is None else bool(settings["jit_compile"]),
        "critic_learning_rate": settings["critic_learning_rate"],
        "validate_every": default_validate_every(dataset)
        if settings.get("validate_every") is None else settings["validate_every"],
        "sample_every": 1 if settings.get("sample_every") is None else settings["sample_every"],
    }
    for key in EVERY_SETTINGS:
        check_every(key, training[key])
    if training["critic_learning_rate"] is not None:
        training["critic_learning_rate"] = float(training["critic_learning_rate"])
        _check_positive("critic_learning_rate", training["critic_learning_rate"], float)
    _check_positive("epochs", training["epochs"], int)
    _check_positive("batch_size", training["batch_size"], int)
    _check_positive("learning_rate", training["learning_rate"], float)
    if training["steps_per_epoch"] is not None:
        _check_positive("steps_per_epoch", training["steps_per_epoch"], int)
    return {
        "model": name,
        "dataset": dataset,
        "overrides": _jsonable(overrides or {}),
        "training": training,
        "seed": 0 if seed is None else int(seed),
        "zoo_version": zoo.__version__,
    }


def resumed_run(stored, run_dir, name, dataset, epochs, overrides, seed, settings):
    """The stored settings, checked against the explicit ones.

    `epochs` sets a new target, `learning_rate` a new rate, ``validate_every``
    how often the test split is evaluated from now on and ``sample_every`` how
    often a sample grid is drawn; any other setting that differs from the stored
    one is an error.
    """

    def conflict(key, old, new):
        raise RunError(
            f"run {run_dir!r} was started with {key}={old!r}, but {key}={new!r} was "
            f"given; resume without it (the run keeps its settings) or start a new run "
            f"with another --out"
        )

    if name is not None and name != stored["model"]:  # a name that cannot be left out
        raise RunError(
            f"run {run_dir!r} is a run of model {stored['model']!r}, not {name!r}; resume it "
            f"with `zoo train {stored['model']} --out {run_dir} --resume`, or start a new "
            f"run of {name!r} with another --out")
    if dataset is not None and dataset != stored["dataset"]:
        conflict("dataset", stored["dataset"], dataset)
    if overrides and _jsonable(overrides) != stored["overrides"]:
        conflict("overrides", stored["overrides"], _jsonable(overrides))
    check_seed(seed)
    if seed is not None and seed != stored["seed"]:
        conflict("seed", stored["seed"], seed)
    for key in FIXED_SETTINGS:
        value = settings[key]
        if value is not None and value != stored["training"].get(key):
            conflict(key, stored["training"].get(key), value)
    run = _jsonable(stored)
    if epochs is not None:
        _check_positive("epochs", epochs, int)
        run["training"]["epochs"] = epochs
    if settings["learning_rate"] is not None:
        _check_positive("learning_rate", float(settings["learning_rate"]), float)
        run["training"]["learning_rate"] = float(settings["learning_rate"])
    for key in EVERY_SETTINGS:
        if settings.get(key) is not None:
            check_every(key, settings[key])
            run["training"][key] = settings[key]
    return run


def set_learning_rate(model, old, new):
    """Scales every optimizer's learning rate by new / old (keeping their ratios)."""
    for optimizer in model.all_optimizers():
        try:
            optimizer.learning_rate = float(optimizer.learning_rate.numpy()) * new / old
        except TypeError:  # a LearningRateSchedule
            raise RunError("the model's optimizer follows a learning-rate schedule; its "
                           "rate cannot be changed on resume") from None


def _compile(model, run):
    """Compiles with the model's optimizers (``training_optimizers``) at the run's
    learning rate, and its critics' at ``critic_learning_rate`` if set (two
    time-scale updates)."""
    training = run["training"]
    critic_rate = training.get("critic_learning_rate")
    try:
        optimizers = model.training_optimizers(training["learning_rate"], critic_rate)
    except ValueError:
        if critic_rate is None:
            raise
        raise RunError(f"--critic-lr sets a critic's learning rate, but model "
                       f"{run['model']!r} trains no critic; leave it out") from None
    model.compile(jit_compile=training["jit_compile"], **optimizers)


# ------------------------------------------------------------------ callbacks
def non_finite(logs):
    """The entries of a logs dict that hold NaN or Inf, as name -> float."""
    bad = {}
    for key, value in (logs or {}).items():
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            bad[key] = float(array.ravel()[~np.isfinite(array.ravel())][0])
    return bad


class NonFiniteStop(keras.callbacks.Callback):
    """Stops training at the first batch with a NaN/Inf in any logged value.

    Every value counts, not only ``loss`` (WGAN-GP logs ``critic_loss`` and others).
    ``failure`` is then ``{"epoch": 1-based epoch, "batch": batch, "values": {...}}``;
    :class:`RunCheckpoint` also records one found at an epoch's end.
    """

    def __init__(self):
        super().__init__()
        self.failure = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        bad = non_finite(logs)
        if bad and self.failure is None:
            self.failure = {"epoch": self.epoch, "batch": batch, "values": bad}
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """After each good epoch: the checkpoint, ``history.json``, then ``latest.json``.

    Each is written to a temporary file and renamed into place, in that order, so
    ``latest.json`` only ever names a complete checkpoint whose epoch the history
    holds. Only the last `keep` checkpoints are kept. An epoch writes nothing when
    it went bad: NaN/Inf in its logs (or stopped by `guard`), in the weights, or in
    the loss terms of the model it ends with on `probe`, a fixed batch (the logs
    hold the losses before each update, so a last update that broke the model
    shows only there). The probe leaves the model's random stream where it was.
    """

    def __init__(self, run_dir, history, guard, probe=None, last=None, keep=KEEP_CHECKPOINTS):
        super().__init__()
        self.run_dir, self.history, self.guard, self.keep = run_dir, history, guard, keep
        self.probe = probe
        self.last = last  # the last good Checkpoint
        self.began = time.time()
        self.validating = None

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.time()

    # An epoch's "seconds" are its training's: the validation's time is left out.
    def on_test_begin(self, logs=None):
        self.validating = time.time()

    def on_test_end(self, logs=None):
        if self.validating is not None:
            self.began += time.time() - self.validating
            self.validating = None

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.failure is not None:
            return
        logs = {k: float(v) for k, v in (logs or {}).items()}
        validation = {k: logs.pop(k) for k in list(logs) if k.startswith("val_")}
        # The test split's terms are reported, not trained on: NaN/Inf there is no
        # divergence, and strict JSON cannot hold it.
        lost = non_finite(validation)
        if lost:
            runs.log.warning("epoch %d: the test split's loss terms %s are not finite; "
                             "history.json leaves them out", epoch + 1, lost)
        bad = non_finite(logs)
        if not bad:
            weights = non_finite_weights(self.model)
            bad = {"weights": weights} if weights else {}
        where = None
        if not bad and self.probe is not None:
            state = self.model.rng.state.numpy()
            terms = self.model.compute_losses(self.probe, training=False)
            self.model.rng.state.assign(state)
            bad = non_finite({k: float(v) for k, v in terms.items()})
            where = "after its last update, on a fixed batch"
        if bad:
            self.guard.failure = {"epoch": epoch + 1, "values": bad}
            if where:
                self.guard.failure["where"] = where
            self.model.stop_training = True
            return
        self.history.append({
            "epoch": epoch + 1, **logs,
            **{k: v for k, v in validation.items() if k not in lost},
            "learning_rate": float(f"{float(self.model.optimizer.learning_rate.numpy()):.7g}"),
            "seconds": round(time.time() - self.began, 3),
        })
        self.last = self.save(epoch + 1)

    def save(self, epoch):
        folder = os.path.join(self.run_dir, CHECKPOINTS)
        os.makedirs(folder, exist_ok=True)
        name = runs.checkpoint_name(epoch)
        tmp = os.path.join(folder, f".tmp-{name}")  # still ends in .keras, as save() needs
        self.model.save(tmp)
        os.replace(tmp, os.path.join(folder, name))
        runs.write_json(os.path.join(self.run_dir, HISTORY_FILE), self.history)
        runs.write_json(os.path.join(folder, LATEST_FILE), {"epoch": epoch, "file": name})
        for old in runs.checkpoint_files(self.run_dir)[:-self.keep]:
            os.remove(os.path.join(folder, old))
        return Checkpoint(epoch, name, os.path.join(folder, name))


class SampleGrid(keras.callbacks.Callback):
    """Writes ``samples/epoch_NNNN.png`` (``.txt`` for text) after each good epoch
    whose number `every` divides and after epoch `last` (none with `every` 0),
    always from `seed`."""

    def __init__(self, run_dir, guard, seed, reference=None, every=1, last=None):
        super().__init__()
        self.run_dir, self.guard, self.seed, self.reference = run_dir, guard, seed, reference
        self.every, self.last = every, last

    def on_epoch_end(self, epoch, logs=None):
        count = plotting.EPOCH_SAMPLES.get(self.model.data_kind)
        due = self.every and ((epoch + 1) % self.every == 0 or epoch + 1 == self.last)
        if self.guard.failure is not None or not count or not due:
            return
        plotting.save_samples(self.model, os.path.join(self.run_dir, SAMPLES,
                                                       f"epoch_{epoch + 1:04d}"
                                                       f"{plotting.picture_suffix(self.model)}"),
                              count, self.seed, reference=self.reference)


class KeepRandomStream(keras.callbacks.Callback):
    """Puts the model's random stream back after each evaluation inside ``fit``
    (its ``validation_data``): a test step may draw from it (a conditional
    model's labels, dequantization noise), and training must not depend on
    whether or how often the test split is evaluated."""

    def __init__(self):
        super().__init__()
        self.state = None

    def on_test_begin(self, logs=None):
        self.state = self.model.rng.state.numpy()

    def on_test_end(self, logs=None):
        if self.state is not None:
            self.model.rng.state.assign(self.state)
            self.state = None


def hyperparameters(run, config):
    """The run's hyperparameters for TensorBoard's HParams plugin (name -> bool,
    number or string): the model, dataset, seed, strategy and training settings
    of `run` (``run.json``), and the model's `config` (its constructor's
    arguments; lists as JSON, nested configs and None left out)."""
    values = {}
    for name, value in config.items():
        if isinstance(value, (list, tuple)):
            value = json.dumps(value)
        if isinstance(value, (bool, int, float, str)):
            values[name] = value
    for name in ("model", "dataset", "seed", "strategy"):
        if run.get(name) is not None:
            values[name] = run[name]
    for name, value in run["training"].items():
        if isinstance(value, (bool, int, float, str)):
            values[name] = value
    return values


def _image(picture):
    """A PIL image (or a PNG path) -> a ``[1, H, W, C]`` uint8 batch for
    ``tf.summary.image``."""
    from PIL import Image

    if not hasattr(picture, "mode"):
        with Image.open(picture) as opened:
            picture = opened.copy()
    array = np.asarray(picture.convert("RGB" if picture.mode not in ("L", "RGB") else
                                       picture.mode))
    return (array[None, ..., None] if array.ndim == 2 else array[None]).astype(np.uint8)


class RunTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback on the run's ``logs/``, with what the run
    folder holds beside the scalars.

    Keras writes the loss terms and the learning rate of each epoch (run
    ``train``, tags ``epoch_<term>``, step = the epoch counted from 0) and the
    test split's loss terms when ``fit`` validates (run ``validation``). After
    each good epoch this adds, to run ``train`` at the same step, the sample
    grid of ``samples/epoch_NNNN.png`` (image ``samples``, read back from the
    file, so the very same picture) where :class:`SampleGrid` drew one, and for
    a model of 2-D points with an exact likelihood the density picture beside
    the test points (image ``density``, as ``zoo compare``'s report draws it).
    At the start it writes the run's :func:`hyperparameters` to ``logs/``
    itself for the HParams plugin, whose table then lists the run with its
    ``train`` and ``validation`` scalars. The random stream is left as it was.
    """

    DENSITY_BINS = 100

    def __init__(self, run_dir, guard, run, reference=None):
        super().__init__(os.path.join(run_dir, LOGS), write_graph=False)
        self.run_dir, self.guard, self.run, self.reference = run_dir, guard, run, reference

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        from tensorboard.plugins.hparams import api as hparams_api

        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            hparams_api.hparams(hyperparameters(self.run, self.model.get_config()),
                                trial_id=os.path.basename(os.path.abspath(self.run_dir)))
        writer.close()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.guard.failure is not None:
            return
        pictures = {}
        grid = os.path.join(self.run_dir, SAMPLES, f"epoch_{epoch + 1:04d}.png")
        if os.path.isfile(grid):
            pictures["samples"] = _image(grid)
        model = self.model
        if self.reference is not None and model.data_kind == "points" \
                and model.likelihood == "exact":
            state = model.rng.state.numpy()
            pictures["density"] = _image(plotting.density_beside_data(
                plotting.log_density(model), self.reference, None,
                bins=self.DENSITY_BINS))
            model.rng.state.assign(state)
        if pictures:
            with self._train_writer.as_default():
                for name, picture in pictures.items():
                    tf.summary.image(name, picture, step=epoch)
            self._train_writer.flush()


def _diverged(failure, last_good, run, run_dir, data_dir):
    """The NonFiniteLossError for `failure`, naming the last good checkpoint and the
    command that resumes from it with a lower learning rate."""
    epoch = failure["epoch"]
    where = f"epoch {epoch}" + (f", batch {failure['batch']}" if "batch" in failure else "") \
        + (f" ({failure['where']})" if "where" in failure else "")
    command = resume_command(run["model"], run_dir, f"{run['training']['learning_rate'] / 10:g}",
                             run.get("strategy", "default"), data_dir)
    if last_good is None:
        good = (f"no checkpoint was written (it diverged in the first epoch); start again "
                f"with a lower learning rate: `{command}`")
    else:
        good = (f"the last good checkpoint, {last_good.path} (epoch {last_good.epoch}), is "
                f"intact: resume from it with a lower learning rate, `{command}`")
    return NonFiniteLossError(
        f"training stopped: non-finite values in {where}: {failure['values']}; {good}",
        epoch, failure["values"], last_good and last_good.path)


def _epochs(numbers):
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    spans = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


# ------------------------------------------------------------------ the loop
class TrainResult:
    """What :func:`train` returns: the trained model and where its state lies."""

    def __init__(self, model, run_dir, checkpoint, history, total):
        self.model = model
        self.run_dir = run_dir
        self.epoch = checkpoint.epoch if checkpoint else 0  # epochs completed
        self.checkpoint = checkpoint.path if checkpoint else None
        self.history = history  # one dict per epoch
        self.finished = self.epoch >= total


def _say(verbose, message):
    if verbose:
        print(message, flush=True)


def train(name, dataset, out, epochs=None, batch_size=None, learning_rate=None,
          steps_per_epoch=None, overrides=None, resume=False, seed=None, jit_compile=None,
          verbose="auto", data_dir=None, callbacks=(), critic_learning_rate=None,
          strategy="default", precision=None, connect_timeout=None, imports=(),
          first_stage=None, validate_every=None, sample_every=None):
    """Trains model `name` on `dataset` into the run folder `out`.

    Settings not given come from the model's preset for the dataset
    (``entry.training_for(dataset)``) for a new run, and from ``run.json`` when
    resuming; given settings that differ from a resumed run's are an error,
    except `epochs` (a new target) and `learning_rate` (a new rate, e.g. after
    divergence). Nothing is written before every setting has been checked. The
    process that writes the run holds its lock (:class:`zoo.runs.RunLock`) until
    it returns, so a second writer is refused.

    Args:
        name: a registered model name.
        dataset: a dataset with a preset for the model; None: the model's default
            (new run) or the run's (resume).
        out: the run folder: for a new run, one that does not exist or is empty.
        epochs: epochs in total (not additional ones).
        batch_size, learning_rate: as in the preset unless given.
        steps_per_epoch: batches per epoch, the data repeated; None: one pass.
        overrides: model constructor arguments replacing the preset's.
        resume: continue the run in `out` from its last good checkpoint (from the
            start if it has none); `out` must hold a run. Without it, a folder with
            checkpoints is an error.
        seed: data order and random seeds (0 for a new run unless given).
        jit_compile: True: compile each train step with XLA; False: never;
            None: "auto", the model's choice (``GenerativeModel.compile``: a flow
            on vectors runs each execution of a long fit as one XLA program).
        critic_learning_rate: an adversarial model's critic learning rate, for
            two time-scale updates (Heusel et al. 2017,
            https://arxiv.org/abs/1706.08500); None: `learning_rate`. Fixed for
            the run (a new `learning_rate` on resume scales both).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch; "auto": 1 when
            stdout is a terminal, else 2.
        data_dir: the tfds data_dir (default ``$ZOO_DATA_DIR``, else tfds').
        callbacks: more Keras callbacks for ``fit``.
        strategy: where to train, one of :data:`zoo.distribute.STRATEGIES`
            (``default``, ``mirrored``, ``multi_worker`` configured by
            ``TF_CONFIG``, ``tpu``). Under ``multi_worker`` every worker calls
            this with the same arguments and `out` on a shared file system; the
            chief writes the run, the other workers resume from it alike but
            write to temporary folders that are removed when they return.
        precision: ``float32``, ``mixed_float16`` or ``mixed_bfloat16``
            (:mod:`zoo.precision`): the networks compute in the half type, the
            rest in float32. A model constructor argument, so the same as
            ``overrides={"precision": ...}``; None: the preset's (float32) or
            the resumed run's.
        connect_timeout: ``multi_worker``: seconds to wait for the other workers
            (:func:`zoo.distribute.wait_for_workers`); None:
            :data:`zoo.distribute.CONNECT_TIMEOUT`.
        imports: modules to import first, which register models defined outside
            the zoo (``zoo train --import MODULE``); the run records them, so
            that every later command on it imports them too.
        first_stage: for a two-stage model (whose class sets
            ``first_stage_kinds``), the run folder of its trained first stage on
            the same dataset (``zoo train --first-stage RUN``): its last good
            checkpoint is checked and built into the model, and ``run.json``
            records the run, the checkpoint's file and its SHA-256. The model's
            checkpoints hold the first stage, so resuming needs no first-stage
            folder (a run resumed before its first checkpoint loads the recorded
            one again).
        validate_every: evaluate the test split's loss terms every this many
            epochs (``fit``'s ``validation_data``; in ``history.json`` as
            ``val_<term>`` and in TensorBoard's ``validation`` run); 0: never.
            None: the resumed run's, or for a new run
            :func:`default_validate_every` (every epoch on digits and the 2-D
            densities, never on Fashion-MNIST). It may change on resume; the
            training itself is the same whatever it is.
        sample_every: draw ``samples/epoch_NNNN.png`` (``.txt`` for text)
            every this many epochs and after the last; 0: never (a sequential
            sampler's grid of 64 images can cost more than an epoch on a CPU).
            None: the resumed run's, or 1 (every epoch). It may change on
            resume; the training is the same whatever it is.
    Returns:
        A :class:`TrainResult`.
    Raises:
        RunError: unknown model or dataset, bad overrides or settings, a folder
            that is neither new nor empty without `resume`, nothing to resume, a
            run folder another process writes, settings conflicting with the
            run, damaged run files; a missing, damaged or mismatched first stage
            (another dataset or model); an unknown strategy, a missing or bad
            ``TF_CONFIG``, workers that did not come, no TPU; an unknown
            precision, or a mixed one for a model that cannot take it.
        NonFiniteLossError: NaN/Inf during training (the epoch is not saved).
        zoo.runs.TrainingInterrupted: Ctrl-C; the message names the last good
            checkpoint and the command that resumes the run.
        zoo.datasets.DatasetError: the data cannot be loaded.
    """
    run_dir = runs.check_folder(out)
    imports = list(imports or ())
    runs.import_modules(imports)
    try:  # before anything is written
        writer = distribute.writes_run(distribute.check_name(strategy))
    except ValueError as e:
        raise RunError(str(e)) from None
    if connect_timeout is not None and not (
            isinstance(connect_timeout, (int, float)) and not isinstance(connect_timeout, bool)
            and 0 < connect_timeout < math.inf):
        raise RunError(f"connect_timeout must be a positive number of seconds, got "
                       f"{connect_timeout!r}")
    # One writer per run folder; a multi-worker run's other workers only read it.
    lock = runs.RunLock(run_dir) if writer else None
    busy = lock and lock.holder()
    if busy:
        raise busy
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    if precision is not None:
        overrides = {**(overrides or {}), "precision": precision}
    settings = {"batch_size": batch_size, "learning_rate": learning_rate,
                "steps_per_epoch": steps_per_epoch, "jit_compile": jit_compile,
                "critic_learning_rate": critic_learning_rate,
                "validate_every": validate_every, "sample_every": sample_every}
    has_run = os.path.isfile(os.path.join(run_dir, RUN_FILE))
    if resume and not has_run:
        raise RunError(f"nothing to resume in {run_dir!r}: it holds no {RUN_FILE}; start "
                       "a new run there without --resume")
    if not resume:
        runs.check_new_folder(run_dir)
        run = new_run(name, dataset, epochs, overrides, seed, settings)
        if imports:
            run["imports"] = imports
        check_precision(run)
        stage_folder = first_stage_folder(run, run_dir, first_stage, resume)
    if lock:  # a resumed run's files are read under the lock, a new run's made
        lock.acquire()
    try:
        if resume:
            stored = runs.read_run(run_dir)
            run = resumed_run(stored, run_dir, name, dataset, epochs, overrides, seed,
                              settings)
            history = runs.read_history(run_dir)
            check_precision(run)
            stage_folder = first_stage_folder(run, run_dir, first_stage, resume)
        else:
            runs.check_new_folder(run_dir)  # again: no run was written before the lock
            stored, history = None, []
        return _train(run, run_dir, writer, strategy, connect_timeout, resume, stored,
                      history, verbose, data_dir, callbacks, stage_folder)
    except KeyboardInterrupt:
        raise runs.TrainingInterrupted(
            interrupted_message(name, run_dir, data_dir, strategy)) from None
    finally:
        if lock:
            lock.release()


def check_precision(run):
    """RunError if the run's precision is unknown or its model cannot take it."""
    try:
        precision_module.check(run["overrides"].get("precision", "float32"),
                               model_entry(run["model"]).cls, run["model"])
    except precision_module.PrecisionError as e:
        raise RunError(str(e)) from None


def _train(run, run_dir, writer, strategy, connect_timeout, resume, stored, history,
           verbose, data_dir, callbacks, stage_folder=None):
    """:func:`train` once the settings are checked (and the run folder locked);
    `stage_folder` is the run of a two-stage model's first stage."""
    run["strategy"] = strategy
    try:  # first of all TensorFlow: collective ops are configured at start-up
        scope = distribute.make_strategy(strategy, connect_timeout=connect_timeout).scope()
    except ValueError as e:
        raise RunError(str(e)) from None
    with scope:
        model, checkpoint = runs.load_newest(run_dir) if resume else (None, None)
        stage = None
        if model is None and stage_folder is not None:
            stage = load_first_stage(run, run_dir, stage_folder)
        # Once per process: a new global TF seed makes Keras retrace the train step.
        keras.utils.set_random_seed(run["seed"])
        if model is None:
            model = build_model(run["model"], run["dataset"], run["overrides"], stage)
            _compile(model, run)
    scratch = None if writer else tempfile.mkdtemp(prefix="zoo-worker-")
    try:
        result = _fit(model, run, run_dir, scratch or run_dir, checkpoint, history, stored,
                      verbose if writer else 0, data_dir, callbacks)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch:
        result.checkpoint = None  # it was in the scratch folder: the chief's is the run's
    return result


def resume_command(model, run_dir, learning_rate=None, strategy="default", data_dir=None):
    """The `zoo train` command that resumes a run, quoted for a POSIX shell."""
    argv = ["zoo", "train", model, "--out", os.fspath(run_dir), "--resume"]
    if learning_rate is not None:
        argv += ["--lr", learning_rate]
    if strategy != "default":
        argv += ["--strategy", strategy]
    if data_dir is not None:
        argv += ["--data-dir", os.fspath(data_dir)]
    return " ".join(shlex.quote(str(a)) for a in argv)


def interrupted_message(name, run_dir, data_dir=None, strategy="default",
                        reason="interrupted"):
    """What an interrupted `train` says: `reason`, the last good checkpoint of the
    run folder and how to resume it."""
    try:
        index = runs.read_index(run_dir)
    except RunError:
        index = None
    command = resume_command(name, run_dir, strategy=strategy, data_dir=data_dir)
    if index is not None and os.path.isfile(index.path):
        return (f"{reason}; the last good checkpoint, {index.path} (epoch {index.epoch}), "
                f"is intact: resume with `{command}`")
    if os.path.isfile(os.path.join(run_dir, RUN_FILE)):
        return (f"{reason} before the first checkpoint of {run_dir}; start it again with "
                f"`{command}`")
    return f"{reason} before anything was written to {run_dir}"


def _fit(model, run, run_dir, write_dir, checkpoint, history, stored, verbose, data_dir,
         callbacks):
    """Fits from `checkpoint` (None: the start) to the run's epochs, writing run.json,
    checkpoints, history, samples and logs under `write_dir` (`run_dir` except on a
    multi-worker run's non-chief workers)."""
    if checkpoint is not None and \
            run["training"]["learning_rate"] != stored["training"]["learning_rate"]:
        set_learning_rate(model, stored["training"]["learning_rate"],
                          run["training"]["learning_rate"])
        run.setdefault("learning_rate_changes", []).append({
            "epoch": checkpoint.epoch + 1, "from": stored["training"]["learning_rate"],
            "to": run["training"]["learning_rate"]})
    start = checkpoint.epoch if checkpoint else 0
    total = run["training"]["epochs"]
    history = [record for record in history if record["epoch"] <= start]
    missing = sorted(set(range(1, start + 1)) - {record["epoch"] for record in history})
    if missing and write_dir == run_dir:
        runs.log.warning("%s has no record of epoch%s %s: their losses and times are lost "
                         "(a checkpoint holds the model only); it holds the epochs trained "
                         "from now on", os.path.join(run_dir, HISTORY_FILE),
                         "s" if len(missing) > 1 else "", _epochs(missing))
    if start >= total:
        _say(verbose, f"run {run_dir} is finished: {start} of {total} epochs done "
                      "(pass more epochs to train further)")
        return TrainResult(model, run_dir, checkpoint, history, total)
    training = run["training"]
    data, steps = datasets.training_epochs(
        run["dataset"], training["batch_size"], total, first_epoch=start,
        steps_per_epoch=training["steps_per_epoch"], seed=run["seed"], data_dir=data_dir,
        num_classes=getattr(model, "num_classes", 0))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = distribute.shard_policy()
    data = data.with_options(options)
    reference = runs.reference_points(model, run["dataset"], data_dir)
    probe = next(iter(datasets.load(run["dataset"], "train", training["batch_size"],
                                    shuffle=False, take=training["batch_size"],
                                    data_dir=data_dir)))
    run["config"] = _jsonable(model.get_config())
    runs.write_json(os.path.join(write_dir, RUN_FILE), run)
    if start:
        _say(verbose, f"resuming {run_dir} at epoch {start + 1} of {total} "
                      f"(from {checkpoint.path})")
    guard = NonFiniteStop()
    checkpointer = RunCheckpoint(write_dir, history, guard, probe=probe, last=checkpoint)
    tensorboard = RunTensorBoard(write_dir, guard, run, reference)
    every = validate_every(run)
    validation = {}
    if every:
        batch = max(training["batch_size"],
                    VALIDATION_BATCH_VALUES // int(np.prod(model.data_shape)))
        test = datasets.load(run["dataset"], "test", batch, shuffle=False, data_dir=data_dir,
                             with_labels=bool(getattr(model, "num_classes", 0)))
        validation = {"validation_data": test.with_options(options), "validation_freq": every}
    lost = None
    try:
        model.fit(data, epochs=total, initial_epoch=start, steps_per_epoch=steps,
                  shuffle=False, verbose=verbose, **validation,
                  callbacks=[KeepRandomStream(), guard, checkpointer,
                             SampleGrid(write_dir, guard, run["seed"], reference,
                                        every=sample_every(run), last=total),
                             tensorboard, *callbacks])
    except tf.errors.OpError as e:
        if run.get("strategy") != "multi_worker":
            raise
        message = re.sub(r"\{\{.*?\}\}\s*", "", str(e.message)).strip()
        lost = f"{type(e).__name__}: " + (message.splitlines() or [""])[0][:300]
    if lost is not None:
        # The failed step's frames (a TF all-reduce thread pool among them) are in
        # reference cycles: free them now, while the pool's pipes are open, rather
        # than at exit, where its __del__ prints a traceback.
        gc.collect()
        last = checkpointer.last
        if run_dir != write_dir:
            kept = "the chief's run folder keeps its last good checkpoint"
        elif last is None:
            kept = "no checkpoint was written yet"
        else:
            kept = f"the last good checkpoint, {last.path} (epoch {last.epoch}), is intact"
        command = resume_command(run["model"], run_dir, strategy=run["strategy"],
                                 data_dir=data_dir)
        raise RunError(f"training stopped: the workers lost each other ({lost}); {kept}: "
                       f"start every worker again with --resume (`{command}`)")
    if guard.failure is not None:
        raise _diverged(guard.failure, checkpointer.last, run, run_dir, data_dir)
    return TrainResult(model, run_dir, checkpointer.last, history, total)

