"""Run folders: their files, checks on reading them, and what is done with a run.

A run folder holds::

    run.json                      model, dataset, overrides, training settings, seed;
                                  a two-stage model's first stage (run, checkpoint, SHA-256)
    checkpoints/epoch_NNNN.keras  model, optimizer and random-stream state after epoch
                                  NNNN (the last KEEP_CHECKPOINTS epochs are kept)
    checkpoints/latest.json       {"epoch": N, "file": "epoch_NNNN.keras"}: the last good one
    samples/epoch_NNNN.png        samples after each epoch (the same seed every epoch)
    logs/                         TensorBoard logs
    history.json                  one record of loss terms per epoch, across resumes
    metrics.json                  what ``zoo evaluate`` measured, and of which checkpoint
                                  (its file, SHA-256 and model)

Every JSON file is strict JSON, written to a temporary file and renamed into place.
Reading checks each file's shape and names the file and what was expected when it
is wrong. A checkpoint that does not load (truncated, damaged) is passed over for
the newest one that does, with a warning naming it; none is ever deleted here.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import zipfile

import keras
import numpy as np

from zoo import registry

RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
LATEST_FILE = "latest.json"
SAMPLES = "samples"
LOGS = "logs"
CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)\.keras$")
KEEP_CHECKPOINTS = 3  # checkpoints kept per run (about 5 MB each for digits RealNVP)
TRAINING_SETTINGS = {"epochs": int, "batch_size": int, "learning_rate": float,
                     "steps_per_epoch": (int, type(None)), "jit_compile": (bool, str)}

log = logging.getLogger("zoo")


class RunError(Exception):
    """A run cannot be started, resumed or read; the message says why and what to do."""


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


def read_json(path, what):
    """Reads a JSON file, or raises RunError saying which file of a run is bad."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{what} {path} cannot be read: {e}") from None


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
    run = read_json(path, "run settings")
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
                       f"{', '.join(problems)}. Restore the file, or start a new run "
                       "with another --out")
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
    index = read_json(path, "checkpoint index")
    ok = isinstance(index, dict) and _is_int(index.get("epoch")) and index["epoch"] >= 1 \
        and isinstance(index.get("file"), str) and CHECKPOINT_PATTERN.match(index["file"])
    if not ok:
        raise RunError(
            f'checkpoint index {path} is damaged: expected {{"epoch": N, "file": '
            f'"epoch_NNNN.keras"}}, got {json.dumps(index)[:200]}. Delete it to fall back '
            "to the newest checkpoint that loads")
    return Checkpoint(index["epoch"], index["file"],
                      os.path.join(os.fspath(run_dir), CHECKPOINTS, index["file"]))


def read_history(run_dir):
    """The records of ``history.json``, or []."""
    path = os.path.join(os.fspath(run_dir), HISTORY_FILE)
    if not os.path.exists(path):
        return []
    history = read_json(path, "training history")
    if not isinstance(history, list) or not all(
            isinstance(r, dict) and _is_int(r.get("epoch")) for r in history):
        raise RunError(
            f"training history {path} is damaged: expected a list of records "
            f'{{"epoch": N, ...}}, got {json.dumps(history)[:200]}. Restore it, or delete '
            "it to keep only the epochs trained from now on")
    return history


def check_folder(run_dir):
    """The run folder's path, or a RunError if it names a file."""
    run_dir = os.fspath(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"--out {run_dir!r} is a file; expected a run folder (new or existing)")
    return run_dir


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
    from zoo.training import non_finite_weights

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
    :func:`load_checkpoint`), or ``(None, None)`` for a run without checkpoints."""
    run_dir = os.fspath(run_dir)
    index = read_index(run_dir)
    files = checkpoint_files(run_dir)
    if index is None and files:
        log.warning("%s is missing: using the newest checkpoint that loads",
                    os.path.join(run_dir, CHECKPOINTS, LATEST_FILE))
    newest = index.epoch if index else None
    candidates = [Checkpoint(int(CHECKPOINT_PATTERN.match(f).group(1)), f,
                             os.path.join(run_dir, CHECKPOINTS, f)) for f in files]
    candidates = [c for c in candidates if newest is None or c.epoch <= newest][::-1]
    if index is not None and index.file not in files:
        log.warning("%s names %s, which is missing", LATEST_FILE, index.file)
    failures = []
    for candidate in candidates:
        try:
            model = load_model_file(candidate.path)
        except ValueError as e:
            failures.append(str(e))
            continue
        for failure in failures:
            log.warning("%s; using %s (epoch %d) instead", failure, candidate.file,
                        candidate.epoch)
        return model, candidate
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
                 num_samples=10_000, features=None, iwae_samples=1000, iwae_examples=1000,
                 loaded=None):
    """Evaluates a run's last good checkpoint and writes ``RUN/metrics.json``.

    Every model gets its loss terms (``model.evaluate``, ``loss_terms``); a model
    with a likelihood also gets ``nll_nats`` and ``bits_per_dim`` with
    ``likelihood`` and ``bound`` saying what the number is
    (:func:`zoo.metrics.evaluate_likelihood`). Every model also gets
    ``sample_quality`` from `num_samples` samples against `split`: for 2-D
    points the points' distances (:func:`zoo.metrics.sample_quality.evaluate_points`),
    for images FID, KID, precision and recall in the features of `features`
    (None: the zoo's network of the dataset, where it ships one; or a Keras model
    or ``.keras`` path; :func:`zoo.metrics.sample_quality.evaluate_images`).

    A latent-variable model gets more, by what it has: ``importance_weighted``,
    the bound with k = `iwae_samples` over the first `iwae_examples` examples
    (``importance_weighted_bound``); ``active_units`` (``latent_mean``); and the
    pictures ``RUN/evaluation/reconstructions.png`` (each example's row above
    its reconstruction, ``reconstruct``) and ``traversals.png`` (``decode`` along
    each latent dimension), listed under ``pictures``.

    ``model``, ``checkpoint`` and ``checkpoint_sha256`` say what was measured
    (:func:`metrics_mismatch`). `loaded` is what :func:`load_checkpoint` returned
    for this run, if the caller loaded it already.

    Returns:
        ``(path, metrics)``.
    Raises:
        NonFiniteError: a metric is NaN or Inf; ``metrics.json`` is left as it was.
        RunError: the feature network cannot score this run's images.
    """
    from zoo import datasets
    from zoo.datasets import toy
    from zoo.metrics import NonFiniteMetricError, evaluate_likelihood
    from zoo.metrics import features as feature_networks
    from zoo.metrics import latent, sample_quality

    model, run, checkpoint = loaded or load_checkpoint(run_dir)
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
    terms = {k: float(v) for k, v in model.evaluate(data, return_dict=True, verbose=0).items()}
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
    try:
        if model.likelihood != "none":
            metrics.update(evaluate_likelihood(model, data, seed=seed))
        if network is not None:
            real, _ = datasets.arrays(run["dataset"], split, data_dir)
            metrics["sample_quality"] = sample_quality.evaluate_images(
                model, real, network, num_samples, seed)
        elif model.data_kind == "points":
            mixture = {}
            if run["dataset"] == "8gaussians":
                mixture = dict(modes=toy.EIGHT_GAUSSIANS_MODES, std=toy.EIGHT_GAUSSIANS_STD)
            real, _ = datasets.arrays(run["dataset"], split, data_dir)
            metrics["sample_quality"] = sample_quality.evaluate_points(
                model, real, num_samples, seed, **mixture)
        if model.likelihood == "bound" and hasattr(model, "importance_weighted_bound"):
            metrics["importance_weighted"] = latent.evaluate_importance_weighted(
                model, data, num_samples=iwae_samples, max_examples=iwae_examples,
                batch_size=batch_size, seed=seed)
        if hasattr(model, "latent_mean"):
            metrics["active_units"] = latent.active_units(model, data)
        if model.data_kind == "images" and hasattr(model, "reconstruct"):
            metrics["pictures"] = latent_pictures(model, data, run_dir)
    except NonFiniteMetricError as e:
        raise NonFiniteError(f"{e}; metrics.json is unchanged") from None
    except (ValueError, feature_networks.FeatureError) as e:
        raise RunError(f"{run_dir}: {e}") from None
    path = write_json(os.path.join(os.fspath(run_dir), METRICS_FILE), metrics)
    return path, metrics


def latent_pictures(model, data, run_dir, count=16):
    """Writes RUN/evaluation/reconstructions.png (originals in the odd rows, their
    reconstructions below) and, for a model with ``latent_mean`` and ``decode`` of
    vectors, traversals.png; returns {name: path relative to the run}."""
    from zoo import plotting
    from zoo.metrics import latent

    folder = os.path.join(os.fspath(run_dir), "evaluation")
    x = latent.examples(data, count)
    cols = min(8, len(x))
    x = x[:len(x) - len(x) % cols]  # whole rows, so each reconstruction is below its image
    rows = []
    for start in range(0, len(x), cols):
        rows += [x[start:start + cols], np.asarray(model.reconstruct(x[start:start + cols]))]
    paths = {"reconstructions": plotting.image_grid(
        np.concatenate(rows), model.num_levels, os.path.join(folder, "reconstructions.png"),
        cols=cols)}
    if hasattr(model, "latent_mean") and len(model.latent_shape) == 1:
        steps = 9
        paths["traversals"] = plotting.image_grid(
            latent.traversals(model, x, steps=steps), model.num_levels,
            os.path.join(folder, "traversals.png"), cols=steps)
    return {k: os.path.relpath(v, run_dir) for k, v in paths.items()}


def sample_run(run_dir, n, seed=0, out=None, npy=None, data_dir=None, batch_size=1000,
               picture_limit=None, options=None):
    """Draws `n` samples of a run's last good checkpoint in batches of at most
    `batch_size`, with the sampler `options` (name -> value, of the model's
    ``sample_options``); writes one picture of the first ones
    (``plotting.save_picture``) and, if `npy` is given, all of them as a ``.npy``
    array (written as they come, so memory stays bounded). Returns the paths
    written.

    Raises:
        RunError: an option the model does not declare, or a value it refuses
            (checked as the exported ``sample`` signature checks it); nothing is
            written then.
    """
    from zoo import plotting

    model, run, _ = load_checkpoint(run_dir)
    options = check_sample_options(model, run, options or {})
    out = out or os.path.join(os.fspath(run_dir), SAMPLES, "sample.png")
    limit = picture_limit or plotting.picture_limit(model)
    stream = None
    if npy is not None:
        os.makedirs(os.path.dirname(os.path.abspath(npy)), exist_ok=True)
        stream = np.lib.format.open_memmap(npy + ".tmp.npy", mode="w+", dtype=np.float32,
                                           shape=(n,) + model.data_shape)
    shown, start = [], 0
    for batch in model.sample_batches(n, seed, batch_size, **options):
        if stream is not None:
            stream[start:start + len(batch)] = batch
        start += len(batch)
        if sum(len(s) for s in shown) < limit:
            shown.append(batch)
        elif stream is None:
            break
    written = [plotting.save_picture(model, np.concatenate(shown)[:limit], out,
                                     reference=reference_points(model, run["dataset"],
                                                                data_dir))]
    if stream is not None:
        stream.flush()
        del stream
        os.replace(npy + ".tmp.npy", npy)
        written.append(npy)
    return written


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
    from zoo import savedmodels
    from zoo.savedmodels.export import VersionExistsError

    model, run, _ = load_checkpoint(run_dir)
    try:
        return savedmodels.export(model, os.path.join(os.fspath(base), run["model"]),
                                  version=version, max_samples=max_samples)
    except VersionExistsError as e:
        raise RunError(f"version {e.version} exists already at {e.target!r}; versions are "
                       "immutable for TF Serving: omit --version to export the next one, "
                       "or remove that folder") from None
    except (NotADirectoryError, ValueError) as e:
        raise RunError(str(e)) from None
