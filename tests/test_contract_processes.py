"""The model contract's checks that need a fresh process, one process each for all
cases: the SavedModel reloaded without zoo (bad inputs through every signature
included), the ``.keras`` file reloaded after ``import zoo`` alone, and a fit step
under MirroredStrategy. A file of its own, so that pytest-xdist (one file per
worker at a time) runs it beside test_contract.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import (TWO_REPLICAS, all_signature_inputs, export_and_compare, export_models,
                     raw_batch)
from test_contract import (CASES, PRIMARY, SLOW_CASES, USER_MODELS, all_outputs, assert_case_ids,
                           build, case_id, perturb)


# Loads every primary case's .keras file in one fresh process that imports only zoo,
# keras and the user's model module (tests/user_models, as `zoo train --import` has a
# run record it) (safe mode on, then off) and prints each one's outputs on the inputs
# saved beside it, or its error.
KERAS_RELOAD = r"""
import json, sys, traceback
import numpy as np
import zoo, keras
sys.path.insert(0, sys.argv[1])
import my_models
for key, path in json.loads(sys.stdin.read()):
    try:
        unsafe = keras.saving.load_model(path, safe_mode=False)
        model = keras.saving.load_model(path)  # safe mode
        inputs = np.load(path + ".npz")
        out = {}
        for sig, (fn, specs) in model.serving_signatures().items():
            args = [inputs[sig + "/" + s.name] for s in specs]
            out.update({sig + "/" + k: np.asarray(v).tolist() for k, v in fn(*args).items()})
        results = {"outputs": out, "classes": [type(unsafe).__name__, type(model).__name__],
                   "rng_state": model.rng.state.numpy().tolist()}
        print("CASE " + json.dumps([key, results]), flush=True)
    except Exception:
        print("CASE " + json.dumps([key, {"error": traceback.format_exc()[-3000:]}]), flush=True)
"""


# The registered models whose contract cases are slow (the GANs registered under a
# distance's name among them) reload in the slow suite, in a process of their own;
# so do the models whose kind of network and state another model of their family
# reloads by default (a U-Net diffusion model, a masked-convolution and a cached
# autoregressive model, an energy with its replay buffer, a convolutional GAN).
RELOAD_SLOW = {case_id(*c[:3]) for c in PRIMARY} & SLOW_CASES | {
    "iddpm-moons", "latent_diffusion-digits", "sr_diffusion-digits",
    "gated_pixelcnn-digits-num_classes", "pixelcnn_pp-digits", "wavenet-digits",
    "vq_vae_prior-digits", "pixel_vae-digits", "jem-digits-num_classes", "ncsn-digits",
    "stylegan-digits", "biggan-digits-num_classes", "diffusion_gan-digits"}


def reload_in_fresh_process(cases, folder):
    """Case id -> (expected outputs, the fresh process's outputs or error), for
    `cases` saved under `folder` and loaded in one fresh process; and the process."""
    jobs, expected = [], {}
    for case in cases:
        case_key = case_id(*case[:3])
        model = build(*case)
        perturb(model)
        for _ in range(3):  # a stream state that is not the initial one
            model.rng.next_seed()
        path = str(folder / f"{case_key}.keras")
        model.save(path)
        inputs = all_signature_inputs(model, seed=11)
        np.savez(path + ".npz", **{f"{sig}/{k}": v for sig, d in inputs.items()
                                   for k, v in d.items()})
        expected[case_key] = (all_outputs(model), model.rng.state.numpy().tolist(),
                              type(model).__name__)
        jobs.append([case_key, path])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", KERAS_RELOAD, USER_MODELS],
                          input=json.dumps(jobs),
                          capture_output=True, text=True, timeout=900, env=env, cwd=folder)
    got = dict(json.loads(line[5:]) for line in proc.stdout.splitlines()
               if line.startswith("CASE "))
    return expected, got, proc


def test_reload_slow_ids_are_cases():
    assert_case_ids(RELOAD_SLOW)


@pytest.fixture(scope="module")
def keras_reloads(tmp_path_factory):
    return reload_in_fresh_process(
        [c for c in PRIMARY if case_id(*c[:3]) not in RELOAD_SLOW],
        tmp_path_factory.mktemp("keras_reload"))


def selected(request, test, cases):
    """The `cases` whose item of `test` this session runs (after -k and the
    markers' deselection): a shared slow process runs only those."""
    ids = {item.callspec.id for item in request.session.items
           if item.originalname == test.__name__ and hasattr(item, "callspec")}
    return [c for c in cases if case_id(*c[:3]) in ids]


@pytest.fixture(scope="module")
def keras_reloads_slow(request, tmp_path_factory):
    return reload_in_fresh_process(
        selected(request, test_keras_file_loads_after_import_zoo_alone,
                 [c for c in PRIMARY if case_id(*c[:3]) in RELOAD_SLOW]),
        tmp_path_factory.mktemp("keras_reload_slow"))


@pytest.mark.parametrize("case", [
    pytest.param(c, id=case_id(*c[:3]),
                 marks=pytest.mark.slow if case_id(*c[:3]) in RELOAD_SLOW else ())
    for c in PRIMARY])
def test_keras_file_loads_after_import_zoo_alone(case, request):
    """Every registered model's .keras file loads after `import zoo` alone."""
    expected, got, proc = request.getfixturevalue(
        "keras_reloads_slow" if case_id(*case[:3]) in RELOAD_SLOW else "keras_reloads")
    key = case_id(*case[:3])
    assert key in got, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    assert "error" not in got[key], got[key].get("error")
    outputs_expected, rng_state, kind = expected[key]
    assert got[key]["classes"] == [kind, kind]  # loads with safe_mode off and on
    assert got[key]["rng_state"] == rng_state  # the random stream is saved too
    outputs = got[key]["outputs"]
    assert outputs.keys() == outputs_expected.keys()
    for name, value in outputs_expected.items():
        np.testing.assert_allclose(np.asarray(outputs[name], np.float32), value,
                                   rtol=1e-6, atol=1e-6, err_msg=name)


# Exported by default: a flow of each kind (coupling on vectors, multi-scale images,
# the ODE) and each family; the others (splines, and MADE's plain masked layers
# among them) in the slow suite.
EXPORT_DEFAULT = {"realnvp-moons", "glow-digits", "ffjord-moons", "sngan-digits-num_classes",
                  "vae-digits-num_classes", "diagonal_gaussian-moons",
                  "gated_pixelcnn-digits-num_classes",
                  "iddpm-moons"}  # complete_options (RePaint's) in a signature


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The default cases exported and reloaded (without zoo) in one fresh process."""
    models = {}
    for case in CASES:
        if case_id(*case[:3]) not in EXPORT_DEFAULT:
            continue
        model = build(*case)
        perturb(model)
        models[case_id(*case[:3])] = model
    return export_models(models, tmp_path_factory.mktemp("exports"))


@pytest.mark.parametrize("case", [
    pytest.param(c, id=case_id(*c[:3]),
                 marks=() if case_id(*c[:3]) in EXPORT_DEFAULT else pytest.mark.slow)
    for c in CASES])
def test_export_reload_in_fresh_process(case, request, tmp_path):
    """Outputs equal the Keras model's; bad inputs give errors naming what was
    expected, an empty batch gives an empty result, n = 0 zero samples."""
    if case_id(*case[:3]) in EXPORT_DEFAULT:
        request.getfixturevalue("exports")[case_id(*case[:3])].check()
    else:
        model = build(*case)
        perturb(model)
        export_and_compare(model, tmp_path)


# Runs every case's fit step under MirroredStrategy on two logical CPUs, in one
# fresh process (logical devices must be set before TF initialises), and prints
# one JSON line per case: its last logs, or its error.
MIRRORED = TWO_REPLICAS + r"""
for case_id, name, dataset, overrides, batch in json.loads(sys.stdin.read()):
    try:
        with strategy.scope():
            model = zoo.get(name, dataset=dataset, **overrides)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        data = np.array(batch, "float32")
        if getattr(model, "num_classes", 0):
            data = (data, np.arange(len(data)) % model.num_classes)
        ds = tf.data.Dataset.from_tensor_slices(data).batch(8)
        history = model.fit(ds, epochs=1, verbose=0)
        result = {k: v[-1] for k, v in history.history.items()}
    except Exception:
        result = {"error": traceback.format_exc()[-3000:]}
    print("CASE " + json.dumps([case_id, result]), flush=True)
"""


# Under MirroredStrategy by default: the cases whose state is synchronised across
# replicas (MAF's batch-norm averages; the generator's weight average, with the
# random stream drawing in each replica). Glow's ActNorm initialisation and
# WGAN-GP's schedule have tests of their own in test_nice_glow.py and
# test_wgan_gp.py. The other cases (the VAE's plain step among them) run in the
# slow suite, in a process of their own.
MIRRORED_DEFAULT = {"maf-moons-batch_norm"}  # the GAN's: test_wgan_gp.py


def run_mirrored(cases):
    """Case id -> the logs of its MirroredStrategy fit step (or {"error": ...}), for
    `cases` in one fresh process; and the process."""
    jobs = [[case_id(*case[:3]), name, dataset, overrides,
             raw_batch(build(name, dataset, overrides), 16).tolist()]
            for case in cases for name, dataset, overrides, _ in [case]]
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED], input=json.dumps(jobs),
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    logs = dict(json.loads(line[5:]) for line in proc.stdout.splitlines()
                if line.startswith("CASE "))
    return logs, proc


@pytest.fixture(scope="module")
def mirrored_default():
    return run_mirrored([c for c in CASES if case_id(*c[:3]) in MIRRORED_DEFAULT])


@pytest.fixture(scope="module")
def mirrored_slow(request):
    return run_mirrored(selected(request, test_mirrored_strategy_step,
                                 [c for c in CASES if case_id(*c[:3]) not in MIRRORED_DEFAULT]))


@pytest.mark.parametrize("case", [
    pytest.param(c, id=case_id(*c[:3]),
                 marks=() if case_id(*c[:3]) in MIRRORED_DEFAULT else pytest.mark.slow)
    for c in CASES])
def test_mirrored_strategy_step(case, request):
    key = case_id(*case[:3])
    logs, proc = request.getfixturevalue(
        "mirrored_default" if key in MIRRORED_DEFAULT else "mirrored_slow")
    assert key in logs, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    result = logs[key]
    assert "error" not in result, result.get("error")
    model = build(*case)
    assert set(result) == set(model.loss_names)
    assert all(np.isfinite(v) for v in result.values())


def test_case_id_lists_are_cases():
    for ids in (EXPORT_DEFAULT, MIRRORED_DEFAULT):
        assert_case_ids(ids)
