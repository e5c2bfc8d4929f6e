"""Run folders: their files, checks on reading them, and what is done with a run.

A run folder holds::

    run.json                      model, dataset, overrides, training settings, seed;
                                  a two-stage model's first stage (run, checkpoint, SHA-256)
    checkpoints/epoch_NNNN.keras  model, optimizer and random-stream state after epoch
                                  NNNN (the last KEEP_CHECKPOINTS epochs are kept)
    checkpoints/latest.json       {"epoch": N, "file": "epoch_NNNN.keras"}: the last good one
    samples/epoch_NNNN.png        samples after each epoch (the same seed every epoch;
                                  .txt for a model of text)
    logs/                         TensorBoard logs
    history.json                  one record of loss terms per epoch, across resumes
    metrics.json                  what ``zoo evaluate`` measured, and of which checkpoint
                                  (its file, SHA-256 and model)
    .lock                         held by the process training the run (:class:`RunLock`)

A run folder has one writer: ``zoo train`` holds an OS lock on ``.lock``
(released when the process ends, however it ends) and a second one is refused,
naming the process that holds it. A new run goes only into a new or empty folder.
Every JSON file is strict JSON, written to a temporary file and renamed into place.
Reading checks each file's shape and names the file and what was expected when it
is wrong. A checkpoint that does not load (truncated, damaged) is passed over for
the newest one that does, with a warning naming it; none is ever deleted here.
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from zoo import registry, validation

RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
LATEST_FILE = "latest.json"
SAMPLES = "samples"
LOGS = "logs"
LOCK_FILE = ".lock"
CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)\.keras$")
KEEP_CHECKPOINTS = 3  # checkpoints kept per run (about 5 MB each for digits RealNVP)
TRAINING_SETTINGS = {"epochs": int, "batch_size": int, "learning_rate": float,
                     "steps_per_epoch": (int, type(None)), "jit_compile": (bool, str),
                     "validate_every": (int, type(None)),  # None: not recorded (zoo 0.1)
                     "sample_every": (int, type(None))}  # None: not recorded (every epoch)
# The training settings that say how often something beside training happens
# (the test split's losses, the sample grid): 0 is never, and resuming may change them.
EVERY_SETTINGS = ("validate_every", "sample_every")

log = logging.getLogger("zoo")


class RunError(Exception):
    """A run cannot be started, resumed or read; the message says why and what to do."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the message names the last good checkpoint
    and how to resume."""


class NonFiniteError(RuntimeError):
    """Training or evaluation produced NaN/Inf; nothing of it was written."""


class NonFiniteLossError(NonFiniteError):
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


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file of a run: its epoch, file name and path."""

    epoch: int
    file: str
    path: str


# ------------------------------------------------------------------ JSON files
def write_json(path, value):
    """Writes strict JSON atomically: a temporary file, flushed, renamed over `path`.

    Raises ValueError for NaN/Inf (which JSON cannot hold) rather than write them.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    text = json.dumps(value, indent=2, allow_nan=False)
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_json(path, what, recover=None):
    """Reads a JSON file, or raises RunError saying which file of a run is bad
    (and, given `recover`, how to recover)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{what} {path} cannot be read: {e}"
                       + (f". {recover}" if recover else "")) from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_run(run_dir):
    """The checked ``run.json`` of a run folder, or a RunError saying what is wrong."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise RunError(f"no run folder at {run_dir!r} (train one with `zoo train MODEL "
                       f"--dataset D --out {run_dir}`)")
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise RunError(f"{run_dir!r} is not a run folder: it has no {RUN_FILE} "
                       "(written by `zoo train`)")
    recover = "Restore the file, or start a new run with another --out"
    run = read_json(path, "run settings", recover)
    expected = ('expected an object with "model", "dataset", "overrides", "training" '
                '(epochs, batch_size, learning_rate, steps_per_epoch, jit_compile) and "seed"')
    problems = []
    if not isinstance(run, dict):
        problems.append(f"got {type(run).__name__}")
    else:
        for key, kind in (("model", str), ("dataset", str), ("overrides", dict),
                          ("training", dict)):
            if not isinstance(run.get(key), kind):
                problems.append(f"{key}={run.get(key)!r}")
        if not _is_int(run.get("seed")):
            problems.append(f"seed={run.get('seed')!r}")
        training = run.get("training")
        if isinstance(training, dict):
            for key, kind in TRAINING_SETTINGS.items():
                value = training.get(key)
                ok = isinstance(value, kind) and (kind is not int or _is_int(value))
                if key == "jit_compile" and isinstance(value, str):
                    ok = value == "auto"  # the model's choice (GenerativeModel.compile)
                if key in EVERY_SETTINGS:
                    ok = value is None or (_is_int(value) and value >= 0)
                if kind is float:
                    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value) and value > 0
                if not ok:
                    problems.append(f"training.{key}={value!r}")
        imports = run.get("imports", [])
        if not (isinstance(imports, list) and all(isinstance(m, str) for m in imports)):
            problems.append(f"imports={imports!r}")
        stage = run.get("first_stage", {"run": "", "checkpoint": "", "sha256": ""})
        if not (isinstance(stage, dict) and set(stage) == {"run", "checkpoint", "sha256"}
                and all(isinstance(v, str) for v in stage.values())):
            problems.append(f"first_stage={stage!r}")  # a two-stage model's (train)
    if problems:
        raise RunError(f"run settings {path} are damaged: {expected}; got "
                       f"{', '.join(problems)}. {recover}")
    import_modules(run.get("imports", []))
    return run


def import_modules(modules):
    """Imports the modules of models defined outside the zoo (``zoo train --import``,
    a run's ``imports``), or a RunError saying which cannot be imported."""
    for module in modules:
        try:
            registry.import_module(module)
        except ValueError as e:
            raise RunError(str(e)) from None


def read_index(run_dir):
    """``checkpoints/latest.json`` as a Checkpoint, or None when there is none.

    A present but damaged index is a RunError: it is not overwritten, and the
    message says how to rebuild it.
    """
    path = os.path.join(os.fspath(run_dir), CHECKPOINTS, LATEST_FILE)
    if not os.path.exists(path):
        return None
    recover = "Delete it to fall back to the newest checkpoint that loads"
    index = read_json(path, "checkpoint index", recover)
    ok = isinstance(index, dict) and _is_int(index.get("epoch")) and index["epoch"] >= 1 \
        and isinstance(index.get("file"), str) and CHECKPOINT_PATTERN.match(index["file"])
    if not ok:
        raise RunError(
            f'checkpoint index {path} is damaged: expected {{"epoch": N, "file": '
            f'"epoch_NNNN.keras"}}, got {json.dumps(index)[:200]}. {recover}')
    return Checkpoint(index["epoch"], index["file"],
                      os.path.join(os.fspath(run_dir), CHECKPOINTS, index["file"]))


def read_history(run_dir):
    """The records of ``history.json``, or []."""
    path = os.path.join(os.fspath(run_dir), HISTORY_FILE)
    if not os.path.exists(path):
        return []
    recover = "Restore it, or delete it to keep only the epochs trained from now on"
    history = read_json(path, "training history", recover)
    if not isinstance(history, list) or not all(
            isinstance(r, dict) and _is_int(r.get("epoch")) for r in history):
        raise RunError(
            f"training history {path} is damaged: expected a list of records "
            f'{{"epoch": N, ...}}, got {json.dumps(history)[:200]}. {recover}')
    return history


def check_folder(run_dir):
    """The run folder's path, or a RunError if it names a file."""
    run_dir = os.fspath(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"--out {run_dir!r} is a file; expected a run folder (new or existing)")
    return run_dir


def check_new_folder(run_dir):
    """The folder of a new run: one that does not exist or is empty (a lock file
    left by a killed run aside); otherwise a RunError saying what is there, so
    that nothing of a user's is overwritten."""
    run_dir = check_folder(run_dir)
    if not os.path.isdir(run_dir):
        return run_dir
    try:
        entries = sorted(set(os.listdir(run_dir)) - {LOCK_FILE})
    except OSError as e:
        raise RunError(f"--out {run_dir!r} cannot be read: {e.strerror}") from None
    if not entries:
        return run_dir
    if has_checkpoints(run_dir):
        raise RunError(f"run folder {run_dir!r} already holds checkpoints; pass --resume "
                       "to continue it, or choose another --out")
    if RUN_FILE in entries:
        raise RunError(f"run folder {run_dir!r} holds a run without checkpoints (its "
                       f"{RUN_FILE}); pass --resume to start it again, or choose another "
                       "--out")
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise RunError(f"--out {run_dir!r} is a folder that holds other files ({shown}); a new "
                   "run goes into a new or empty folder: choose another --out")


class RunLock:
    """The one writer of a run folder: an OS lock (``flock``) on ``RUN/.lock``.

    The file holds the writer's pid and host, so that a second writer is refused
    with a message naming them. The OS releases the lock when the process ends,
    however it ends, so a killed run can be resumed at once; :meth:`release`
    also removes the file (and the folders :meth:`acquire` made, if nothing else
    was written into them).
    """

    TRIES = 5  # a reader (holder) holds the file for an instant: try again briefly

    def __init__(self, run_dir):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self.fd = None
        self.made = []  # the folders acquire() made, innermost first

    def holder(self):
        """A RunError naming the process that holds the lock, or None if it is free."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # no lock file (or not ours to read): nobody holds it
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._locked(fd)
        finally:
            os.close(fd)
        return None

    def _locked(self, fd):
        try:
            owner = json.loads(os.pread(fd, 4096, 0).decode())
            who = f"pid {int(owner['pid'])} on host {owner['host']}"
        except (OSError, ValueError, TypeError, KeyError):
            who = "a process that has not said which yet"
        return RunError(f"run folder {self.run_dir!r} is being written by another process "
                        f"({who}, which holds its {LOCK_FILE}); wait for it to end, or "
                        "stop it and resume the run with --resume")

    def acquire(self):
        """Takes the lock, making the folder if needed; RunError if another process
        holds it (naming it) or the folder cannot be written."""
        path = os.path.abspath(self.run_dir)
        while not os.path.exists(path):
            self.made.append(path)
            path = os.path.dirname(path)
        try:
            os.makedirs(self.run_dir, exist_ok=True)
        except OSError as e:
            self.made = []
            raise RunError(f"cannot make the run folder {self.run_dir!r}: {e.strerror}") \
                from None
        busy = None
        for attempt in range(self.TRIES):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                self._remove_folder()
                raise RunError(f"cannot write into the run folder {self.run_dir!r}: "
                               f"{e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = self._locked(fd)
                os.close(fd)
                time.sleep(0.05 * (attempt + 1))
                continue
            try:  # the last holder may have removed the file it locked meanwhile
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
                      .encode() + b"\n", 0)
            self.fd = fd
            return self
        self._remove_folder()
        raise busy or RunError(f"cannot lock the run folder {self.run_dir!r}")

    def release(self):
        """Removes the lock file and lets the lock go (nothing if not held)."""
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        self._remove_folder()

    def _remove_folder(self):
        for folder in self.made:
            try:
                os.rmdir(folder)  # only when empty: nothing was written
            except OSError:
                break
        self.made = []

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ------------------------------------------------------------------ checkpoints
def checkpoint_name(epoch):
    """The checkpoint file name of a 1-based epoch: ``epoch_0003.keras``."""
    return f"epoch_{epoch:04d}.keras"


def checkpoint_files(run_dir):
    """Names of the ``epoch_NNNN.keras`` files in a run folder, sorted."""
    folder = os.path.join(os.fspath(run_dir), CHECKPOINTS)
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if CHECKPOINT_PATTERN.match(n))


def has_checkpoints(run_dir):
    return bool(checkpoint_files(run_dir)) or os.path.exists(
        os.path.join(os.fspath(run_dir), CHECKPOINTS, LATEST_FILE))


def load_model_file(path):
    """Loads a ``.keras`` file of a zoo model; ValueError naming the damage otherwise."""
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path) if os.path.exists(path) else None
        raise ValueError(f"{path} is not a complete .keras archive ({size} bytes; "
                         "truncated or damaged)")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # a damaged archive or a foreign file
        raise ValueError(f"{path} does not load: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]}") from e


def non_finite_weights(model):
    """Paths of the model's float weights that hold NaN or Inf."""
    return [w.path for w in model.weights
            if np.asarray(w).dtype.kind == "f" and not np.all(np.isfinite(np.asarray(w)))]


def load_checkpoint(run_dir):
    """Loads a run's last good checkpoint, compiled, with its optimizer state, to
    sample, evaluate or export it.

    That is the one ``latest.json`` names; if it does not load, or the index is
    missing, the newest older checkpoint that loads, with a warning naming what
    was passed over (no file is changed).

    Returns:
        ``(model, run, checkpoint)``: the model, the run's settings and the
        :class:`Checkpoint` loaded.
    Raises:
        RunError: no run, a damaged index, no checkpoint, or none that loads.
        NonFiniteError: the checkpoint's weights hold NaN or Inf (it diverged):
            nothing is to be drawn, measured or exported from it.
    """
    run = read_run(run_dir)
    model, checkpoint = load_newest(run_dir)
    if model is None:
        raise RunError(f"run {os.fspath(run_dir)!r} has no checkpoint yet (no "
                       f"{CHECKPOINTS}/epoch_NNNN.keras); train at least one epoch")
    bad = non_finite_weights(model)
    if bad:
        raise NonFiniteError(
            f"checkpoint {checkpoint.path} holds non-finite weights ({len(bad)} of them, "
            f"e.g. {bad[0]}): its model has diverged, so nothing was sampled, evaluated or "
            "exported from it, and nothing was written")
    return model, run, checkpoint


def checkpoint_digest(checkpoint):
    """The SHA-256 (hex) of a :class:`Checkpoint`'s file: what ``metrics.json`` was
    measured on."""
    digest = hashlib.sha256()
    with open(checkpoint.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metrics_mismatch(metrics, run, checkpoint):
    """Why `metrics` (of ``metrics.json``) are not those of `run`'s `checkpoint`, or
    None when they name its model, file and SHA-256."""
    if not isinstance(metrics, dict):
        return "a damaged metrics.json"
    if metrics.get("model") != run["model"]:
        return f"metrics of model {metrics.get('model')!r}, not {run['model']!r}"
    measured = metrics.get("checkpoint")
    if measured != os.path.join(CHECKPOINTS, checkpoint.file):
        return f"metrics of {measured}, not {os.path.join(CHECKPOINTS, checkpoint.file)}"
    if metrics.get("checkpoint_sha256") != checkpoint_digest(checkpoint):
        return f"metrics of another {measured} (its SHA-256 differs)"
    return None


def load_newest(run_dir):
    """``(model, checkpoint)`` of the newest loadable checkpoint (see
    :func:`load_checkpoint`), or ``(None, None)`` for a run without checkpoints.

    A run being trained rotates its checkpoints: one that is removed while it is
    read is no damage, and the index is read again."""
    run_dir = os.fspath(run_dir)
    for _ in range(LOAD_TRIES):
        found = _load_newest(run_dir)
        if found is not None:
            return found
    raise RunError(f"the checkpoints of {run_dir!r} changed {LOAD_TRIES} times while they "
                   "were read; try again")


LOAD_TRIES = 10


def _load_newest(run_dir):
    """:func:`load_newest` once; None if a checkpoint was removed while it was read."""
    index = read_index(run_dir)
    files = checkpoint_files(run_dir)
    notes = []
    if index is None and files:
        notes.append(("%s is missing: using the newest checkpoint that loads",
                      os.path.join(run_dir, CHECKPOINTS, LATEST_FILE)))
    newest = index.epoch if index else None
    candidates = [Checkpoint(int(CHECKPOINT_PATTERN.match(f).group(1)), f,
                             os.path.join(run_dir, CHECKPOINTS, f)) for f in files]
    candidates = [c for c in candidates if newest is None or c.epoch <= newest][::-1]
    if index is not None and index.file not in files:
        if os.path.exists(index.path):
            return None  # written since the listing
        notes.append(("%s names %s, which is missing", LATEST_FILE, index.file))
    failures = []
    for candidate in candidates:
        try:
            model = load_model_file(candidate.path)
        except ValueError as e:
            if not os.path.exists(candidate.path):
                return None  # rotated away by the run's training meanwhile
            failures.append(str(e))
            continue
        for note in notes:
            log.warning(*note)
        for failure in failures:
            log.warning("%s; using %s (epoch %d) instead", failure, candidate.file,
                        candidate.epoch)
        return model, candidate
    for note in notes:
        log.warning(*note)
    if failures or (index is not None):
        raise RunError(f"no checkpoint of {run_dir!r} loads: "
                       + ("; ".join(failures) or f"{LATEST_FILE} names a missing file")
                       + ". Start a new run with another --out")
    return None, None


def load_first_stage(run_dir, entry, dataset):
    """The first stage of a new run of model `entry` (a registry entry) on
    `dataset`: the last good checkpoint of the run `run_dir`, checked before
    anything is written.

    The run must be readable, of a model the entry's class takes
    (``first_stage_kinds``), on `dataset`, with a checkpoint that loads and has
    finite weights, and pass the class's ``check_first_stage``.

    Returns:
        ``(model, record)``: the loaded model and what ``run.json`` records of it,
        ``{"run": run_dir, "checkpoint": file name, "sha256": its SHA-256}``.
    Raises:
        RunError: saying which check failed and what was expected.
    """
    run_dir = os.fspath(run_dir)
    kinds = " or ".join(map(repr, entry.cls.first_stage_kinds))
    where = f"first stage {run_dir!r}"
    try:
        run = read_run(run_dir)
    except RunError as e:
        raise RunError(f"{where}: {e}") from None
    if run["model"] not in entry.cls.first_stage_kinds:
        raise RunError(f"{where} is a run of model {run['model']!r}; model {entry.name!r} "
                       f"takes a first stage of model {kinds}")
    if run["dataset"] != dataset:
        raise RunError(f"{where} was trained on {run['dataset']!r}, not on {dataset!r}; pass "
                       f"a run of {kinds} on {dataset!r}")
    config = entry.config_for(dataset)
    try:
        model, _, checkpoint = load_checkpoint(run_dir)
        entry.cls.check_first_stage(model, config["data_shape"], config["num_levels"])
    except (RunError, NonFiniteError, ValueError) as e:
        raise RunError(f"{where}: {e}") from None
    return model, {"run": run_dir, "checkpoint": checkpoint.file,
                   "sha256": checkpoint_digest(checkpoint)}


# ------------------------------------------------------------------ what is done with a run
def evaluate_run(run_dir, split="test", batch_size=None, data_dir=None, seed=0,
                 num_samples=None, features=None, iwae_samples=None, iwae_examples=None,
                 loaded=None, probability_flow_examples=None, probability_flow_steps=None,
                 nll_examples=None):
    """Evaluates a run's last good checkpoint and writes ``RUN/metrics.json``.

    What it costs is the model's (``evaluation_defaults``: the examples of the
    likelihood, the sample count, sampler options, its family's settings), each
    overridden by an argument that is not None: `num_samples` and
    `nll_examples` (the first examples of `split` the likelihood averages
    over), and `iwae_samples` and `iwae_examples` for a model that declares them (the VAEs'
    importance-weighted bound), and `probability_flow_examples` (0: none) and
    `probability_flow_steps` (a diffusion model's probability-flow NLL); the
    others ignore those.

    Every model gets its loss terms (``model.evaluate``, ``loss_terms``); a model
    with a likelihood also gets ``nll_nats`` and ``bits_per_dim`` with
    ``likelihood`` and ``bound`` saying what the number is
    (:func:`zoo.metrics.evaluate_likelihood`). Every model also gets
    ``sample_quality`` from ``num_samples`` samples against `split`: for 2-D
    points the points' distances and the dataset's own measures
    (:func:`zoo.datasets.point_measures`;
    :func:`zoo.metrics.sample_quality.evaluate_points`), for images FID, KID,
    precision and recall in the features of `features` (None: the zoo's network
    of the dataset, where it ships one; or a Keras model or ``.keras`` path;
    :func:`zoo.metrics.sample_quality.evaluate_images`). Then come the model's
    own metrics and pictures (``extra_metrics``: a VAE's ``importance_weighted``
    bound, ``active_units`` and ``pictures`` under ``RUN/evaluation/``).

    ``model``, ``checkpoint`` and ``checkpoint_sha256`` say what was measured
    (:func:`metrics_mismatch`). `loaded` is what :func:`load_checkpoint` returned
    for this run, if the caller loaded it already. Each stage shows its progress
    (:mod:`zoo.progress`); the numbers also go to TensorBoard, at the evaluated
    epoch (:func:`write_evaluation_summaries`).

    Returns:
        ``(path, metrics)``.
    Raises:
        NonFiniteError: a metric is NaN or Inf; ``metrics.json`` is left as it was.
        RunError: the feature network cannot score this run's images, or the
            model's ``evaluation_defaults`` are not what is expected.
    """
    from zoo import progress

    with progress.task("evaluate"):
        return _evaluate_run(run_dir, split, batch_size, data_dir, seed, num_samples,
                             features, loaded, nll_examples=nll_examples,
                             iwae_samples=iwae_samples,
                             iwae_examples=iwae_examples,
                             probability_flow_examples=probability_flow_examples,
                             probability_flow_steps=probability_flow_steps)


class _BatchProgress(keras.callbacks.Callback):
    """Counts the batches of ``model.evaluate`` into a progress stage (one call
    per execution, which may run several)."""

    def __init__(self, stage):
        super().__init__()
        self.stage = stage

    def on_test_batch_end(self, batch, logs=None):
        self.stage.update(batch + 1 - self.stage.done)


def _evaluate_run(run_dir, split, batch_size, data_dir, seed, num_samples, features,
                  loaded, **overrides):
    from zoo import datasets, progress
    from zoo.metrics import NonFiniteMetricError, evaluate_likelihood
    from zoo.metrics import features as feature_networks
    from zoo.metrics import sample_quality

    model, run, checkpoint = loaded or load_checkpoint(run_dir)
    settings = evaluation_settings(model, run, num_samples=num_samples, **overrides)
    network = None
    shipped = run["dataset"] in feature_networks.ARCHITECTURES
    if model.data_kind == "images" and (features is not None or shipped):
        try:
            network = feature_networks.get(features, run["dataset"])
        except feature_networks.FeatureError as e:
            raise RunError(str(e)) from None
    elif model.data_kind == "images":
        log.warning("no feature network for %r: no FID/KID/precision/recall (pass "
                    "--features model.keras)", run["dataset"])
    batch_size = batch_size or run["training"]["batch_size"]
    data = datasets.load(run["dataset"], split, batch_size, shuffle=False, data_dir=data_dir)
    keras.utils.set_random_seed(seed)
    batches = int(data.cardinality())
    with progress.stage("loss terms", batches if batches >= 0 else None, "batches") as stage:
        terms = {k: float(v) for k, v in model.evaluate(
            data, return_dict=True, verbose=0, callbacks=[_BatchProgress(stage)]).items()}
    bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteError(f"evaluating {checkpoint.path} gave non-finite loss terms {bad}: "
                             "the checkpoint's weights have diverged; metrics.json is "
                             "unchanged")
    metrics = {
        "model": run["model"],
        "dataset": run["dataset"],
        "split": split,
        "epoch": checkpoint.epoch,
        "checkpoint": os.path.join(CHECKPOINTS, checkpoint.file),
        "checkpoint_sha256": checkpoint_digest(checkpoint),
        "loss_terms": terms,
    }
    num_samples, options = settings["num_samples"], settings["sample_options"]
    try:
        if model.likelihood != "none":
            size = datasets.INFOS[run["dataset"]].splits.get(split) \
                if run["dataset"] in datasets.INFOS else None
            metrics.update(evaluate_likelihood(model, data, seed=seed,
                                               max_examples=settings["nll_examples"],
                                               num_examples=size))
        if network is not None:
            real, _ = datasets.arrays(run["dataset"], split, data_dir)
            metrics["sample_quality"] = sample_quality.evaluate_images(
                model, real, network, num_samples, seed, options=options)
        elif model.data_kind == "points":
            real, _ = datasets.arrays(run["dataset"], split, data_dir)
            metrics["sample_quality"] = sample_quality.evaluate_points(
                model, real, num_samples, seed, options=options,
                **datasets.point_measures(run["dataset"]))
        if model.evaluation_labels:
            data = datasets.load(run["dataset"], split, batch_size, shuffle=False,
                                 data_dir=data_dir, with_labels=True)
        metrics.update(model.extra_metrics(data, settings, seed=seed, batch_size=batch_size,
                                           run_dir=run_dir))
    except NonFiniteMetricError as e:
        raise NonFiniteError(f"{e}; metrics.json is unchanged") from None
    except (ValueError, feature_networks.FeatureError) as e:
        raise RunError(f"{run_dir}: {e}") from None
    except tf.errors.InvalidArgumentError as e:
        # A model's input check, failed inside a traced function (data the model
        # does not take: points outside an energy model's grid): its message.
        found = re.search(r"assertion failed: \[(.*)\]$", e.message, re.M)
        if found is None:
            raise
        raise RunError(f"{run_dir}: {found.group(1)}".replace("\\'", "'")) from None
    path = write_json(os.path.join(os.fspath(run_dir), METRICS_FILE), metrics)
    write_evaluation_summaries(run_dir, metrics)
    return path, metrics


EVALUATION_RUN = "evaluation"  # the TensorBoard run (under logs/) of `zoo evaluate`


def headline_numbers(metrics, prefix=""):
    """The numbers of ``metrics.json`` as ``{tag: float}``, nested entries joined
    with "/" (``bits_per_dim``, ``sample_quality/fid``,
    ``importance_weighted/nll_nats``, ``loss_terms/loss``): every int or float
    but the epoch; strings, booleans and lists are left out."""
    numbers = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            numbers.update(headline_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not (prefix == "" and key == "epoch"):
            numbers[prefix + key] = float(value)
    return numbers


def write_evaluation_summaries(run_dir, metrics):
    """Writes `metrics` (:func:`headline_numbers`) as TensorBoard scalars to
    ``RUN/logs/evaluation/`` at the evaluated epoch's step (the epoch counted
    from 0, the step of that epoch's training scalars). Each evaluation adds an
    event file; a run evaluated twice at one epoch shows the latest numbers."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(os.fspath(run_dir), LOGS,
                                                        EVALUATION_RUN))
    with writer.as_default():
        for tag, value in headline_numbers(metrics).items():
            tf.summary.scalar(tag, value, step=max(0, metrics["epoch"] - 1))
    writer.close()


def evaluation_settings(model, run, **overrides):
    """The model's ``evaluation_defaults()``, each overridden by a value of
    `overrides` that is not None (``num_samples`` always; any other only where the
    model declares it), its ``sample_options`` checked as ``zoo sample`` checks
    them (:func:`check_sample_options`).

    Raises:
        RunError: the defaults lack a setting every model has, or hold a value
            that is not what it should be.
    """
    defaults = model.evaluation_defaults()
    where = f"model {run['model']!r}: evaluation_defaults()"
    if not isinstance(defaults, dict):
        raise RunError(f"{where}: expected a dict, got {defaults!r}")
    missing = [k for k in ("nll_examples", "num_samples", "sample_options") if k not in defaults]
    if missing:
        raise RunError(f"{where} lacks {', '.join(missing)}: expected them beside its own "
                       "settings (start from super().evaluation_defaults())")
    settings = dict(defaults)
    for name, value in overrides.items():
        if value is not None and (name == "num_samples" or name in defaults):
            settings[name] = value
    for name in ("nll_examples", "num_samples"):
        validation.check_int(settings[name], name, where, none=name == "nll_examples",
                             error=RunError)
    if not isinstance(settings["sample_options"], dict):
        raise RunError(f"{where}: expected sample_options to be a dict (name -> value), "
                       f"got {settings['sample_options']!r}")
    settings["sample_options"] = check_sample_options(model, run, settings["sample_options"])
    return settings


def sample_run(run_dir, n, seed=0, out=None, npy=None, data_dir=None, batch_size=1000,
               picture_limit=None, options=None, prompt=None):
    """Draws `n` samples of a run's last good checkpoint in batches of at most
    `batch_size`, with the sampler `options` (name -> value, of the model's
    ``sample_options``); writes one picture of the first ones
    (``plotting.save_picture``: a PNG, or a .txt for a model of text) and, if `npy`
    is given, all of them as a ``.npy`` array (written as they come, so memory
    stays bounded). With a `prompt` (a string, for a model of text) each sample is
    its continuation (:func:`prompt_symbols`; ``complete`` with the prompt kept).
    Returns the paths written. Drawing more than one batch shows its progress
    (:mod:`zoo.progress`).

    Raises:
        RunError: an option the model does not declare, or a value it refuses
            (checked as the exported ``sample`` signature checks it), an `out`
            of another kind than the model's pictures, a prompt it cannot take;
            nothing is written then.
    """
    from zoo import plotting, progress

    model, run, _ = load_checkpoint(run_dir)
    options = check_sample_options(model, run, options or {})
    suffix = plotting.picture_suffix(model)
    if out is not None and not os.fspath(out).lower().endswith(suffix):
        raise RunError(f"--out: the samples of this run's model ({model.data_kind}) are "
                       f"written as {suffix}; expected a {suffix} file path, got {out!r}")
    out = out or os.path.join(os.fspath(run_dir), SAMPLES, f"sample{suffix}")
    if prompt is not None:
        batches = prompt_batches(model, prompt_symbols(model, prompt), n, seed, batch_size,
                                 options)
    else:
        batches = model.sample_batches(n, seed, batch_size, **options)
    limit = picture_limit or plotting.picture_limit(model)
    stream = None
    if npy is not None:
        os.makedirs(os.path.dirname(os.path.abspath(npy)), exist_ok=True)
        stream = np.lib.format.open_memmap(npy + ".tmp.npy", mode="w+", dtype=np.float32,
                                           shape=(n,) + model.data_shape)
    shown, start = [], 0
    drawn = n if stream is not None else min(n, -(-limit // batch_size) * batch_size)
    for batch in progress.track(batches, "sample", drawn, "samples", size=len,
                                show=drawn > batch_size):
        if stream is not None:
            stream[start:start + len(batch)] = batch
        start += len(batch)
        if sum(len(s) for s in shown) < limit:
            shown.append(batch)
        if stream is None and sum(len(s) for s in shown) >= limit:
            break  # the picture has its samples: none is drawn beyond them
    written = [plotting.save_picture(model, np.concatenate(shown)[:limit], out,
                                     reference=reference_points(model, run["dataset"],
                                                                data_dir))]
    if stream is not None:
        stream.flush()
        del stream
        os.replace(npy + ".tmp.npy", npy)
        written.append(npy)
    return written


def prompt_symbols(model, prompt):
    """The UTF-8 bytes of the text `prompt` as the symbols a model of text takes
    (float32, shape ``(len,)``).

    Raises:
        RunError: a model that is not of text, a prompt that leaves no room for a
            continuation in the model's context, or bytes outside its vocabulary.
    """
    if model.data_kind != "sequences":
        raise RunError(f"--prompt is for models of text (sequences of symbols); this run's "
                       f"model is of {model.data_kind} of shape {model.data_shape}")
    data = prompt.encode("utf-8")
    context = model.data_shape[0]
    if len(data) >= context:
        raise RunError(f"the prompt is {len(data)} bytes long; expected fewer than the "
                       f"model's context of {context} symbols, to leave room for a "
                       "continuation")
    outside = sorted({b for b in data if b >= model.num_levels})
    if outside:
        raise RunError(f"the prompt holds bytes outside the model's vocabulary of "
                       f"{model.num_levels} symbols ({', '.join(map(str, outside[:10]))}); "
                       f"expected bytes below {model.num_levels}")
    return np.frombuffer(data, np.uint8).astype(np.float32)


def prompt_batches(model, symbols, n, seed, batch_size, options):
    """Yields `n` continuations of the prompt `symbols` as NumPy batches of at most
    `batch_size`: ``model.complete`` with the prompt kept and the rest drawn, batch
    ``i`` from the seed ``[seed, i]``."""
    length = len(symbols)
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        x = np.zeros((count,) + model.data_shape, np.float32)
        x[:, :length] = symbols
        mask = np.zeros_like(x)
        mask[:, :length] = 1.0
        yield np.asarray(model.complete(x, mask, seed=np.array([seed, start // batch_size],
                                                               np.int32), **options))


def interpolate_run(run_dir, a, b, steps=8, spherical=False, out=None, options=None):
    """Writes a strip PNG of a run's model along a path in latent space from
    seed `a` to seed `b` (``model.interpolate``; `spherical`: slerp), with the
    sampler option ``label`` of a class-conditional model; returns its path.

    Raises:
        RunError: a model without latents to interpolate or without pictures,
            a bad endpoint, step count or option; nothing is written then.
    """
    from zoo import plotting

    model, run, _ = load_checkpoint(run_dir)
    if not callable(getattr(model, "interpolate", None)) or model.data_kind != "images":
        raise RunError(f"model {run['model']!r} of this run has no latent interpolation of "
                       f"images (--interpolate)")
    options = dict(options or {})
    label = options.pop("label", None)
    if options:
        raise RunError(f"--interpolate takes the sampler option label only, got "
                       f"{', '.join(sorted(options))}")
    if label is not None:
        label = check_sample_options(model, run, {"label": label})["label"]
        if label < 0:
            raise RunError("--interpolate: expected label >= 0 (one class for the strip), "
                           f"got {label}")
    try:
        images = np.asarray(model.interpolate(a, b, steps, spherical=spherical, label=label))
    except (TypeError, ValueError) as e:
        raise RunError(f"--interpolate: {e}") from None
    name = f"interpolate_{a}_{b}{'_slerp' if spherical else ''}.png"
    out = out or os.path.join(os.fspath(run_dir), SAMPLES, name)
    return plotting.image_grid(images, model.num_levels, out, cols=len(images))


def check_sample_options(model, run, options):
    """`options` (name -> number) checked against the model's ``sample_options``:
    declared names, integers for ``int32`` options, values in their bounds."""
    declared = model.sample_options
    unknown = sorted(set(options) - set(declared))
    if unknown:
        raise RunError(f"model {run['model']!r} of this run has no sampler option "
                       f"{', '.join(map(repr, unknown))}; its options: "
                       + (", ".join(f"{k} ({o.doc})" for k, o in declared.items()) or "none"))
    checked = {}
    for name, value in options.items():
        option = declared[name]
        kind = "an integer" if option.dtype.startswith("int") else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind == "an integer" and not isinstance(value, int)):
            raise RunError(f"sampler option {name}: expected {kind} "
                           f"({option.expected(name)}), got {value!r}")
        try:
            checked[name] = option.check(model, name, value)
        except (TypeError, ValueError) as e:
            raise RunError(f"sampler option {name}: {e}") from None
    return checked


def reference_points(model, dataset, data_dir=None, count=1000):
    """Test points drawn under samples of 2-D points (None for other data)."""
    from zoo import datasets

    if model.data_kind != "points":
        return None
    data = datasets.load(dataset, "test", count, shuffle=False, take=count, data_dir=data_dir)
    return np.asarray(next(iter(data)))


def export_run(run_dir, base="savedmodels", version=None, max_samples=None):
    """Exports a run's last good checkpoint to ``<base>/<model>/<version>/``, its
    ``sample`` signature limited to `max_samples` per call (None: the default of
    :func:`zoo.savedmodels.export.export`)."""
    from zoo import progress, savedmodels
    from zoo.savedmodels.export import VersionExistsError

    model, run, _ = load_checkpoint(run_dir)
    try:
        with progress.task("export"):
            return savedmodels.export(model, os.path.join(os.fspath(base), run["model"]),
                                      version=version, max_samples=max_samples)
    except VersionExistsError as e:
        raise RunError(f"version {e.version} exists already at {e.target!r}; versions are "
                       "immutable for TF Serving: omit --version to export the next one, "
                       "or remove that folder") from None
    except (NotADirectoryError, ValueError) as e:
        raise RunError(str(e)) from None
