"""TF Serving's model config for an export base path, and the server launch.

``savedmodels/`` holds one folder per model, each with integer version folders
(``savedmodels/realnvp/1/``). :func:`write_model_config` lists those models in a
``model_config_list`` text proto, and :func:`serve` runs
``tensorflow_model_server`` on it, or says how to install it or run it in docker.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys

from zoo.quiet import stop_filtering
from zoo.savedmodels.export import METADATA, latest_version

SERVER = "tensorflow_model_server"
DOCKER_IMAGE = "tensorflow/serving"
DOCKER_BASE = "/models"
APT_INSTRUCTIONS = """\
  echo "deb [arch=amd64] http://storage.googleapis.com/tensorflow-serving-apt stable \\
    tensorflow-model-server tensorflow-model-server-universal" \\
    | sudo tee /etc/apt/sources.list.d/tensorflow-serving.list
  curl https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg \\
    | sudo apt-key add -
  sudo apt-get update && sudo apt-get install tensorflow-model-server"""


def _quote(text):
    """A protobuf text-format string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def served_models(base_path):
    """Model name -> absolute model folder, for each folder with a version."""
    base_path = os.path.abspath(os.fspath(base_path))
    if not os.path.isdir(base_path):
        raise FileNotFoundError(f"expected an export base path (a folder), got {base_path!r}")
    models = {}
    for name in sorted(os.listdir(base_path)):
        folder = os.path.join(base_path, name)
        if name.startswith(".") or not os.path.isdir(folder):
            continue
        if latest_version(folder) is not None:
            models[name] = folder
    return models


def write_model_config(base_path, filename="models.config", container_base=None):
    """Writes TF Serving's ``model_config_list`` for the models under `base_path`.

    One entry per model folder holding at least one version folder, named after
    the folder (that is the name in ``/v1/models/<name>``)::

        model_config_list {
          config {
            name: "realnvp"
            base_path: "/abs/savedmodels/realnvp"
            model_platform: "tensorflow"
          }
        }

    TF Serving serves the latest version of each and picks up new versions by
    itself; a new model folder needs the config rewritten and the server restarted.

    Args:
        base_path: the export base path, e.g. ``savedmodels``.
        filename: the config's file name inside `base_path`.
        container_base: if set, the model paths are written as
            ``<container_base>/<name>`` (where `base_path` is mounted in a
            container) instead of absolute paths on this machine.
    Returns:
        The path of the config file written.
    Raises:
        FileNotFoundError: if `base_path` is not a folder.
        ValueError: if no model folder under `base_path` has a version.
    """
    models = served_models(base_path)
    base_path = os.path.abspath(os.fspath(base_path))
    if not models:
        raise ValueError(
            f"no exported model under {base_path!r}: expected folders "
            f"<model>/<version>/saved_model.pb (export one with "
            f"zoo.savedmodels.export(model, '{os.path.join(base_path, '<model>')}'))"
        )
    lines = ["model_config_list {"]
    for name, folder in models.items():
        path = folder if container_base is None else f"{container_base.rstrip('/')}/{name}"
        lines += [
            "  config {",
            f"    name: {_quote(name)}",
            f"    base_path: {_quote(path)}",
            '    model_platform: "tensorflow"',
            "  }",
        ]
    lines.append("}")
    config = os.path.join(base_path, filename)
    with open(config, "w") as f:
        f.write("\n".join(lines) + "\n")
    return config


def _example_array(spec):
    """An example for one input, as NumPy of the signature's dtype: scalars n=4,
    seed=0, other integers 0 and floats 1.0 (a temperature); zero batches of one."""
    import numpy as np

    name, dtype, shape = spec["name"], spec["dtype"], spec["shape"]
    if not shape:
        value = 4 if name == "n" else 0 if dtype.startswith("int") else 1.0
        return np.asarray(value, dtype)
    return np.zeros([1] + [d if d is not None else 1 for d in shape[1:]], dtype)


def _python_literal(value):
    """A short Python expression for an example of :func:`_example_array` (a
    scalar, or a batch of one of zeros), for large inputs."""
    if value.ndim == 0:
        return json.dumps(value.item())
    inner = "0" if value.dtype.kind in "iu" else "0.0"
    for d in reversed(value.shape[1:]):
        inner = f"[{inner}]*{d}"
    return f"[{inner}]"


def _signatures(folder):
    """[(signature, [input specs with names])] of the latest version's metadata,
    without ``serving_default`` and without the sampler's optional inputs (their
    defaults are in the SignatureDef); None if the metadata is unreadable."""
    try:
        with open(os.path.join(folder, str(latest_version(folder)), METADATA)) as f:
            metadata = json.load(f)
        signatures = metadata["signatures"]
    except (OSError, ValueError, KeyError):
        return None
    sampler = set(metadata.get("sample_options", {}))
    optional = {"sample": sampler, "complete": sampler | set(metadata.get("complete_options", {}))}
    return [(sig, [dict(spec, name=k) for k, spec in described["inputs"].items()
                   if k not in optional.get(sig, ())])
            for sig, described in signatures.items() if sig != "serving_default"]


def example_requests(base_path):
    """{(model, signature): {input name: NumPy example}} for every served model:
    the inputs of the example requests `zoo serve` prints."""
    return {(name, sig): {s["name"]: _example_array(s) for s in specs}
            for name, folder in served_models(base_path).items()
            for sig, specs in (_signatures(folder) or [])}


def rest_body(signature, inputs):
    """TF Serving's REST predict body (the columnar ``inputs`` format) for
    {name: NumPy value}: ``{"signature_name": ..., "inputs": {name: nested lists}}``."""
    return {"signature_name": signature, "inputs": {k: v.tolist() for k, v in inputs.items()}}


def predict_request(model, signature, inputs):
    """TF Serving's gRPC ``PredictRequest`` for {name: NumPy value} (needs
    ``tensorflow-serving-api``: ``pip install "zoo[serving]"``)."""
    try:
        from tensorflow_serving.apis import predict_pb2
    except ImportError:
        raise ImportError('predict_request needs tensorflow-serving-api: pip install '
                          '"zoo[serving]" (or tensorflow-serving-api)') from None
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def curl_examples(base_path, rest_port=8501):
    """Example REST requests, one per signature of each served model."""
    lines = []
    requests = example_requests(base_path)
    for name in served_models(base_path):
        url = f"localhost:{rest_port}/v1/models/{name}"
        lines.append(f"  curl {url}/metadata")
        for sig, inputs in ((sig, v) for (model, sig), v in requests.items() if model == name):
            body = rest_body(sig, inputs)
            if len(json.dumps(body)) <= 120:
                lines.append(f"  curl -d '{json.dumps(body)}' {url}:predict")
            else:
                parts = ", ".join(f"{json.dumps(k)}: {_python_literal(v)}"
                                  for k, v in inputs.items())
                script = (f'import json; print(json.dumps({{"signature_name": {json.dumps(sig)}, '
                          f'"inputs": {{{parts}}}}}))')
                lines.append(f"  python3 -c {shlex.quote(script)} | curl -d @- {url}:predict")
    return lines


GRPC_CLIENT = """\
import grpc, numpy as np, tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("localhost:{port}"))

def predict(model, signature, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    reply = stub.Predict(request, 60.0)
    print(model, signature, {{k: tf.make_ndarray(v).shape for k, v in reply.outputs.items()}})
"""


def _numpy_literal(value):
    if value.ndim == 0:
        return f"np.{value.dtype.name}({value.item()!r})"
    return f"np.zeros({tuple(value.shape)!r}, np.{value.dtype.name})"


def grpc_client(base_path, port=8500):
    """A Python program that sends one gRPC ``PredictRequest`` per signature of
    each served model (the inputs of :func:`example_requests`) and prints the
    shapes of the replies; needs ``tensorflow-serving-api``."""
    calls = [f"predict({model!r}, {sig!r}"
             + "".join(f", {k}={_numpy_literal(v)}" for k, v in inputs.items()) + ")"
             for (model, sig), inputs in example_requests(base_path).items()]
    return GRPC_CLIENT.format(port=port) + "\n" + "\n".join(calls) + "\n"


def _usage(base_path, port, rest_port):
    return "\n".join([
        "REST requests (TF Serving's columnar \"inputs\" format: scalars such as n and "
        "seed have no batch dimension, so the row \"instances\" format does not fit them; "
        "the reply is {\"outputs\": ...}):",
        *curl_examples(base_path, rest_port),
        "gRPC requests, one PredictRequest per signature (pip install \"zoo[serving]\", "
        "or tensorflow-serving-api):",
        "  python3 - <<'EOF'",
        grpc_client(base_path, port) + "EOF",
    ])


def _check_port(name, port):
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"serve: expected {name} to be a port number in 1..65535, got {port!r}")


def serve(base_path, port=8500, rest_port=8501, dry_run=False):
    """Serves every model exported under `base_path` with TF Serving.

    Writes ``base_path/models.config`` (and ``models.docker.config``, the same
    with the paths as mounted in the ``tensorflow/serving`` container), then runs
    ``tensorflow_model_server --port=PORT --rest_api_port=REST_PORT
    --model_config_file=...`` until it exits. Without ``tensorflow_model_server``
    on PATH it prints (to stderr) how to install it, the equivalent docker
    command and example requests, and returns 127 (0 for a dry run).

    Args:
        base_path: the export base path, e.g. ``savedmodels``.
        port: the gRPC port.
        rest_port: the REST port (``/v1/models/<name>:predict``).
        dry_run: write the configs and print the command and example requests,
            but do not start the server.
    Returns:
        The server's exit code (0 for a dry run, 127 if the server is not installed).
    """
    _check_port("port", port)
    _check_port("rest_port", rest_port)
    if port == rest_port:
        raise ValueError(f"serve: port and rest_port must differ, both are {port}")
    config = write_model_config(base_path)
    write_model_config(base_path, "models.docker.config", container_base=DOCKER_BASE)
    base_path = os.path.abspath(os.fspath(base_path))
    server = shutil.which(SERVER)
    command = [server or SERVER, f"--port={port}", f"--rest_api_port={rest_port}",
               f"--model_config_file={config}"]
    docker = [
        "docker", "run", "--rm", "-p", f"{port}:8500", "-p", f"{rest_port}:8501",
        "-v", f"{base_path}:{DOCKER_BASE}", DOCKER_IMAGE,
        f"--model_config_file={DOCKER_BASE}/models.docker.config",
    ]
    models = ", ".join(served_models(base_path))
    if server is None:
        print(
            f"{SERVER} is not installed (not found on PATH).\n"
            f"Install it from TF Serving's apt repository (Debian/Ubuntu):\n"
            f"{APT_INSTRUCTIONS}\n"
            f"then run:\n  {shlex.join(command)}\n"
            f"or run TF Serving in docker instead:\n  {shlex.join(docker)}\n"
            f"Models: {models} (config: {config})\n"
            f"{_usage(base_path, port, rest_port)}",
            file=sys.stderr,
        )
        return 0 if dry_run else 127
    print(f"{'would run' if dry_run else 'running'}: {shlex.join(command)}\n"
          f"Models: {models}\n{_usage(base_path, port, rest_port)}", file=sys.stderr)
    if dry_run:
        return 0
    stop_filtering()  # the server logs to the terminal itself, every line
    process = subprocess.Popen(command)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
