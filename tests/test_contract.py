"""The model contract (DESIGN.md), parametrized over every registered model.

Adding a model adds one line to CASES: its name, a dataset preset, and overrides
that make it tiny.
"""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from helpers import export_and_compare, signature_inputs

CASES = [
    ("realnvp", "moons", dict(hidden_units=8, num_couplings=2)),
    ("realnvp", "digits", dict(hidden_units=4, num_blocks=1, couplings_per_scale=1,
                               final_couplings=2)),
    ("nice", "moons", dict(hidden_units=8, num_hidden=1, num_couplings=2)),
    ("nice", "digits", dict(hidden_units=8, num_hidden=1)),
    ("glow", "moons", dict(hidden_units=8, num_steps=2)),
    ("glow", "digits", dict(hidden_units=4, num_steps=1)),
    ("maf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1)),
    ("maf", "digits", dict(num_layers=2, hidden_units=8, num_hidden=1)),
    ("maf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1, batch_norm=True)),
    ("iaf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1)),
    ("iaf", "digits", dict(num_layers=2, hidden_units=8, num_hidden=1)),
    ("planar", "moons", dict(num_layers=2)),
    ("radial", "moons", dict(num_layers=2)),
    ("ffjord", "moons", dict(hidden_units=8, num_hidden=1, num_steps=2)),
    ("nsf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1, num_bins=4)),
    ("nsf", "digits", dict(variant="autoregressive", num_layers=2, hidden_units=8, num_hidden=1,
                           num_bins=4)),
    ("wgan_gp", "moons", dict(hidden_units=8, num_hidden=1, n_critic=2)),
    ("wgan_gp", "digits", dict(latent_dim=4, filters=4, n_critic=2)),
    ("vae", "digits", dict(latent_dim=2, filters=4, hidden_units=8)),
    ("vae", "digits", dict(latent_dim=2, filters=4, hidden_units=8, likelihood="bernoulli")),
]
IDS = [f"{name}-{dataset}" + "".join(f"-{v}" for v in o.values() if isinstance(v, str))
       + "".join(f"-{k}" for k, v in o.items() if v is True) for name, dataset, o in CASES]


def build(name, dataset, overrides):
    return zoo.get(name, dataset=dataset, **overrides)


def fake_batch(model, n=4, seed=0):
    """A batch of raw data in the model's input range."""
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return rng.standard_normal(shape).astype("float32")
    return rng.integers(0, model.num_levels, shape).astype("float32")


def perturb(model, scale=0.05, seed=0):
    """Moves weights off zero initialisations so every gradient path is open."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))


def all_outputs(model, seed=11):
    """Every serving signature's outputs on fixed inputs, as numpy."""
    out = {}
    for sig, (fn, specs) in model.serving_signatures().items():
        for key, value in fn(*signature_inputs(model, specs, seed=seed)).items():
            out[f"{sig}/{key}"] = np.asarray(value)
    return out


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    return request.param


def test_registered_with_presets(case):
    name, dataset, _ = case
    entry = zoo.registry.entry(name)
    assert dataset in entry.presets
    assert entry.family in ("flow", "vae", "gan")
    model = zoo.get(name, dataset=dataset)
    assert isinstance(model, keras.Model)
    assert tuple(model.loss_names) == tuple(entry.losses)


def test_shapes_and_sample_seed(case):
    model = build(*case)
    a = model.sample(3, seed=5).numpy()
    assert a.shape == (3,) + model.data_shape
    np.testing.assert_array_equal(a, model.sample(3, seed=5).numpy())
    assert not np.array_equal(a, model.sample(3, seed=6).numpy())
    terms = model.compute_losses(tf.constant(fake_batch(model)), training=False)
    assert set(terms) == set(model.loss_names)
    for value in terms.values():
        assert value.shape == () and np.isfinite(value.numpy())


def test_gradient_reaches_every_weight(case):
    model = build(*case)
    perturb(model)
    x = tf.constant(fake_batch(model))
    with tf.GradientTape() as tape:
        terms = model.compute_losses(x, training=True)
        total = tf.add_n(list(terms.values()))
    grads = tape.gradient(total, model.trainable_weights)
    for v, g in zip(model.trainable_weights, grads):
        assert g is not None, f"no gradient reaches {v.path}"
        assert np.any(g.numpy() != 0), f"zero gradient for {v.path}"


def test_fit_step_on_tfds_pipeline(case, data_dir):
    name, dataset, overrides = case
    model = build(*case)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    ds = zoo.datasets.load(dataset, "train", batch_size=16, take=64, data_dir=data_dir)
    history = model.fit(ds, epochs=1, verbose=0)
    for key, values in history.history.items():
        assert np.isfinite(values[-1]), key
    result = model.evaluate(zoo.datasets.load(dataset, "test", batch_size=16, take=32,
                                              data_dir=data_dir), verbose=0, return_dict=True)
    assert set(result) == set(model.loss_names)


def test_jit_compiled_fit_step(case):
    model = build(*case)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    ds = tf.data.Dataset.from_tensor_slices(fake_batch(model, 32)).batch(16)
    history = model.fit(ds, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())


def test_config_round_trip(case):
    model = build(*case)
    config = model.get_config()
    json.dumps(config)  # plain values only
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def test_keras_save_reload_equal(case, tmp_path):
    model = build(*case)
    perturb(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    before, after = all_outputs(model), all_outputs(reloaded)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_export_reload_in_fresh_process(case, tmp_path):
    model = build(*case)
    perturb(model)
    export_and_compare(model, tmp_path)


# Runs every case's fit step under MirroredStrategy on two logical CPUs, in one
# fresh process (logical devices must be set before TF initialises), and prints
# one JSON line per case: its last logs, or its error.
MIRRORED = r"""
import os, sys, json, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, keras, zoo
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
for case_id, name, dataset, overrides, batch in json.loads(sys.stdin.read()):
    try:
        with strategy.scope():
            model = zoo.get(name, dataset=dataset, **overrides)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        ds = tf.data.Dataset.from_tensor_slices(np.array(batch, "float32")).batch(8)
        history = model.fit(ds, epochs=1, verbose=0)
        result = {k: v[-1] for k, v in history.history.items()}
    except Exception:
        result = {"error": traceback.format_exc()[-3000:]}
    print("CASE " + json.dumps([case_id, result]), flush=True)
"""


@pytest.fixture(scope="module")
def mirrored_logs():
    """Case id -> the logs of its MirroredStrategy fit step (or {"error": ...})."""
    cases = [[case_id, name, dataset, overrides,
              fake_batch(build(name, dataset, overrides), 16).tolist()]
             for case_id, (name, dataset, overrides) in zip(IDS, CASES)]
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED], input=json.dumps(cases),
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    logs = dict(json.loads(line[5:]) for line in proc.stdout.splitlines()
                if line.startswith("CASE "))
    return logs, proc


def test_mirrored_strategy_step(case, mirrored_logs):
    logs, proc = mirrored_logs
    case_id = IDS[CASES.index(case)]
    assert case_id in logs, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    result = logs[case_id]
    assert "error" not in result, result.get("error")
    model = build(*case)
    assert set(result) == set(model.loss_names)
    assert all(np.isfinite(v) for v in result.values())


def first_data_method(model):
    """The first serving signature that takes data (log_prob, elbo, critic...)."""
    for sig, (fn, specs) in model.serving_signatures().items():
        if len(specs) == 1 and specs[0].shape[1:] == model.data_shape and specs[0].name == "x":
            return sig, fn
    raise AssertionError("no serving signature takes data")


def test_bad_inputs_give_clear_errors(case):
    model = build(*case)
    sig, fn = first_data_method(model)
    good = fake_batch(model, 2)
    fn(good)  # fine
    wrong_shape = np.zeros((2,) + tuple(d + 1 for d in model.data_shape), "float32")
    with pytest.raises(ValueError, match=r"expected shape \(batch,\)"):
        fn(wrong_shape)
    with pytest.raises(ValueError, match=r"expected shape \(batch,\)"):
        fn(good[0])  # no batch dimension
    with pytest.raises(TypeError, match="expected a float"):
        fn(np.full(good.shape, "a"))
    nan = good.copy()
    nan[0, ...] = np.nan
    with pytest.raises(ValueError, match="expected finite values"):
        fn(nan)
    if model.num_levels is not None:
        with pytest.raises(ValueError, match="expected raw pixel values"):
            fn(good + 10 * model.num_levels)
    with pytest.raises(ValueError, match="expected n >= 1"):
        model.sample(0, seed=0)
    if "temperature" in inspect.signature(model.sample).parameters:
        for t in (0.0, -1.0):
            with pytest.raises(ValueError, match="expected temperature > 0"):
                model.sample(2, seed=0, temperature=t)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'realnpv'.*Did you mean"):
        zoo.get("realnpv")
    with pytest.raises(ValueError, match="no preset for dataset 'cifar10'"):
        zoo.get("realnvp", dataset="cifar10")
