"""A model zoo of deep generative models on TensorFlow, Keras 3 and TFP.

    import zoo
    model = zoo.get("realnvp", dataset="digits")
    model.compile(optimizer="adam")
    model.fit(zoo.datasets.load("digits", batch_size=64), epochs=5)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo import datasets, savedmodels  # noqa: E402
from zoo.registry import get, list_models, register  # noqa: E402

__version__ = "0.1.0"
__all__ = ["datasets", "get", "list_models", "register", "savedmodels"]
