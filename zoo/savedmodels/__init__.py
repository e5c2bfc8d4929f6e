"""Export for TF Serving, reload, serving config and launch.

    zoo.savedmodels.export(model, "savedmodels/realnvp")   # -> savedmodels/realnvp/1
    loaded = zoo.savedmodels.load("savedmodels/realnvp")   # latest version
    loaded.signatures["sample"](n=tf.constant(4), seed=tf.constant(0))["samples"]
    zoo.savedmodels.serve("savedmodels")                   # tensorflow_model_server
    zoo.savedmodels.predict_request("realnvp", "sample", {"n": np.int32(4)})  # gRPC

Layout: ``<base>/<model>/<version>/`` (a SavedModel per integer version, the
metadata in ``assets.extra/zoo.json``) and ``<base>/models.config``.
"""

from zoo.savedmodels.export import export, latest_version, load, read_metadata
from zoo.savedmodels.serve import (example_requests, grpc_client, predict_request, rest_body,
                                   serve, write_model_config)

__all__ = ["example_requests", "export", "grpc_client", "latest_version", "load",
           "predict_request", "read_metadata", "rest_body", "serve", "write_model_config"]
