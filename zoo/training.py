"""The training loop of ``zoo train``: one run folder per run, resumable.

A run folder holds::

    run.json                      model, dataset, overrides, training settings, seed
    checkpoints/epoch_NNNN.keras  model and optimizer state after epoch NNNN (the last
                                  KEEP_CHECKPOINTS epochs are kept)
    checkpoints/latest.json       {"epoch": N, "file": "epoch_NNNN.keras"}: the last good one
    samples/epoch_NNNN.png        samples after each epoch (the same seed every epoch)
    logs/                         TensorBoard logs
    history.json                  one record of loss terms per epoch, across resumes

Checkpoints and JSON files are written to a temporary file and renamed into place,
and ``latest.json`` is written last, so an interrupted run always has a complete
last good checkpoint. A NaN/Inf in any logged value stops the run before the
epoch's checkpoint is written (:class:`NonFiniteLossError`).

The global random seeds are set to ``seed`` when a process starts (or resumes) a
run, and epoch ``k`` reads the training data shuffled with seed ``seed + k``, so
the data order of an epoch does not depend on whether the run was resumed. Models
whose training step draws no random numbers (flows on 2-D data) resume bit for bit.
Those that draw noise inside the step (dequantization, GAN latents) continue from
exactly the saved weights and optimizer state, but a resumed process restarts the
noise stream where the run's first epoch began: TF's stateful random ops keep their
state inside the traced step, which no checkpoint holds (resetting it each epoch
would mean retracing the step each epoch).
"""

import dataclasses
import inspect
import json
import os
import re
import time

import keras
import numpy as np

import zoo
from zoo import datasets, plotting, registry
from zoo.base import GenerativeModel

RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
CHECKPOINTS = "checkpoints"
LATEST_FILE = "latest.json"
SAMPLES = "samples"
LOGS = "logs"
IMAGE_SAMPLES = 64  # samples per epoch picture: an 8x8 grid of images ...
POINT_SAMPLES = 1000  # ... or this many 2-D points
CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)\.keras$")
KEEP_CHECKPOINTS = 3  # checkpoints kept per run (about 5 MB each for digits RealNVP)
TRAINING_KEYS = ("batch_size", "learning_rate", "steps_per_epoch", "jit_compile")


class RunError(Exception):
    """A run cannot be started, resumed or read; the message says why and what to do."""


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/Inf; the run stopped before saving that epoch.

    Attributes:
        epoch: the (1-based) epoch in which it happened.
        values: the non-finite logged values, name -> float (or weight names).
        checkpoint: the path of the last good checkpoint, or None.
    """

    def __init__(self, message, epoch, values, checkpoint):
        super().__init__(message)
        self.epoch = epoch
        self.values = values
        self.checkpoint = checkpoint


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained model and where its state lies."""

    model: keras.Model
    run_dir: str
    epoch: int  # epochs completed
    checkpoint: str  # path of the last checkpoint
    history: list  # one dict per epoch
    finished: bool  # epoch == the run's epochs


# ------------------------------------------------------------------ files
def checkpoint_name(epoch):
    """The checkpoint file name of a 1-based epoch: ``epoch_0003.keras``."""
    return f"epoch_{epoch:04d}.keras"


def write_json(path, value):
    """Writes JSON atomically: to a temporary file, flushed, then renamed over `path`."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_json(path, what):
    """Reads a JSON file, or raises RunError saying which file of a run is bad."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{what} {path} cannot be read: {e}") from None


def checkpoint_files(run_dir):
    """Names of the ``epoch_NNNN.keras`` files in a run folder, sorted."""
    folder = os.path.join(os.fspath(run_dir), CHECKPOINTS)
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if CHECKPOINT_PATTERN.match(n))


def latest_checkpoint(run_dir):
    """The last good checkpoint as ``{"epoch", "file", "path"}``, or None.

    It is the one ``checkpoints/latest.json`` names (written after the checkpoint
    itself, so it only ever names a complete file).
    """
    path = os.path.join(os.fspath(run_dir), CHECKPOINTS, LATEST_FILE)
    if not os.path.exists(path):
        return None
    latest = read_json(path, "checkpoint index")
    if not isinstance(latest, dict) or "epoch" not in latest or "file" not in latest:
        raise RunError(f"checkpoint index {path}: expected {{'epoch': N, 'file': NAME}}, "
                       f"got {latest!r}")
    file = os.path.join(os.fspath(run_dir), CHECKPOINTS, latest["file"])
    if not os.path.isfile(file):
        raise RunError(f"checkpoint index {path} names {latest['file']}, which is missing")
    return {"epoch": int(latest["epoch"]), "file": latest["file"], "path": file}


def read_run(run_dir):
    """The ``run.json`` of a run folder, or a RunError saying none is there."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise RunError(f"no run folder at {run_dir!r} (train one with `zoo train MODEL "
                       f"--dataset D --out {run_dir}`)")
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise RunError(f"{run_dir!r} is not a run folder: it has no {RUN_FILE} "
                       "(written by `zoo train`)")
    return read_json(path, "run settings")


def load_checkpoint(run_dir):
    """Loads a run's last good checkpoint, compiled, with its optimizer state.

    Returns:
        ``(model, run, latest)``: the model, the run's settings (``run.json``)
        and ``{"epoch", "file", "path"}`` of the checkpoint.
    """
    run = read_run(run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise RunError(f"run {os.fspath(run_dir)!r} has no checkpoint yet (no "
                       f"{CHECKPOINTS}/{LATEST_FILE}); train at least one epoch")
    return _load_model(run["model"], latest["path"]), run, latest


def _load_model(name, path):
    model_entry(name)  # imports the module that registers the class
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # a damaged or foreign file
        raise RunError(f"checkpoint {path} cannot be loaded: {type(e).__name__}: {e}") from e


def read_history(run_dir, upto=None):
    """The records of ``history.json`` (epochs <= `upto` if given), or []."""
    path = os.path.join(os.fspath(run_dir), HISTORY_FILE)
    if not os.path.exists(path):
        return []
    history = read_json(path, "training history")
    return [r for r in history if upto is None or r.get("epoch", 0) <= upto]


# ------------------------------------------------------------ models and settings
def model_entry(name):
    """The registry entry of `name`, or RunError listing the known models."""
    try:
        return registry.entry(name)
    except ValueError as e:
        raise RunError(str(e)) from None


def model_parameters(cls):
    """The constructor parameters of a zoo model class (through its base classes)."""
    names = {"data_shape", "num_levels"}
    for klass in cls.__mro__:
        if isinstance(klass, type) and issubclass(klass, GenerativeModel):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self":
                    names.add(p.name)
    return sorted(names)


def build_model(name, dataset, overrides):
    """``zoo.get(name, dataset, **overrides)``, with errors naming the parameters."""
    entry = model_entry(name)
    try:
        entry.config_for(dataset)
    except ValueError as e:
        raise RunError(str(e)) from None
    unknown = sorted(set(overrides) - set(model_parameters(entry.cls)))
    if unknown:
        raise RunError(f"model {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                       f"its parameters: {model_parameters(entry.cls)}")
    try:
        return registry.get(name, dataset=dataset, **overrides)
    except (TypeError, ValueError) as e:
        raise RunError(f"model {name!r} with overrides {overrides}: {e}") from None


def _jsonable(value):
    return json.loads(json.dumps(value))


def _check_positive(name, value, kind):
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
    if not ok:
        raise RunError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def new_run(name, dataset, epochs, overrides, seed, settings):
    """The settings of a fresh run: explicit values, else the preset's training defaults."""
    entry = model_entry(name)
    dataset = dataset or entry.default_dataset
    try:
        defaults = entry.training_for(dataset)
    except ValueError as e:
        raise RunError(str(e)) from None
    training = {
        "epochs": epochs or defaults.get("epochs", 10),
        "batch_size": settings["batch_size"] or defaults.get("batch_size", 64),
        "learning_rate": settings["learning_rate"] or defaults.get("learning_rate", 1e-3),
        "steps_per_epoch": settings["steps_per_epoch"] or defaults.get("steps_per_epoch"),
        "jit_compile": bool(settings["jit_compile"]),
    }
    _check_positive("epochs", training["epochs"], int)
    _check_positive("batch_size", training["batch_size"], int)
    _check_positive("learning_rate", float(training["learning_rate"]), float)
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
    """The stored settings, checked against the explicit ones; `epochs` may change."""

    def conflict(key, old, new):
        raise RunError(
            f"run {run_dir!r} was started with {key}={old!r}, but {key}={new!r} was "
            f"given; resume without it (the run keeps its settings) or start a new run "
            f"with another --out"
        )

    for key, value in (("model", name), ("dataset", dataset)):
        if value is not None and value != stored[key]:
            conflict(key, stored[key], value)
    if overrides and _jsonable(overrides) != stored["overrides"]:
        conflict("overrides", stored["overrides"], _jsonable(overrides))
    if seed is not None and seed != stored["seed"]:
        conflict("seed", stored["seed"], seed)
    for key in TRAINING_KEYS:
        value = settings[key]
        if value is not None and value != stored["training"][key]:
            conflict(key, stored["training"][key], value)
    run = _jsonable(stored)
    if epochs is not None:
        _check_positive("epochs", epochs, int)
        run["training"]["epochs"] = epochs
    return run


# ------------------------------------------------------------------ callbacks
def non_finite(logs):
    """The entries of a logs dict that hold NaN or Inf, as name -> float."""
    bad = {}
    for key, value in (logs or {}).items():
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            bad[key] = float(array.ravel()[~np.isfinite(array.ravel())][0])
    return bad


def non_finite_weights(model):
    """Paths of the model's weights that hold NaN or Inf."""
    return [w.path for w in model.weights if not np.all(np.isfinite(np.asarray(w)))]


class FiniteGuard(keras.callbacks.Callback):
    """Stops training at the first batch with a NaN/Inf in any logged value.

    Every value counts, not only ``loss`` (WGAN-GP logs ``critic_loss`` and others).
    ``failure`` is then ``{"epoch": 1-based epoch, "batch": batch, "values": {...}}``.
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


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, headed ``Epoch k/N`` with the run's N (fit runs one epoch)."""

    def __init__(self, epochs):
        super().__init__()
        self.total_epochs = epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs


# ------------------------------------------------------------------ the loop
def reference_points(model, dataset, data_dir=None):
    """Test points drawn under 2-D samples (None for image models)."""
    if tuple(model.data_shape) != (2,):
        return None
    data = datasets.load(dataset, "test", POINT_SAMPLES, shuffle=False, take=POINT_SAMPLES,
                         data_dir=data_dir)
    return np.asarray(next(iter(data)))


def sample_count(model):
    return IMAGE_SAMPLES if len(model.data_shape) == 3 else POINT_SAMPLES


def _compile(model, run):
    training = run["training"]
    model.compile(optimizer=model.default_optimizer(training["learning_rate"]),
                  jit_compile=training["jit_compile"])


def _save_epoch(model, run_dir, epoch, history):
    """Checkpoint, history and then latest.json, each written atomically."""
    folder = os.path.join(run_dir, CHECKPOINTS)
    os.makedirs(folder, exist_ok=True)
    name = checkpoint_name(epoch)
    tmp = os.path.join(folder, f".tmp-{name}")  # still ends in .keras, as save() needs
    model.save(tmp)
    os.replace(tmp, os.path.join(folder, name))
    write_json(os.path.join(run_dir, HISTORY_FILE), history)
    write_json(os.path.join(folder, LATEST_FILE), {"epoch": epoch, "file": name})
    for old in checkpoint_files(run_dir)[:-KEEP_CHECKPOINTS]:
        os.remove(os.path.join(folder, old))
    return os.path.join(folder, name)


def _epoch_failure(model, logs, epoch):
    """NaN/Inf in the epoch's logs or, after its last update, in the weights; or None."""
    bad = non_finite(logs)
    if not bad and non_finite_weights(model):
        bad = {"weights": non_finite_weights(model)}
    return {"epoch": epoch, "values": bad} if bad else None


def _diverged(failure, last_good):
    """The NonFiniteLossError for `failure`, naming the last good checkpoint."""
    epoch = failure["epoch"]
    where = f"epoch {epoch}" + (f", batch {failure['batch']}" if "batch" in failure else "")
    if last_good is None:
        good = ("no checkpoint was written (it diverged in the first epoch); start "
                "again, e.g. with a lower --lr")
    else:
        good = (f"the last good checkpoint, {last_good['path']} (epoch {last_good['epoch']}), "
                "is intact: resume from it with --resume, or start a new run (another "
                "--out) with a lower --lr")
    return NonFiniteLossError(
        f"training stopped: non-finite values in {where}: {failure['values']}; "
        f"{good}", epoch, failure["values"], last_good and last_good["path"])


def _fit_epochs(model, run, run_dir, start, history, verbose, data_dir):
    training, seed = run["training"], run["seed"]
    steps = training["steps_per_epoch"]
    tensorboard = keras.callbacks.TensorBoard(os.path.join(run_dir, LOGS), write_graph=False)
    progbar = [EpochProgbar(training["epochs"])] if verbose else []
    reference = reference_points(model, run["dataset"], data_dir)
    last_good = latest_checkpoint(run_dir)
    for epoch in range(start, training["epochs"]):
        data = datasets.load(run["dataset"], "train", training["batch_size"],
                             repeat=steps is not None, seed=seed + epoch, data_dir=data_dir)
        guard = FiniteGuard()
        began = time.time()
        fitted = model.fit(data, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps,
                           shuffle=False, callbacks=[guard, tensorboard, *progbar],
                           verbose=verbose)
        logs = {k: float(v[-1]) for k, v in fitted.history.items()}
        failure = guard.failure or _epoch_failure(model, logs, epoch + 1)
        if failure is not None:
            raise _diverged(failure, last_good)
        history.append({"epoch": epoch + 1, **logs, "seconds": round(time.time() - began, 3)})
        path = _save_epoch(model, run_dir, epoch + 1, history)
        last_good = {"epoch": epoch + 1, "path": path}
        plotting.save_samples(model, os.path.join(run_dir, SAMPLES, f"epoch_{epoch + 1:04d}.png"),
                              sample_count(model), seed, reference=reference)
    return last_good


def _say(verbose, message):
    if verbose:
        print(message, flush=True)


def train(name, dataset, out, epochs=None, batch_size=None, learning_rate=None,
          steps_per_epoch=None, overrides=None, resume=False, seed=None, jit_compile=None,
          verbose=1, data_dir=None):
    """Trains model `name` on `dataset` into the run folder `out`.

    Settings not given come from the model's preset for the dataset
    (``entry.training_for(dataset)``) for a new run, and from ``run.json`` when
    resuming; given settings that differ from a resumed run's are an error,
    except `epochs`, which sets a new target.

    Args:
        name: a registered model name.
        dataset: a dataset with a preset for the model; None: the model's default
            (new run) or the run's (resume).
        out: the run folder.
        epochs: epochs in total (not additional ones).
        batch_size, learning_rate: as in the preset unless given.
        steps_per_epoch: batches per epoch, the data repeated; None: one pass.
        overrides: model constructor arguments replacing the preset's.
        resume: continue from the last good checkpoint in `out` (a fresh start if
            there is none); without it, a folder with checkpoints is an error.
        seed: data order and random seeds (0 for a new run unless given).
        jit_compile: compile the train step with XLA.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        data_dir: the tfds data_dir (default ``$ZOO_DATA_DIR``, else tfds').
    Returns:
        A :class:`TrainResult`.
    Raises:
        RunError: unknown model or dataset, bad overrides or settings, a folder
            with checkpoints without `resume`, settings conflicting with the run.
        NonFiniteLossError: NaN/Inf during training (the epoch is not saved).
        zoo.datasets.DatasetError: the data cannot be loaded.
    """
    run_dir = os.fspath(out)
    settings = {"batch_size": batch_size, "learning_rate": learning_rate,
                "steps_per_epoch": steps_per_epoch, "jit_compile": jit_compile}
    latest = latest_checkpoint(run_dir)
    if not resume and (latest or checkpoint_files(run_dir)):
        raise RunError(f"run folder {run_dir!r} already holds checkpoints; pass --resume "
                       "to continue it, or choose another --out")
    has_run = os.path.exists(os.path.join(run_dir, RUN_FILE))
    if latest and not has_run:
        raise RunError(f"run folder {run_dir!r} has checkpoints but no {RUN_FILE}: "
                       "cannot tell its settings; choose another --out")
    if resume and has_run:
        run = resumed_run(read_run(run_dir), run_dir, name, dataset, epochs, overrides,
                          seed, settings)
    else:
        if resume:
            _say(verbose, f"no run to resume in {run_dir}: starting a new run")
        run = new_run(name, dataset, epochs, overrides, seed, settings)
    # Once per process: a new global TF seed makes Keras retrace the train step.
    keras.utils.set_random_seed(run["seed"])
    if latest is not None:
        model = _load_model(run["model"], latest["path"])
        start = latest["epoch"]
    else:
        model = build_model(run["model"], run["dataset"], run["overrides"])
        _compile(model, run)
        start = 0
    run["config"] = _jsonable(model.get_config())
    history = read_history(run_dir, upto=start)
    total = run["training"]["epochs"]
    if start >= total:
        _say(verbose, f"run {run_dir} is finished: {start} of {total} epochs done "
                      "(pass more epochs to train further)")
        return TrainResult(model, run_dir, start, latest["path"], history, True)
    write_json(os.path.join(run_dir, RUN_FILE), run)
    if start:
        _say(verbose, f"resuming {run_dir} at epoch {start + 1} of {total} "
                      f"(from {latest['path']})")
    last = _fit_epochs(model, run, run_dir, start, history, verbose, data_dir)
    return TrainResult(model, run_dir, last["epoch"], last["path"], history,
                       last["epoch"] >= total)
