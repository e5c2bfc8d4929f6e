"""zoo.savedmodels: SavedModel export for TF Serving, reload, config and launch.

Every model's export is reloaded in a fresh process without zoo, and called with
good and bad inputs, by test_contract_processes.py."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import zoo

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
