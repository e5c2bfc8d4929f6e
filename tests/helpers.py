"""Reusable test helpers.

SavedModel export: :func:`export_and_compare` exports a model with
``zoo.savedmodels.export``, reloads it in a fresh Python process that cannot import
zoo, calls every signature there and checks the numbers against the Keras model's.
"""

import json
import os
import subprocess
import sys

import numpy as np

import zoo

# Scalar inputs of the serving signatures: the sample count and the seed.
SCALAR_INPUTS = {"n": 3, "seed": 7}
BATCH = 3
RTOL = 1e-5

# Runs in a fresh process: loads the SavedModel with TF alone (zoo is made
# unimportable), calls every signature twice on the inputs of <inputs.npz>, and
# writes the outputs to <outputs.npz>, with the trainable variables' values and
# serving_default's outputs after the variables were shifted (to show the graph
# reads the variables rather than constants folded into it).
FRESH_PROCESS = r"""
import json, os, sys
sys.modules["zoo"] = None
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

folder, inputs_file, outputs_file = sys.argv[1:4]
loaded = tf.saved_model.load(folder)
inputs = dict(np.load(inputs_file))
outputs, report = {}, {"signatures": {}, "deterministic": {}}

def describe(spec):
    return [spec.dtype.name, None if spec.shape.rank is None else spec.shape.as_list()]

def call(sig):
    fn = loaded.signatures[sig]
    _, specs = fn.structured_input_signature
    feed = {k: tf.constant(inputs[sig + "/" + k], dtype=s.dtype) for k, s in specs.items()}
    return {k: v.numpy() for k, v in fn(**feed).items()}

for sig, fn in loaded.signatures.items():
    _, specs = fn.structured_input_signature
    report["signatures"][sig] = {
        "inputs": {k: describe(s) for k, s in specs.items()},
        "outputs": {k: describe(s) for k, s in fn.structured_outputs.items()},
    }
    first, second = call(sig), call(sig)
    report["deterministic"][sig] = all(
        np.array_equal(first[k], second[k], equal_nan=True) for k in first)
    for k, v in first.items():
        outputs["output/" + sig + "/" + k] = v

variables = list(loaded.trainable_variables)
report["num_trainable_variables"] = len(variables)
for i, v in enumerate(variables):
    outputs["variable/%d" % i] = v.numpy()
for v in variables:
    v.assign_add(tf.fill(tf.shape(v), tf.constant(0.1, v.dtype)))
for k, v in call("serving_default").items():
    outputs["shifted/" + k] = v
report["zoo_imported"] = bool(sys.modules.get("zoo"))
np.savez(outputs_file, **outputs)
print("REPORT " + json.dumps(report))
"""


def signature_inputs(model, specs, seed=0):
    """Inputs for one serving signature, as numpy arrays in the order of `specs`.

    Data inputs (named like ``model.data_spec()``, shaped like the data) are
    integer levels in ``[0, num_levels - 1]`` as float32 for images and standard
    normal for continuous data; other float inputs (latents) are standard normal;
    int32 scalars ``n`` and ``seed`` are 3 and 7. Batches have 3 examples.
    """
    rng = np.random.default_rng(seed)
    data_name = model.data_spec().name
    values = []
    for spec in specs:
        shape = list(spec.shape)
        if not shape:
            if spec.name not in SCALAR_INPUTS:
                raise ValueError(
                    f"signature_inputs: no test value for the scalar input {spec.name!r}; "
                    f"known scalars: {sorted(SCALAR_INPUTS)} (add one to SCALAR_INPUTS)"
                )
            values.append(np.asarray(SCALAR_INPUTS[spec.name], spec.dtype.as_numpy_dtype))
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
        if is_data and model.num_levels is not None:
            value = rng.integers(0, model.num_levels, shape)
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


def run_fresh(folder, inputs_by_signature, work_dir):
    """Loads `folder` in a fresh process without zoo; returns (outputs, report)."""
    first = next(iter(inputs_by_signature))
    flat = {f"{sig}/{k}": v for sig, d in inputs_by_signature.items() for k, v in d.items()}
    flat.update({f"serving_default/{k}": v for k, v in inputs_by_signature[first].items()})
    inputs_file = os.path.join(work_dir, "inputs.npz")
    outputs_file = os.path.join(work_dir, "outputs.npz")
    np.savez(inputs_file, **flat)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, folder, inputs_file, outputs_file],
        cwd=work_dir, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"fresh process failed:\n{result.stderr[-4000:]}"
    report = next(
        json.loads(line[len("REPORT "):])
        for line in result.stdout.splitlines() if line.startswith("REPORT ")
    )
    with np.load(outputs_file) as f:
        outputs = {k: f[k] for k in f.files}
    return outputs, report


def assert_export_matches(model, inputs_by_signature, path):
    """Exports `model` under `path`, reloads it in a fresh process and compares.

    Checks: every signature of ``serving_signatures()`` plus ``serving_default``
    (the first) is in the SavedModel with the same input names, a batch
    dimension on non-scalar inputs and on every output; each returns the Keras
    model's numbers on `inputs_by_signature` (to float32 round-off) and the same
    numbers when called twice; the trainable variables are saved as variables
    with the model's values, and the graph reads them; ``zoo.json`` describes
    the model.

    Args:
        model: a zoo model.
        inputs_by_signature: {signature name: {input name: numpy array}}.
        path: a folder to export into (the model folder is ``path/<registry name>``).
    Returns:
        (version folder, fresh-process outputs, fresh-process report).
    """
    signatures = model.serving_signatures()
    assert set(inputs_by_signature) == set(signatures), "inputs for every signature"
    expected = keras_outputs(model, inputs_by_signature)
    name = getattr(type(model), "registry_name", type(model).__name__.lower())
    folder = zoo.savedmodels.export(model, os.path.join(os.fspath(path), name))
    outputs, report = run_fresh(folder, inputs_by_signature, os.fspath(path))

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
    assert metadata["serving_default"] == first
    assert metadata["zoo_version"] == zoo.__version__
    assert set(metadata["signatures"]) == set(signatures) | {"serving_default"}
    for sig, (fn, specs) in signatures.items():
        assert list(metadata["signatures"][sig]["inputs"]) == [s.name for s in specs]
        assert set(metadata["signatures"][sig]["outputs"]) == set(expected[sig])
    return folder, outputs, report


def export_and_compare(model, tmp_path, seed=0):
    """:func:`assert_export_matches` on generated inputs (see :func:`signature_inputs`)."""
    return assert_export_matches(model, all_signature_inputs(model, seed), tmp_path)


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
