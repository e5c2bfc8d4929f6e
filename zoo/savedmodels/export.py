"""SavedModel export in TF Serving's layout, and reload.

A model folder such as ``savedmodels/realnvp`` holds one SavedModel per integer
version, ``savedmodels/realnvp/<version>/``, which is the layout
``tensorflow_model_server`` watches. Each version has one signature per entry of
``model.serving_signatures()`` (the first one also as ``serving_default``), and
``assets.extra/zoo.json`` (a folder TF Serving does not read) describing the
model: registry name, config, signatures, ``max_samples``, versions of zoo, TF and
Keras. Beside it, ``assets.extra/tf_serving_warmup_requests`` holds one small
request per signature, which TF Serving runs when it loads the version
(``zoo.savedmodels.warmup``).

The ``sample`` signature refuses ``n`` above the export's ``max_samples`` (by
default as many as fit in :data:`SAMPLE_BYTES` of float32 output), so one request
cannot allocate until the server runs out of memory.
"""

import inspect
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from zoo.savedmodels.warmup import write_warmup_requests

METADATA = os.path.join("assets.extra", "zoo.json")
SAVED_MODEL_FILE = "saved_model.pb"
SAMPLE_BYTES = 256 * 2**20  # the default max_samples: one call's samples in 256 MiB
INT32_MAX = 2**31 - 1


def _version_folders(path):
    """Integer version -> folder, for the version folders holding a SavedModel."""
    versions = {}
    if not os.path.isdir(path):
        return versions
    for name in os.listdir(path):
        folder = os.path.join(path, name)
        if name.isdigit() and os.path.isfile(os.path.join(folder, SAVED_MODEL_FILE)):
            versions[int(name)] = folder
    return versions


def latest_version(path):
    """The largest version exported under the model folder `path`, or None.

    Args:
        path: a model folder such as ``savedmodels/realnvp``.
    Returns:
        An int, or None when `path` holds no version folder with a SavedModel.
    """
    versions = _version_folders(path)
    return max(versions) if versions else None


class VersionExistsError(FileExistsError):
    """The version folder exists already (TF Serving's versions are immutable)."""

    def __init__(self, message, version, target):
        super().__init__(message)
        self.version = version
        self.target = target


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(
            f"export: expected version to be a positive integer (TF Serving's "
            f"version folders are integers) or None for the next one, got {version!r}"
        )
    return int(version)


def default_max_samples(model):
    """The samples of `model` whose float32 values fill :data:`SAMPLE_BYTES` (at
    least 1): 33,554,432 points in 2-D, 1,048,576 digits, 85,598 Fashion-MNIST images."""
    size = int(np.prod(model.data_shape)) * 4
    return int(min(max(1, SAMPLE_BYTES // size), INT32_MAX))


def _check_max_samples(max_samples):
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
            or not 1 <= max_samples <= INT32_MAX:
        raise ValueError(f"export: expected max_samples to be an integer in [1, {INT32_MAX}] "
                         f"or None for the default, got {max_samples!r}")
    return int(max_samples)


def _limited(sample, max_samples):
    """The ``sample`` signature's function, refusing ``n > max_samples`` in the graph
    (with the same Python signature, so the SignatureDef keeps its defaults)."""
    def limited(n, seed, *values):
        ok = tf.less_equal(tf.cast(n, tf.int64), max_samples)
        message = (f"sample: expected n <= {max_samples} (max_samples of this export; "
                   "ask for fewer per request, or export with a larger --max-samples), got n =")
        with tf.control_dependencies([tf.debugging.Assert(ok, [message, n])]):
            n = tf.identity(n)
        return sample(n, seed, *values)

    limited.__signature__ = inspect.signature(sample)
    return limited


def _jsonable(value):
    """Fallback for json.dumps: numpy scalars and arrays, tuples, dtypes."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tf.dtypes.DType):
        return value.name
    return repr(value)


def _spec_json(spec):
    return {"dtype": spec.dtype.name,
            "shape": [None if d is None else int(d) for d in spec.shape]}


def _signature_json(specs, concrete):
    """{"inputs": {name: spec}, "outputs": {name: spec}}; inputs in argument order."""
    return {
        "inputs": {spec.name: _spec_json(spec) for spec in specs},
        "outputs": {k: _spec_json(v) for k, v in sorted(concrete.structured_outputs.items())},
    }


def _check_signatures(model, signatures):
    if not isinstance(signatures, dict) or not signatures:
        raise ValueError(
            f"export: expected {type(model).__name__}.serving_signatures() to return "
            f"a non-empty dict name -> (function, [tf.TensorSpec]), got {signatures!r}"
        )
    for name, entry in signatures.items():
        if name == "serving_default":
            raise ValueError(
                "export: 'serving_default' is added by export (it is the first "
                "signature); do not list it in serving_signatures()"
            )
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and callable(entry[0])):
            raise ValueError(
                f"export: signature {name!r}: expected (function, [tf.TensorSpec]), "
                f"got {entry!r}"
            )
        for spec in entry[1]:
            if not isinstance(spec, tf.TensorSpec) or not spec.name:
                raise ValueError(
                    f"export: signature {name!r}: expected named tf.TensorSpec inputs "
                    f"(the names are the request's input names), got {spec!r}"
                )


def export(model, path, version=None, max_samples=None):
    """Writes `model` as a SavedModel to ``path/<version>/`` for TF Serving.

    The signatures are ``model.serving_signatures()`` (name -> (function,
    input TensorSpecs), functions returning dicts of named tensors); the first
    one is also ``serving_default``. Data inputs and outputs have a batch
    dimension; ``sample`` takes int32 scalars ``n`` and ``seed`` (call it with
    TF Serving's columnar request format, ``{"inputs": {"n": 4, "seed": 0}}``)
    and refuses ``n`` above `max_samples`, which ``zoo.json`` records.
    ``assets.extra/`` holds ``zoo.json`` and TF Serving's warm-up requests (one
    small request per signature, see ``zoo.savedmodels.warmup``). The version is
    written to a hidden temporary folder first and renamed into place, so a
    running server never sees half a version. Tracing (per signature) and
    writing (the SavedModel, ``zoo.json``, the warm-up requests) show their
    progress (:mod:`zoo.progress`).

    Args:
        model: a built zoo model (a ``keras.Model`` with ``serving_signatures``).
        path: the model's folder, e.g. ``savedmodels/realnvp``; created if needed.
        version: a positive int, or None for one more than the largest existing
            version (1 for the first).
        max_samples: the most samples one ``sample`` call may ask for; None for
            :func:`default_max_samples` (its output within :data:`SAMPLE_BYTES`).
    Returns:
        The version folder written, as a string.
    Raises:
        FileExistsError: if ``path/<version>`` exists already.
    """
    if not hasattr(model, "serving_signatures"):
        raise TypeError(
            f"export: expected a zoo model with serving_signatures(), got "
            f"{type(model).__name__}"
        )
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"export: expected a model folder, but {path!r} is a file")
    if version is None:
        # Any integer folder counts, even one without a SavedModel: never reuse it.
        taken = [int(n) for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
        version = max(taken, default=0) + 1
    version = _check_version(version)
    max_samples = default_max_samples(model) if max_samples is None else \
        _check_max_samples(max_samples)
    target = os.path.join(path, str(version))
    if os.path.exists(target):
        raise VersionExistsError(
            f"export: version {version} exists already at {target!r}; versions are "
            f"immutable for TF Serving. Pass version=None for the next version "
            f"or remove that folder.", version, target)

    signatures = model.serving_signatures()
    _check_signatures(model, signatures)
    if "sample" in signatures:
        fn, specs = signatures["sample"]
        signatures = {**signatures, "sample": (_limited(fn, max_samples), specs)}
    from zoo import progress

    archive = keras.export.ExportArchive()
    archive.track(model)
    functions = {}
    with progress.stage("tracing", len(signatures), "signatures") as stage:
        for name, (fn, specs) in signatures.items():
            functions[name] = archive.add_endpoint(name, fn, list(specs))
            functions[name].get_concrete_function()  # traced here, not in write_out
            stage.update()

    os.makedirs(path, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".export-{version}-", dir=path)
    # mkdtemp makes the folder private (0700); a version folder is read by TF
    # Serving, often as another user, so it gets the umask's usual mode.
    os.chmod(staging, 0o777 & ~_umask())
    try:
        with progress.stage("writing", 3, "files") as stage:  # SavedModel, zoo.json, warm-up
            archive.write_out(staging, verbose=False)
            stage.update()
            concrete = {name: fn.get_concrete_function() for name, fn in functions.items()}
            _write_metadata(model, staging, version, signatures, concrete, max_samples)
            stage.update()
            write_warmup_requests(model, staging, os.path.basename(os.path.abspath(path)),
                                  signatures)
            stage.update()
        if os.path.exists(target):
            raise VersionExistsError(f"export: version folder {target!r} appeared during "
                                     "export", version, target)
        os.rename(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return target


def _write_metadata(model, folder, version, signatures, concrete, max_samples):
    import zoo

    first = next(iter(signatures))
    described = {name: _signature_json(signatures[name][1], fn) for name, fn in concrete.items()}
    metadata = {
        "model": getattr(type(model), "registry_name", None),
        "family": model.family,
        "likelihood": model.likelihood,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": model.get_config(),
        "version": version,
        "serving_default": first,
        "signatures": {"serving_default": described[first], **described},
        "sample_options": _options_json(model.sample_options),
        # the options the complete signature takes beside the sampler's
        "complete_options": _options_json(model.complete_options if model.can_complete
                                          else {}),
        "max_samples": max_samples,
        "num_parameters": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        "zoo_version": zoo.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    os.makedirs(os.path.join(folder, "assets.extra"), exist_ok=True)
    with open(os.path.join(folder, METADATA), "w") as f:
        json.dump(metadata, f, indent=2, default=_jsonable)
        f.write("\n")


def _options_json(options):
    return {name: {"default": option.default, "dtype": option.dtype, "above": option.above,
                   "below": option.below, "at_least": option.at_least,
                   "at_most": option.at_most, "doc": option.doc}
            for name, option in options.items()}


def resolve(path):
    """The SavedModel folder of `path`: itself, or its latest version folder."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    version = latest_version(path)
    if version is None:
        raise FileNotFoundError(
            f"expected a SavedModel folder or a model folder with integer version "
            f"folders (savedmodels/<model>/<version>/saved_model.pb), got {path!r}"
        )
    return os.path.join(path, str(version))


def load(path):
    """Loads an exported version with ``tf.saved_model.load``.

    Args:
        path: a version folder (``savedmodels/realnvp/3``) or a model folder
            (``savedmodels/realnvp``: its latest version).
    Returns:
        The loaded object; call ``obj.signatures[name](**inputs)``, which returns
        a dict of named tensors. zoo need not be importable to load it.
    """
    return tf.saved_model.load(resolve(path))


def read_metadata(path):
    """The ``zoo.json`` of a version folder (or of a model folder's latest version)."""
    with open(os.path.join(resolve(path), METADATA)) as f:
        return json.load(f)
