"""The zoo: deep generative models on TensorFlow 2.21, Keras 3 and TFP 0.25."""

import os
import re

from setuptools import find_packages, setup

# Versions checked together (train, jit-compile, save, export). tf-keras, which
# TFP 0.25 needs, itself requires the `tensorflow` wheel, so that is the one pinned
# (on Linux it runs on the CPU; the CUDA libraries come only with the extra
# "and-cuda"): installing `tensorflow-cpu` beside it would put two copies of TF in
# one environment. GPU: pip install "tensorflow[and-cuda]==2.21.0" (see README).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "keras>=3.15,<3.16",
    "tensorflow-probability[tf]==0.25.0",
    "tf-keras==2.21.0",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",  # keras.callbacks.TensorBoard needs it; TF 2.21 does not bring it
    "importlib_resources",  # tfds 4.9.10 imports it without requiring it
    "numpy>=1.26,<3",
    "scikit-learn>=1.5",
    "pillow>=10",
    "tqdm>=4.66",  # zoo.progress's bars (on stderr; Keras' Progbar writes to stdout)
]



def model_modules(package="zoo"):
    """The package's modules that register models (a line starting `@register(`):
    the entry points of the group "zoo.models", through which zoo.registry finds
    them (another package registers its own models under the same group)."""
    found = []
    for folder, _, names in sorted(os.walk(package)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.endswith(".py") and re.search(r"^@register\(", open(path).read(), re.M):
                found.append(path[:-len(".py")].replace(os.sep, "."))
    return found


setup(
    name="zoo",
    version="0.2.0",
    description="A TensorFlow/Keras model zoo of deep generative models",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["zoo", "zoo.*"]),
    # The feature networks' weights (zoo.metrics.features), a few hundred KB each.
    package_data={"zoo.metrics": ["weights/*.weights.h5", "weights/*.json"]},
    # The `zoo` command parses its arguments before it imports TensorFlow.
    py_modules=["zoo_cli"],
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # selenium drives Debian's chromium (`make browser`) in the report page's test.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "selenium==4.51.0"],
        # gRPC requests to TF Serving (zoo.savedmodels.predict_request, `zoo serve`'s
        # client); the tests check them, so `make install` installs it too.
        "serving": ["tensorflow-serving-api==2.21.0"],
    },
    entry_points={
        "console_scripts": ["zoo = zoo_cli:main"],
        "zoo.models": [f"{module.rsplit('.', 1)[1]} = {module}" for module in model_modules()],
    },
    license="Apache-2.0",
)
