"""TF Serving's SavedModel warm-up requests, written into each exported version.

TF Serving runs the requests of ``<version>/assets.extra/tf_serving_warmup_requests``
(a TFRecord file of ``tensorflow.serving.PredictionLog`` protos) when it loads a
version, before the version serves, so the first real request does not pay for
initialising the graph (TF Serving's "SavedModel Warmup" guide). A request that
fails makes TF Serving refuse the version, so each one is a valid input of its
signature: one small request per signature, ``serving_default`` included.

The protos are encoded here (a few protobuf fields; see :func:`prediction_log`), so
that exporting does not need ``tensorflow-serving-api``; the tests parse the file
with that package's ``prediction_log_pb2`` and run each request through the TF1
session loader, TF Serving's own loading path.
"""

import os

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The scalar inputs that are not sampler options: one sample, seed 0.
WARMUP_SCALARS = {"n": 1, "seed": 0}

# Field numbers of tensorflow_serving/apis/{prediction_log,predict,model}.proto.
_PREDICTION_LOG_PREDICT_LOG = 6  # PredictionLog.predict_log
_PREDICT_LOG_REQUEST = 1  # PredictLog.request
_REQUEST_MODEL_SPEC, _REQUEST_INPUTS = 1, 2  # PredictRequest.model_spec, .inputs (a map)
_MODEL_SPEC_NAME, _MODEL_SPEC_SIGNATURE = 1, 3  # ModelSpec.name, .signature_name
_MAP_KEY, _MAP_VALUE = 1, 2  # the fields of a protobuf map entry


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """One length-delimited protobuf field (wire type 2): a string or a message."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log(model_name, signature, inputs):
    """A serialized ``PredictionLog`` holding one ``PredictRequest``.

    Args:
        model_name: the served model's name (``model_spec.name``).
        signature: the signature it calls (``model_spec.signature_name``).
        inputs: {input name: NumPy value}, each written as a ``TensorProto``.
    Returns:
        bytes, as ``prediction_log_pb2.PredictionLog.SerializeToString()`` gives
        them for the same request.
    """
    spec = (_field(_MODEL_SPEC_NAME, model_name.encode())
            + _field(_MODEL_SPEC_SIGNATURE, signature.encode()))
    request = _field(_REQUEST_MODEL_SPEC, spec)
    for name, value in inputs.items():
        tensor = tf.make_tensor_proto(value).SerializeToString()
        request += _field(_REQUEST_INPUTS, _field(_MAP_KEY, name.encode())
                          + _field(_MAP_VALUE, tensor))
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def warmup_inputs(model, signature, specs):
    """{input name: NumPy value}: a small valid request for one signature.

    Batched inputs have one example: zeros (level 0 of images, the origin of
    points and of real latents), uniform distributions over the categories for a
    model whose ``latent_support`` is ``"simplex"``, and the lowest value of each
    integer input (class 0, the model's ``integer_input_ranges``). Scalars: ``n``
    = 1, ``seed`` = 0 and each option at its default (``model.options_of``: the
    sampler's, and in ``complete`` also ``complete_options``).

    Raises:
        ValueError: an input whose shape beyond the batch is unknown, or a scalar
            input that is neither ``n``, ``seed`` nor a sampler option.
    """
    data_name = model.data_spec().name
    options = model.options_of(signature)
    ranges = dict(getattr(model, "integer_input_ranges", {}))
    inputs = {}
    for spec in specs:
        dtype = spec.dtype.as_numpy_dtype
        shape = list(spec.shape)
        if not shape:
            if spec.name in options:
                value = options[spec.name].default
            elif spec.name in WARMUP_SCALARS:
                value = WARMUP_SCALARS[spec.name]
            else:
                raise ValueError(
                    f"export: no warm-up value for the scalar input {spec.name!r} of "
                    f"signature {signature!r}: expected n, seed or one of its options "
                    f"{sorted(options)}")
            inputs[spec.name] = np.asarray(value, dtype)
            continue
        if any(d is None for d in shape[1:]):
            raise ValueError(f"export: signature {signature!r}: expected input "
                             f"{spec.name!r} to have a known shape after its batch "
                             f"dimension, got {shape}")
        shape = [1] + shape[1:]
        if spec.dtype.is_integer:
            value = np.full(shape, ranges.get(spec.name, (0, None))[0])
        elif spec.name != data_name and getattr(model, "latent_support", "real") == "simplex":
            value = np.full(shape, 1.0 / shape[-1])
        else:
            value = np.zeros(shape)
        inputs[spec.name] = value.astype(dtype)
    return inputs


def write_warmup_requests(model, folder, model_name, signatures):
    """Writes ``folder/assets.extra/tf_serving_warmup_requests``: one request
    (:func:`warmup_inputs`) per entry of `signatures` (name -> (function, input
    TensorSpecs), as ``model.serving_signatures()`` gives them), and one for
    ``serving_default``, which is the first. Returns the file's path."""
    requests = {name: warmup_inputs(model, name, specs) for name, (_, specs) in signatures.items()}
    requests["serving_default"] = requests[next(iter(signatures))]
    path = os.path.join(folder, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for name, inputs in requests.items():
            writer.write(prediction_log(model_name, name, inputs))
    return path
