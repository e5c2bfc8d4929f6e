"""zoo.savedmodels: SavedModel export for TF Serving, reload, config and launch.

Every model's export is reloaded in a fresh process without zoo, and called with
good and bad inputs, by test_contract_processes.py."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import zoo
from zoo.savedmodels.serve import SERVER

MOONS = dict(dataset="moons", hidden_units=8, num_couplings=2)
DIGITS = dict(dataset="digits", hidden_units=4, num_blocks=1, num_scales=2,
              couplings_per_scale=1, final_couplings=1)
SIGNATURES = {"serving_default", "log_prob", "sample", "encode", "decode"}


def realnvp(config, seed=0):
    """A tiny RealNVP with its weights moved off their (partly zero) initialisation."""
    model = zoo.get("realnvp", **config)
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(np.asarray(v) + 0.05 * rng.standard_normal(v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def moons_model():
    return realnvp(MOONS)


@pytest.fixture(scope="module")
def base(tmp_path_factory, moons_model):
    """An export base path holding realnvp/1 (moons)."""
    path = tmp_path_factory.mktemp("savedmodels")
    zoo.savedmodels.export(moons_model, path / "realnvp")
    return path


def parse_model_config(path):
    """TF Serving's model_config_list text proto -> [{name, base_path, model_platform}]."""
    text = open(path).read()
    match = re.fullmatch(r"\s*model_config_list\s*\{(.*)\}\s*", text, re.S)
    assert match, text
    entries = re.findall(r"config\s*\{([^{}]*)\}", match.group(1))
    assert re.sub(r"config\s*\{[^{}]*\}", "", match.group(1)).strip() == "", text
    configs = []
    for body in entries:
        fields = re.findall(r'(\w+)\s*:\s*"((?:[^"\\]|\\.)*)"', body)
        assert re.sub(r'\w+\s*:\s*"(?:[^"\\]|\\.)*"', "", body).strip() == "", body
        configs.append(dict(fields))
    return configs


# ------------------------------------------------------------------ export

def test_sample_signature_is_seeded(moons_model, base):
    """Same seed, same samples (the Keras model's); another seed, other samples."""
    import tensorflow as tf

    loaded = zoo.savedmodels.load(base / "realnvp")
    sample = loaded.signatures["sample"]
    one = tf.constant(1.0)
    a = sample(n=tf.constant(5), seed=tf.constant(3), temperature=one)["samples"].numpy()
    b = sample(n=tf.constant(5), seed=tf.constant(3), temperature=one)["samples"].numpy()
    c = sample(n=tf.constant(5), seed=tf.constant(4), temperature=one)["samples"].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 2) and not np.allclose(a, c)
    np.testing.assert_allclose(a, moons_model.sample(5, seed=3), rtol=1e-5, atol=1e-5)
    cold = sample(n=tf.constant(5), seed=tf.constant(3), temperature=tf.constant(0.5))
    np.testing.assert_allclose(cold["samples"], moons_model.sample(5, seed=3, temperature=0.5),
                               rtol=1e-5, atol=1e-5)


def test_saved_model_cli_lists_signatures(base):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", str(base / "realnvp" / "1"), "--all"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listed = {}
    for block in re.split(r"\n(?=signature_def\[)", result.stdout)[1:]:
        name = re.match(r"signature_def\['(\w+)'\]", block).group(1)
        inputs_part = block.split("The given SavedModel SignatureDef contains the following output")[0]
        listed[name] = set(re.findall(r"inputs\['(\w+)'\] tensor_info", inputs_part))
    # `show --all` also lists the internal __saved_model_init_op signature.
    listed.pop("__saved_model_init_op", None)
    assert listed == {
        "serving_default": {"x"}, "log_prob": {"x"}, "sample": {"n", "seed", "temperature"},
        "encode": {"x"}, "decode": {"z"},
    }
    assert "Method name is: tensorflow/serving/predict" in result.stdout


# ---------------------------------------------------------------- versions

def test_versions_increment_and_never_overwrite(moons_model, tmp_path):
    path = tmp_path / "realnvp"
    assert zoo.savedmodels.latest_version(path) is None
    first = zoo.savedmodels.export(moons_model, path)
    second = zoo.savedmodels.export(moons_model, path)
    assert (first, second) == (str(path / "1"), str(path / "2"))
    assert zoo.savedmodels.latest_version(path) == 2
    assert zoo.savedmodels.read_metadata(path)["version"] == 2
    assert sorted(os.listdir(path)) == ["1", "2"]  # no staging folder left behind

    with pytest.raises(FileExistsError, match="version 2 exists"):
        zoo.savedmodels.export(moons_model, path, version=2)
    for bad in (0, -1, "3", 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            zoo.savedmodels.export(moons_model, path, version=bad)
    assert zoo.savedmodels.export(moons_model, path, version=7) == str(path / "7")
    assert zoo.savedmodels.export(moons_model, path) == str(path / "8")

    loaded = zoo.savedmodels.load(path)  # the model folder: its latest version
    assert set(loaded.signatures) == SIGNATURES
    with pytest.raises(FileNotFoundError, match="version"):
        zoo.savedmodels.load(tmp_path / "nothing")


# ------------------------------------------------------------ model config

def test_model_config_lists_models_with_versions(moons_model, tmp_path):
    zoo.savedmodels.export(moons_model, tmp_path / "realnvp")
    zoo.savedmodels.export(moons_model, tmp_path / "moons_flow")
    (tmp_path / "empty").mkdir()                  # no version: not served
    (tmp_path / "notes.txt").write_text("hello")  # a file: ignored
    config = zoo.savedmodels.write_model_config(tmp_path)
    assert config == str(tmp_path / "models.config")
    entries = parse_model_config(config)
    assert entries == [
        {"name": "moons_flow", "base_path": str(tmp_path / "moons_flow"),
         "model_platform": "tensorflow"},
        {"name": "realnvp", "base_path": str(tmp_path / "realnvp"),
         "model_platform": "tensorflow"},
    ]
    assert all(os.path.isabs(e["base_path"]) for e in entries)


def test_model_config_errors_without_models(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no exported model"):
        zoo.savedmodels.write_model_config(tmp_path)
    with pytest.raises(FileNotFoundError):
        zoo.savedmodels.write_model_config(tmp_path / "missing")


# ------------------------------------------------------------------- serve

def test_serve_without_server_prints_docker_and_curl(base, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no tensorflow_model_server
    code = zoo.savedmodels.serve(base, port=9000, rest_port=9001)
    err = capsys.readouterr().err
    assert code != 0
    assert "tensorflow_model_server is not installed" in err
    assert "apt-get install tensorflow-model-server" in err
    docker = (f"docker run --rm -p 9000:8500 -p 9001:8501 -v {base}:/models tensorflow/serving "
              "--model_config_file=/models/models.docker.config")
    assert docker in err
    request = '{"signature_name": "sample", "inputs": {"n": 4, "seed": 0}}'
    assert f"curl -d '{request}' localhost:9001/v1/models/realnvp:predict" in err
    assert parse_model_config(base / "models.docker.config") == [
        {"name": "realnvp", "base_path": "/models/realnvp", "model_platform": "tensorflow"}
    ]
    assert parse_model_config(base / "models.config")[0]["base_path"] == str(base / "realnvp")


def fake_server(bin_dir, exit_code):
    """A `tensorflow_model_server` that records its arguments and exits."""
    bin_dir.mkdir()
    record = bin_dir / "argv.json"
    script = bin_dir / "tensorflow_model_server"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\nsys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return record


def test_serve_runs_the_server_with_its_flags(base, tmp_path, monkeypatch, capsys):
    record = fake_server(tmp_path / "bin", exit_code=3)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    assert zoo.savedmodels.serve(base, port=9100, rest_port=9101, dry_run=True) == 0
    assert not record.exists()  # a dry run does not start it
    assert "--rest_api_port=9101" in capsys.readouterr().err

    assert zoo.savedmodels.serve(base, port=9100, rest_port=9101) == 3  # its exit code
    assert json.loads(record.read_text()) == [
        "--port=9100", "--rest_api_port=9101", f"--model_config_file={base}/models.config",
    ]
    with pytest.raises(ValueError, match="port"):
        zoo.savedmodels.serve(base, port=9100, rest_port=9100)


# ------------------------------------------------- TF Serving's requests
def signature_defs(folder):
    """The SignatureDefs of a SavedModel, as TF Serving reads them."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    return {k: v for k, v in proto.meta_graphs[0].signature_def.items()
            if k != "__saved_model_init_op"}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, moons_model):
    """An export base path with a flow on points and a VAE on images (float
    images, int32 scalars, the sampler's optional inputs)."""
    path = tmp_path_factory.mktemp("two_models")
    zoo.savedmodels.export(moons_model, path / "realnvp")
    zoo.savedmodels.export(zoo.get("vae", "digits", latent_dim=2, filters=4, hidden_units=8),
                           path / "vae")
    return path


def test_rest_and_grpc_requests_encode_each_signature(two_models):
    """The example REST bodies and gRPC PredictRequests `zoo serve` prints carry,
    for every signature but serving_default, every input without a default in the
    SignatureDef, each with the signature's dtype and a shape it accepts; the
    SavedModel answers them with the outputs its SignatureDef names."""
    import tensorflow as tf

    requests = zoo.savedmodels.example_requests(two_models)
    for model in ("realnvp", "vae"):
        folder = two_models / model / "1"
        defs = signature_defs(folder)
        loaded = zoo.savedmodels.load(two_models / model)
        asked = {sig for (name, sig) in requests if name == model}
        assert asked == set(defs) - {"serving_default"}
        for sig in asked:
            inputs, definition = requests[model, sig], defs[sig]
            assert {k for k in definition.inputs if k not in definition.defaults} \
                <= set(inputs) <= set(definition.inputs), sig
            body = json.loads(json.dumps(zoo.savedmodels.rest_body(sig, inputs)))
            request = zoo.savedmodels.predict_request(model, sig, inputs)
            assert (request.model_spec.name, request.model_spec.signature_name) == (model, sig)
            assert body["signature_name"] == sig and set(body["inputs"]) == set(inputs)
            assert set(request.inputs) == set(inputs)
            feed = {}
            for name in inputs:
                info = definition.inputs[name]
                tensor = request.inputs[name]
                dtype = tf.as_dtype(info.dtype)
                assert tensor.dtype == info.dtype, (sig, name)
                wanted = [d.size for d in info.tensor_shape.dim]
                shape = [d.size for d in tensor.tensor_shape.dim]
                assert len(shape) == len(wanted) and all(
                    w in (-1, s) for w, s in zip(wanted, shape)), (sig, name, shape, wanted)
                value = np.asarray(body["inputs"][name])
                assert list(value.shape) == shape, (sig, name)
                assert value.dtype.kind == ("i" if dtype.is_integer else "f"), (sig, name)
                np.testing.assert_array_equal(value, tf.make_ndarray(tensor))
                feed[name] = tf.constant(tf.make_ndarray(tensor))
            for name in set(definition.inputs) - set(inputs):  # TF Serving fills these in
                feed[name] = tf.constant(tf.make_ndarray(definition.defaults[name]))
            outputs = loaded.signatures[sig](**feed)
            assert set(outputs) == set(definition.outputs), sig


def test_example_requests_leave_out_the_options_with_defaults(tmp_path):
    """The sampler's options of ``sample`` and ``complete``, and the complete-only
    ones (``complete_options`` in zoo.json), have defaults in the SignatureDef: the
    example requests leave them out (an int option's example, 0, may be out of its
    range, as ``num_steps`` > 0 is)."""
    version = tmp_path / "ddpm" / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    scalar = {"dtype": "int32", "shape": []}
    data = {"dtype": "float32", "shape": [None, 2]}
    signatures = {"sample": {"inputs": {"n": scalar, "seed": scalar, "num_steps": scalar}},
                  "complete": {"inputs": {"x": data, "mask": data, "seed": scalar,
                                          "num_steps": scalar, "jump": scalar}}}
    (version / "assets.extra" / "zoo.json").write_text(json.dumps({
        "signatures": {"serving_default": signatures["sample"], **signatures},
        "sample_options": {"num_steps": {"default": 4}},
        "complete_options": {"jump": {"default": 1}}}))
    requests = zoo.savedmodels.example_requests(tmp_path)
    assert set(requests["ddpm", "sample"]) == {"n", "seed"}
    assert set(requests["ddpm", "complete"]) == {"x", "mask", "seed"}


def test_printed_grpc_client_is_served_by_the_session_loader(two_models, monkeypatch, capsys):
    """The gRPC program `zoo serve` prints, run with its stub answering through the
    TF1 session loader (the loading path of TF Serving's C++ SavedModelBundle):
    one PredictRequest per signature, each served, its outputs of the shapes the
    SavedModel gives."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    received = []

    class SessionStub:
        def __init__(self, channel):
            pass

        def Predict(self, request, timeout):
            name, sig = request.model_spec.name, request.model_spec.signature_name
            received.append((name, sig))
            folder = str(two_models / name / "1")
            reply = predict_pb2.PredictResponse()
            with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
                meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], folder)
                definition = meta.signature_def[sig]
                feed = {definition.inputs[k].name: tf.make_ndarray(v)
                        for k, v in request.inputs.items()}
                fetched = session.run({k: t.name for k, t in definition.outputs.items()}, feed)
            for k, v in fetched.items():
                reply.outputs[k].CopyFrom(tf.make_tensor_proto(v))
            return reply

    monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", SessionStub)
    script = zoo.savedmodels.grpc_client(two_models, port=9000)
    exec(compile(script, "grpc_client", "exec"), {"__name__": "__main__"})
    assert sorted(received) == sorted(zoo.savedmodels.example_requests(two_models))
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(received)
    assert "realnvp log_prob {'log_prob': (1,)}" in printed
    assert "vae sample {'samples': (4, 8, 8, 1)}" in printed


def test_serve_prints_the_grpc_client(two_models, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert zoo.savedmodels.serve(two_models, port=9200, rest_port=9201, dry_run=True) == 0
    err = capsys.readouterr().err
    assert zoo.savedmodels.grpc_client(two_models, port=9200) in err
    # Each printed curl request (the large ones built by a python3 one-liner) sends
    # the REST body of the same example inputs.
    import shlex

    bodies = {}
    for line in err.splitlines():
        match = re.search(r"(?:curl -d '(.*)'|python3 -c (.*) \| curl -d @-) "
                          r"localhost:9201/v1/models/(\w+):predict$", line)
        if match:
            inline, program, model = match.groups()
            text = inline if inline else subprocess.run(
                [sys.executable, "-c", shlex.split(program)[0]], capture_output=True,
                text=True, check=True).stdout
            body = json.loads(text)
            bodies[model, body["signature_name"]] = body
    requests = zoo.savedmodels.example_requests(two_models)
    assert set(bodies) == set(requests)
    for key, inputs in requests.items():
        assert bodies[key] == zoo.savedmodels.rest_body(key[1], inputs), key
    assert 'grpc.insecure_channel("localhost:9200")' in err
    with pytest.raises(ImportError, match="tensorflow-serving-api"):
        monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
        zoo.savedmodels.predict_request("vae", "sample", {})


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.serving
@pytest.mark.skipif(shutil.which(SERVER) is None,
                    reason=f"{SERVER} is not on PATH (TF Serving's apt repository or its "
                           "docker image; see `zoo serve`)")
def test_tensorflow_model_server_answers_each_signature(two_models):
    """TF Serving itself, where installed: the server on the exports, on loopback
    ports, answers each example REST request with the SavedModel's own outputs."""
    import time
    import urllib.request

    import tensorflow as tf

    server = shutil.which(SERVER)
    config = zoo.savedmodels.write_model_config(two_models)
    port, rest_port = free_port(), free_port()
    process = subprocess.Popen([server, f"--port={port}", f"--rest_api_port={rest_port}",
                                f"--model_config_file={config}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{rest_port}/v1/models"
    try:
        deadline = time.time() + 120
        for model in ("realnvp", "vae"):
            while True:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                assert time.time() < deadline, f"{model} not available after 120 s"
                try:
                    with urllib.request.urlopen(f"{url}/{model}", timeout=5) as reply:
                        states = [v["state"] for v in json.load(reply)["model_version_status"]]
                    if "AVAILABLE" in states:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
        for (model, sig), inputs in zoo.savedmodels.example_requests(two_models).items():
            body = json.dumps(zoo.savedmodels.rest_body(sig, inputs)).encode()
            with urllib.request.urlopen(f"{url}/{model}:predict", body, timeout=60) as reply:
                got = json.load(reply)["outputs"]
            fn = zoo.savedmodels.load(two_models / model).signatures[sig]
            _, specs = fn.structured_input_signature
            defaults = signature_defs(two_models / model / "1")[sig].defaults
            feed = {k: tf.constant(inputs[k] if k in inputs else tf.make_ndarray(defaults[k]),
                                   s.dtype) for k, s in specs.items()}
            expected = {k: v.numpy() for k, v in fn(**feed).items()}
            if len(expected) == 1:  # TF Serving unwraps a single output
                got = {next(iter(expected)): got}
            for k, v in expected.items():
                np.testing.assert_allclose(np.asarray(got[k]), v, rtol=1e-5, atol=1e-5,
                                           err_msg=f"{model}/{sig}/{k}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
