"""Reusable test helpers.

SavedModel export: :func:`export_models` exports models with
``zoo.savedmodels.export`` and reloads them all in ONE fresh Python process that
cannot import zoo; there every signature is called on good inputs (the numbers are
compared with the Keras model's by :func:`assert_export_matches`) and on bad ones
(:func:`bad_input_probes`: each must give an error naming what was expected, or a
defined result such as an empty batch), and TF Serving's warm-up requests of the
export are run through the TF1 session loader. :func:`export_and_compare` does it
for one.
"""

import json
import os
import subprocess
import sys

import numpy as np

import zoo

# Scalar inputs of the serving signatures: the sample count and the seed (sampler
# options take their declared defaults).
SCALAR_INPUTS = {"n": 3, "seed": 7}
BATCH = 3
RTOL = 1e-5

# Runs in a fresh process: for each job of the JSON file argv[1], loads the
# SavedModel with TF alone (zoo is made unimportable), calls every signature twice
# on the job's inputs, records the outputs, the trainable variables' values,
# serving_default's outputs after every float variable was shifted (to show the
# graph reads the variables rather than constants folded into it), the SignatureDefs'
# default inputs, what each bad-input probe gave (its error's "expected" line, or
# its outputs' shapes), and the outputs of TF Serving's warm-up requests.
FRESH_PROCESS = r"""
import json, os, sys
sys.modules["zoo"] = None
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

def describe(spec):
    return [spec.dtype.name, None if spec.shape.rank is None else spec.shape.as_list()]

def session_run(folder, by_sig):
    # TF Serving's path: the TF1 session loader (the C++ SavedModelBundle's,
    # and saved_model_cli run's), feeding and fetching tensors by SignatureDef name.
    out = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], folder)
        for sig, signature in meta.signature_def.items():
            if sig == "__saved_model_init_op":  # the loader has run it
                continue
            feed = {t.name: np.asarray(by_sig[sig][k], tf.as_dtype(t.dtype).as_numpy_dtype)
                    for k, t in signature.inputs.items()}
            fetches = {k: t.name for k, t in signature.outputs.items()}
            for k, v in session.run(fetches, feed).items():
                out["session/" + sig + "/" + k] = v
    return out

def warmup_run(folder):
    # TF Serving's warm-up: each PredictionLog of assets.extra's TFRecord file run
    # through the session loader as TF Serving runs it, its inputs fed as they are.
    from tensorflow_serving.apis import prediction_log_pb2
    path = os.path.join(folder, "assets.extra", "tf_serving_warmup_requests")
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    out = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], folder)
        for record in records:
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            signature = meta.signature_def[request.model_spec.signature_name]
            feed = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
            fetches = {k: t.name for k, t in signature.outputs.items()}
            for k, v in session.run(fetches, feed).items():
                out["warmup/" + request.model_spec.signature_name + "/" + k] = v
    return out

def call(loaded, sig, feed):
    fn = loaded.signatures[sig]
    _, specs = fn.structured_input_signature
    feed = {k: tf.constant(feed[k], dtype=s.dtype) for k, s in specs.items()}
    return {k: v.numpy() for k, v in fn(**feed).items()}

for job in json.load(open(sys.argv[1])):
    print("JOB " + job["key"], file=sys.stderr, flush=True)  # what follows on stderr is its
    loaded = tf.saved_model.load(job["folder"])
    inputs = dict(np.load(job["inputs"]))
    by_sig = {}
    for key, value in inputs.items():
        sig, name = key.split("/")
        by_sig.setdefault(sig, {})[name] = value
    outputs, report = {}, {"signatures": {}, "deterministic": {}, "probes": {}}
    outputs.update(session_run(job["folder"], by_sig))
    outputs.update(warmup_run(job["folder"]))
    for sig, fn in loaded.signatures.items():
        _, specs = fn.structured_input_signature
        report["signatures"][sig] = {
            "inputs": {k: describe(s) for k, s in specs.items()},
            "outputs": {k: describe(s) for k, s in fn.structured_outputs.items()},
        }
        first, second = call(loaded, sig, by_sig[sig]), call(loaded, sig, by_sig[sig])
        report["deterministic"][sig] = all(
            np.array_equal(first[k], second[k], equal_nan=True) for k in first)
        for k, v in first.items():
            outputs["output/" + sig + "/" + k] = v
    probes = dict(np.load(job["probes"])) if job["probes"] else {}
    for label, probe in job["probe_list"].items():
        feed = {name: probes[label + "/" + name] for name in probe["inputs"]}
        try:
            result = call(loaded, probe["signature"], feed)
            report["probes"][label] = {"shapes": {k: list(v.shape) for k, v in result.items()},
                                       "finite": all(bool(np.all(np.isfinite(v)))
                                                     for v in result.values())}
        except Exception as e:
            lines = [l for l in str(e).splitlines() if "expected" in l]
            report["probes"][label] = {"error": (lines or str(e).splitlines() or [""])[0]}
    variables = list(loaded.trainable_variables)
    report["num_trainable_variables"] = len(variables)
    for i, v in enumerate(variables):
        outputs["variable/%d" % i] = v.numpy()
    for v in loaded.variables:  # all of them: samples may read averaged weights
        if v.dtype.is_floating:
            v.assign_add(tf.fill(tf.shape(v), tf.constant(0.1, v.dtype)))
    for k, v in call(loaded, "serving_default", by_sig["serving_default"]).items():
        outputs["shifted/" + k] = v
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(job["folder"], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    report["defaults"] = {
        name: {k: tf.make_ndarray(v).item() for k, v in sig.defaults.items()}
        for name, sig in proto.meta_graphs[0].signature_def.items()}
    report["zoo_imported"] = bool(sys.modules.get("zoo"))
    np.savez(job["outputs"], **outputs)
    print("REPORT " + json.dumps([job["key"], report]), flush=True)
"""


# The first lines of a fresh process that runs two replicas of MirroredStrategy on
# one CPU (two logical devices, set before TensorFlow starts): `strategy`, and
# json, os, sys, traceback, numpy, tensorflow, keras and zoo imported.
TWO_REPLICAS = r"""
import json, os, sys, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, zoo
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
"""


def raw_batch(model, n=4, seed=0):
    """A batch of raw data in the model's input range: integer levels for images,
    standard normal points otherwise."""
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return rng.standard_normal(shape).astype("float32")
    return rng.integers(0, model.num_levels, shape).astype("float32")


def training_batch(model, n=4, seed=0):
    """What ``fit`` takes for `raw_batch`: the batch, with class labels (cycling
    through the classes) for a class-conditional model."""
    x = raw_batch(model, n, seed)
    classes = getattr(model, "num_classes", 0)
    return (x, np.arange(n) % classes) if classes else x


def integer_ranges(model):
    """{input name: (low, high)}: the integer batched inputs whose range [low, high)
    the model gives itself (``integer_input_ranges``, e.g. code indices)."""
    return dict(getattr(model, "integer_input_ranges", {}))


def integer_range(model, name):
    """[low, high) of the integer batched input `name`: the model's own range for
    it, else class labels [0, num_classes)."""
    return integer_ranges(model).get(name, (0, getattr(model, "num_classes", 0)))


def signature_inputs(model, specs, seed=0):
    """Inputs for one serving signature, as numpy arrays in the order of `specs`.

    Data inputs (named like ``model.data_spec()``, shaped like the data) are
    integer levels in ``[0, num_levels - 1]`` as float32 for images and standard
    normal for continuous data; other float inputs (latents) are standard normal,
    or Dirichlet(1) distributions over the last axis for a model whose
    ``latent_support`` is ``"simplex"`` (one-hot or relaxed categorical codes);
    a completion's ``mask`` is 0s and 1s at random; integer batched inputs are
    class labels in ``[0, num_classes)``, or lie in the
    range ``[low, high)`` the model gives for them in ``integer_input_ranges``
    (code indices); float inputs the model gives a range for in
    ``float_input_ranges`` are uniform in it; int32 scalars ``n`` and ``seed``
    are 3 and 7; options (the sampler's, and completion's own) take their
    defaults. Batches have 3 examples.
    """
    rng = np.random.default_rng(seed)
    data_name = model.data_spec().name
    values = []
    for spec in specs:
        shape = list(spec.shape)
        if not shape:
            options = model.options_of("complete")  # the sampler's, completion's own
            if spec.name in options:
                value = options[spec.name].default
            elif spec.name in SCALAR_INPUTS:
                value = SCALAR_INPUTS[spec.name]
            else:
                raise ValueError(
                    f"signature_inputs: no test value for the scalar input {spec.name!r}; "
                    f"known scalars: {sorted(SCALAR_INPUTS)} (add one to SCALAR_INPUTS)"
                )
            values.append(np.asarray(value, spec.dtype.as_numpy_dtype))
            continue
        if shape[0] is not None:
            raise ValueError(
                f"signature_inputs: input {spec.name!r} has shape {shape}: expected a "
                "batch dimension of size None first"
            )
        if any(d is None for d in shape[1:]):
            raise ValueError(f"signature_inputs: input {spec.name!r} has unknown dims {shape}")
        shape = [BATCH] + shape[1:]
        is_data = spec.name == data_name and tuple(shape[1:]) == model.data_shape
        if spec.name == "mask":  # a completion's: 1 keeps a value, 0 generates it
            value = rng.integers(0, 2, shape)
        elif spec.dtype.is_integer:  # class labels, or the model's own (code indices)
            value = rng.integers(*integer_range(model, spec.name), shape)
        elif is_data and model.num_levels is not None:
            value = rng.integers(0, model.num_levels, shape)
        elif spec.name in getattr(model, "float_input_ranges", {}):  # e.g. low-resolution images
            value = rng.uniform(*model.float_input_ranges[spec.name], shape)
        elif not is_data and getattr(model, "latent_support", "real") == "simplex":
            value = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])  # distributions
        else:
            value = rng.standard_normal(shape)
        values.append(value.astype(spec.dtype.as_numpy_dtype))
    return values


def all_signature_inputs(model, seed=0):
    """{signature: {input name: array}} for every serving signature of `model`."""
    return {
        sig: {spec.name: value for spec, value in zip(specs, signature_inputs(model, specs, seed))}
        for sig, (fn, specs) in model.serving_signatures().items()
    }


def bad_input_probes(model, inputs_by_signature):
    """{label: (signature, {input: array}, expected)} for every signature's bad inputs.

    ``expected`` is a regex the error's "expected" line must match, or ``"empty"``:
    the call succeeds with a leading dimension of 0 in every output. Batched inputs
    get NaN, a wrong size, a wrong rank and an empty batch (and, for raw images,
    values above and below the levels); ``sample`` gets n = 0, n = -1 and each
    option at its bound, ``complete`` each of its ``complete_options``.
    """
    probes = {}
    signatures = model.serving_signatures()
    for sig, (fn, specs) in signatures.items():
        good = inputs_by_signature[sig]

        def probe(label, name, value, expected):
            probes[f"{sig}-{name}-{label}"] = (sig, {**good, name: value}, expected)

        for spec in specs:
            if spec.shape.rank == 0:
                continue
            x = good[spec.name]
            if spec.dtype.is_integer and spec.name in integer_ranges(model):
                low, high = integer_range(model, spec.name)
                probe("out-of-range", spec.name, np.full_like(x, high),
                      rf"expected .*in \[{low}, {high}\)")
            elif spec.dtype.is_integer:  # class labels
                probe("out-of-range", spec.name, np.full_like(x, model.num_classes),
                      r"expected labels: integers of shape \(batch,\) in \[0, ")
            else:
                nan = x.copy()
                nan[0] = np.nan
                probe("nan", spec.name, nan, "expected finite values")
            probe("shape", spec.name, np.zeros((2,) + tuple(d + 1 for d in x.shape[1:]),
                                               x.dtype), "expected .*shape")
            probe("rank", spec.name, x.reshape(len(x), -1, 1) if x.ndim == 2
                  else x.reshape(len(x), -1), "expected .*shape")
            # An empty batch: every batched input of the signature empty at once.
            probes[f"{sig}-{spec.name}-empty"] = (sig, {
                **good, **{s.name: good[s.name][:0] for s in specs if s.shape.rank}}, "empty")
            if spec.name == model.data_spec().name and model.num_levels is not None:
                what = "symbols" if model.data_kind == "sequences" else "raw pixel values"
                probe("above", spec.name, np.full_like(x, 10.0 * model.num_levels),
                      f"expected {what} in")
                probe("below", spec.name, np.full_like(x, -5.0), f"expected {what} in")
        if sig == "sample":
            probe("zero", "n", np.asarray(0, np.int32), "empty")
            probe("negative", "n", np.asarray(-1, np.int32), "expected n >= 0")
        if sig in ("sample", "complete"):
            options = model.sample_options if sig == "sample" else model.complete_options
            for name, option in options.items():
                if option.above is not None:
                    probe("at-bound", name, np.asarray(option.above, option.dtype),
                          f"expected {name} > ")
                if option.below is not None:
                    probe("at-upper-bound", name, np.asarray(option.below, option.dtype),
                          f"expected {name} > .* and {name} < ")
                if option.at_least is not None:
                    probe("under-least", name, np.asarray(option.at_least - 1, option.dtype),
                          f"expected {name} (in|>=) ")
                if option.at_most is not None:
                    probe("over-most", name, np.asarray(option.at_most + 1, option.dtype),
                          f"expected {name} (in|.*<=) ")
    return probes


def keras_outputs(model, inputs_by_signature):
    """{signature: {output name: array}} from the Keras model itself (eager)."""
    out = {}
    for sig, (fn, specs) in model.serving_signatures().items():
        args = [inputs_by_signature[sig][spec.name] for spec in specs]
        out[sig] = {k: np.asarray(v) for k, v in fn(*args).items()}
    return out


def assert_close(actual, expected, what):
    """Equal up to float32 round-off: relative 1e-5 of the output's magnitude."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def export_models(models, path):
    """Exports each model of {key: model} under ``path/key`` and reloads them all in
    one fresh process without zoo; returns {key: Export}."""
    path = os.fspath(path)
    jobs, exports = [], {}
    for key, model in models.items():
        work = os.path.join(path, key)
        os.makedirs(work, exist_ok=True)
        inputs = all_signature_inputs(model)
        first = next(iter(inputs))
        flat = {f"{sig}/{k}": v for sig, d in inputs.items() for k, v in d.items()}
        flat.update({f"serving_default/{k}": v for k, v in inputs[first].items()})
        np.savez(os.path.join(work, "inputs.npz"), **flat)
        probes = bad_input_probes(model, inputs)
        np.savez(os.path.join(work, "probes.npz"),
                 **{f"{label}/{k}": v for label, (_, d, _) in probes.items()
                    for k, v in d.items()})
        name = getattr(type(model), "registry_name", type(model).__name__.lower())
        folder = zoo.savedmodels.export(model, os.path.join(work, name))
        exports[key] = Export(model, folder, inputs, probes)
        jobs.append({"key": key, "folder": folder, "inputs": os.path.join(work, "inputs.npz"),
                     "outputs": os.path.join(work, "outputs.npz"),
                     "probes": os.path.join(work, "probes.npz"),
                     "probe_list": {label: {"signature": sig, "inputs": sorted(d)}
                                    for label, (sig, d, _) in probes.items()}})
    jobs_file = os.path.join(path, "jobs.json")
    with open(jobs_file, "w") as f:
        json.dump(jobs, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, jobs_file], cwd=path, env=env,
                            capture_output=True, text=True, timeout=1200)
    reports = dict(json.loads(line[len("REPORT "):]) for line in result.stdout.splitlines()
                   if line.startswith("REPORT "))
    logs = job_logs(result.stderr)
    for key, export in exports.items():
        export.log = logs.get(key, "")
        if key in reports:
            export.report = reports[key]
            with np.load(os.path.join(path, key, "outputs.npz")) as f:
                export.outputs = {k: f[k] for k in f.files}
        else:
            export.failure = f"fresh process exit {result.returncode}:\n{result.stderr[-4000:]}"
    return exports


def job_logs(stderr):
    """{job key: what the fresh process wrote to stderr while it ran that job}."""
    logs, key = {}, None
    for line in stderr.splitlines(keepends=True):
        if line.startswith("JOB "):
            key = line[len("JOB "):].strip()
            logs[key] = ""
        elif key is not None:
            logs[key] += line
    return logs


# A grappler pass that gave up on a graph logs this (and leaves the graph
# unoptimised): a TF Serving server would print it at every load.
GRAPPLER_FAILURE = "meta_optimizer.cc"


class Export:
    """One model's export and what the fresh process saw of it."""

    def __init__(self, model, folder, inputs, probes):
        self.model, self.folder, self.inputs, self.probes = model, folder, inputs, probes
        self.report = self.outputs = None
        self.failure = None
        self.log = ""

    def check(self):
        """Every assertion of :func:`assert_export_matches` and the bad-input probes."""
        assert self.failure is None, self.failure
        failed = [line for line in self.log.splitlines() if GRAPPLER_FAILURE in line]
        assert not failed, f"grappler failed on the exported graphs: {failed[:2]}"
        assert_export_matches(self.model, self.inputs, self.folder, self.outputs, self.report)
        assert_probes(self.probes, self.report["probes"])
        return self.folder, self.outputs, self.report


def assert_probes(probes, results):
    """Each bad input gave the error its probe expects, or the defined empty result."""
    import re

    for label, (sig, _, expected) in probes.items():
        got = results[label]
        if expected == "empty":
            assert "error" not in got, f"{label}: {got['error']}"
            assert got["shapes"] and all(s[0] == 0 for s in got["shapes"].values()), \
                f"{label}: {got}"
        else:
            assert "error" in got, f"{label}: no error, returned {got}"
            assert re.search(expected, got["error"]), f"{label}: {got['error']!r}"


def assert_export_matches(model, inputs_by_signature, folder, outputs, report):
    """Checks an export as the fresh process saw it.

    Every signature of ``serving_signatures()`` plus ``serving_default`` (the
    first) is in the SavedModel with the same input names, a batch dimension on
    non-scalar inputs and on every output; each returns the Keras model's numbers
    (to float32 round-off) and the same numbers when called twice, both through
    TF2's loader and through the TF1 session loader that TF Serving's C++
    ``SavedModelBundle`` and ``saved_model_cli run`` use; sampler options
    have their defaults in the SignatureDef (for TF Serving); the trainable
    variables are saved as variables with the model's values, and the graph reads
    them; ``zoo.json`` describes the model; the graph holds no XLA cluster (the
    sampler compiles with XLA only when traced with a fixed n, which a signature's
    n is not; TF Serving needs none); TF Serving's warm-up requests run
    (:func:`assert_warmup`).
    """
    with open(os.path.join(folder, "saved_model.pb"), "rb") as f:
        assert b"_XlaMustCompile" not in f.read(), "an XLA-compiled function was exported"
    signatures = model.serving_signatures()
    assert set(inputs_by_signature) == set(signatures), "inputs for every signature"
    expected = keras_outputs(model, inputs_by_signature)
    assert not report["zoo_imported"]
    first = next(iter(signatures))
    assert set(report["signatures"]) == set(signatures) | {"serving_default"}
    assert report["signatures"]["serving_default"] == report["signatures"][first]
    for sig, (fn, specs) in signatures.items():
        described = report["signatures"][sig]
        assert set(described["inputs"]) == {s.name for s in specs}, sig
        for spec in specs:
            dtype, shape = described["inputs"][spec.name]
            assert dtype == spec.dtype.name, (sig, spec.name, dtype)
            assert shape == list(spec.shape), (sig, spec.name, shape)
        assert set(described["outputs"]) == set(expected[sig]), sig
        assert report["deterministic"][sig], f"{sig}: two calls gave different outputs"
        for key, value in expected[sig].items():
            dtype, shape = described["outputs"][key]
            assert shape and shape[0] is None, f"{sig}/{key}: no batch dimension: {shape}"
            actual = outputs[f"output/{sig}/{key}"]
            assert actual.shape[0] == BATCH, f"{sig}/{key}: batch {actual.shape}"
            assert_close(actual, value, f"{sig}/{key}")
    for key, value in expected[first].items():
        assert_close(outputs[f"output/serving_default/{key}"], value, f"serving_default/{key}")
    # The same signatures through the TF1 session loader (TF Serving's path).
    session = {k[len("session/"):]: v for k, v in outputs.items() if k.startswith("session/")}
    assert {k.split("/")[0] for k in session} == set(signatures) | {"serving_default"}
    for sig in set(signatures) | {"serving_default"}:
        for key, value in expected[first if sig == "serving_default" else sig].items():
            assert_close(session[f"{sig}/{key}"], value, f"session loader {sig}/{key}")
    assert report["defaults"]["sample"] == {
        name: option.default for name, option in model.sample_options.items()}
    if "complete" in signatures:
        assert report["defaults"]["complete"] == {
            name: option.default for name, option in model.options_of("complete").items()}

    weights = model.trainable_weights
    assert report["num_trainable_variables"] == len(weights)
    for i, w in enumerate(weights):
        np.testing.assert_array_equal(outputs[f"variable/{i}"], np.asarray(w), err_msg=w.path)
    changed = [
        not np.allclose(outputs[f"shifted/{k}"], v, rtol=RTOL, equal_nan=True)
        for k, v in expected[first].items()
    ]
    assert any(changed), "serving_default ignores the saved variables (constants folded in?)"

    metadata = zoo.savedmodels.read_metadata(folder)
    assert metadata["model"] == getattr(type(model), "registry_name", None)
    assert metadata["config"] == json.loads(json.dumps(model.get_config()))
    assert (metadata["family"], metadata["likelihood"]) == (model.family, model.likelihood)
    assert metadata["serving_default"] == first
    assert metadata["zoo_version"] == zoo.__version__
    assert set(metadata["signatures"]) == set(signatures) | {"serving_default"}
    for sig, (fn, specs) in signatures.items():
        assert list(metadata["signatures"][sig]["inputs"]) == [s.name for s in specs]
        assert set(metadata["signatures"][sig]["outputs"]) == set(expected[sig])
    assert_warmup(model, folder, outputs)


def assert_warmup(model, folder, outputs):
    """TF Serving's warm-up file holds one request per signature, ``serving_default``
    included, for the model folder's name, with every input of the signature: a
    batch of one, ``n`` = 1. Run through the session loader in the fresh process
    (``warmup/`` outputs), each gave the Keras model's outputs on those inputs,
    all finite."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(folder, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    requests = [log.predict_log.request for log in logs]
    signatures = model.serving_signatures()
    first = next(iter(signatures))
    names = [request.model_spec.signature_name for request in requests]
    assert sorted(names) == sorted(set(signatures) | {"serving_default"}), names
    for request, sig in zip(requests, names):
        assert request.model_spec.name == os.path.basename(os.path.dirname(folder)), sig
        fn, specs = signatures[first if sig == "serving_default" else sig]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert set(inputs) == {spec.name for spec in specs}, sig
        for spec in specs:
            value = inputs[spec.name]
            assert value.dtype == spec.dtype.as_numpy_dtype, (sig, spec.name, value.dtype)
            assert value.shape == ((1,) + tuple(spec.shape[1:]) if spec.shape.rank else ()), \
                (sig, spec.name, value.shape)
        if "n" in inputs:
            assert inputs["n"] == 1, sig
        expected = {k: np.asarray(v) for k, v in fn(*[inputs[s.name] for s in specs]).items()}
        got = {k[len(f"warmup/{sig}/"):]: v for k, v in outputs.items()
               if k.startswith(f"warmup/{sig}/")}
        assert set(got) == set(expected), (sig, sorted(got))
        for key, value in expected.items():
            assert np.all(np.isfinite(got[key])), f"warm-up {sig}/{key}: not finite"
            assert_close(got[key], value, f"warm-up {sig}/{key}")


def export_and_compare(model, tmp_path):
    """Exports one model, reloads it in a fresh process and checks it (see
    :meth:`Export.check`); returns (version folder, outputs, report)."""
    return export_models({"model": model}, tmp_path)["model"].check()


def brute_force_log_det(fn, x, use_pfor=None):
    """log|det d fn(x) / dx| per example, from the autodiff Jacobian and slogdet.

    `fn` maps a float32 batch of one example to a tensor of the same size; `x` is
    a batch (any event shape). `use_pfor` vectorises the Jacobian's rows, which
    pays off on large events only; None uses it above 16 dimensions (pass False
    for ops pfor does not support). Raises if a Jacobian is singular.
    """
    import tensorflow as tf

    x = tf.cast(tf.convert_to_tensor(x), tf.float64)
    d = int(np.prod(x.shape[1:]))
    if use_pfor is None:
        use_pfor = d > 16
    out = []
    for row in x:
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(row)
            y = tf.cast(fn(tf.cast(row[None], tf.float32)), tf.float64)
        jac = tape.jacobian(y, row, experimental_use_pfor=use_pfor)
        sign, logdet = np.linalg.slogdet(jac.numpy().reshape(d, d))
        if sign == 0:
            raise AssertionError("brute_force_log_det: the Jacobian is singular")
        out.append(logdet)
    return np.array(out)


def perturb_weights(obj, scale=0.1, seed=0):
    """Adds N(0, scale^2) noise to every trainable weight of a layer or model; returns it.

    Moves weights off their (often zero) initialisation so every path is exercised.
    """
    rng = np.random.default_rng(seed)
    for v in obj.trainable_weights:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))
    return obj


# ------------------------------------------------------------------ TensorBoard
def events(folder):
    """What TensorBoard's own reader finds in one run of event files:
    {tag: (plugin, [(step, value as numpy)])}."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import (
        TENSORS, EventAccumulator)

    accumulator = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
    accumulator.Reload()
    return {tag: (accumulator.SummaryMetadata(tag).plugin_data.plugin_name,
                  [(e.step, tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)])
            for tag in accumulator.Tags()["tensors"]}


def hparams(logs):
    """The hyperparameters the HParams plugin reads from a run's logs/: name -> value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    accumulator = EventAccumulator(str(logs))
    accumulator.Reload()
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    [info] = [metadata.parse_session_start_info_plugin_data(c) for c in content.values()]
    return {name: getattr(value, value.WhichOneof("kind"))
            for name, value in info.hparams.items()}
