"""A model zoo of deep generative models on TensorFlow, Keras 3 and TFP.

    import zoo
    model = zoo.get("realnvp", dataset="digits")
    model.compile(optimizer="adam")
    model.fit(zoo.datasets.load("digits", batch_size=64), epochs=5)

Importing ``zoo`` registers every model class with Keras, so a ``.keras`` file of
any zoo model loads with ``keras.saving.load_model`` after ``import zoo``.
"""

from zoo.quiet import import_tensorflow

import_tensorflow()

from zoo import datasets, distribute, metrics, precision, savedmodels  # noqa: E402
from zoo.registry import get, list_models, load_all, register  # noqa: E402

load_all()

__version__ = "0.2.0"
__all__ = ["datasets", "distribute", "get", "list_models", "metrics", "precision", "register",
           "savedmodels"]
