"""Feature networks for sample quality: the zoo's own classifiers, or any Keras model.

FID, KID and precision/recall compare features of samples with features of data.
The usual features, Inception-v3's pool layer (Szegedy et al. 2016), need weights
downloaded at run time, so the zoo ships a small CNN classifier per image dataset
(``zoo/metrics/weights/<dataset>.weights.h5``, trained by
``python -m zoo.metrics.train_features DATASET``). Its features are the
penultimate layer (after its ReLU, like Inception's pool3); its class
probabilities give the classifier score. Numbers from different feature networks
cannot be compared: ``metrics.json`` names the network and the SHA-256 of its
weights.

Any Keras model that maps a dataset's raw images to feature vectors plugs in the
same way (``FeatureNetwork.from_model``, or ``zoo evaluate --features PATH.keras``):
for Inception, wrap ``keras.applications.InceptionV3(include_top=False,
pooling="avg")`` behind a resize to 299x299 and a grey-to-RGB repeat.
"""

import hashlib
import os
import zipfile

import keras
import numpy as np

from zoo import datasets

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")

# The shipped networks: dataset -> architecture. Changing one means retraining it
# (python -m zoo.metrics.train_features DATASET) and a new version in its name.
ARCHITECTURES = {
    "digits": {"blocks": ((32, 32), (64, 64)), "features": 64, "classes": 10, "version": 1},
    "fashion_mnist": {"blocks": ((32,), (64,), (64,)), "features": 128, "classes": 10,
                      "version": 1},
}


class FeatureError(ValueError):
    """Images or a network that cannot be used for features; the message says why."""


def weights_path(dataset):
    return os.path.join(WEIGHTS_DIR, f"{dataset}.weights.h5")


def build_classifier(dataset):
    """The (untrained) classifier shipped for `dataset`: raw levels in, logits out.

    Blocks of 3x3 convolutions with batch normalisation and ReLU, 2x2 max-pooling
    between blocks and after the last, a ReLU dense layer named ``features``
    (the features), dropout, and a dense layer of logits.
    """
    if dataset not in ARCHITECTURES:
        raise FeatureError(f"the zoo ships feature networks for {sorted(ARCHITECTURES)}, "
                           f"not {dataset!r}; pass a Keras model of your own instead")
    arch, info = ARCHITECTURES[dataset], datasets.info(dataset)
    inputs = keras.Input(info.shape, name="images")
    x = keras.layers.Rescaling(1.0 / (info.num_levels - 1))(inputs)
    for block in arch["blocks"]:
        for filters in block:
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            # Momentum 0.9: the moving statistics settle within digits' 360 steps.
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(arch["features"], activation="relu", name="features")(x)
    x = keras.layers.Dropout(0.3)(x)
    logits = keras.layers.Dense(arch["classes"], name="logits")(x)
    return keras.Model(inputs, logits, name=f"zoo_{dataset}_classifier")


def weights_digest(model):
    """SHA-256 of a model's weights (values, shapes and dtypes, in order)."""
    digest = hashlib.sha256()
    for w in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class FeatureNetwork:
    """Images -> features (and class probabilities, for a classifier), in one pass.

    Attributes:
        model: a Keras model with one output, the features ``(n, d)``, or two,
            the features and the class probabilities.
        name: what ``metrics.json`` calls it (``zoo-digits-v1``, or the user's).
        dataset: the dataset it was trained for (None: any images of its shape).
        sha256: :func:`weights_digest` of its weights.
        input_shape: the image shape it takes.
        value_range: ``(low, high)`` raw values it takes (None: not checked).
    """

    def __init__(self, model, name, dataset=None, value_range=None):
        self.model = model
        self.name, self.dataset, self.value_range = name, dataset, value_range
        self.input_shape = tuple(model.input_shape[1:])
        self.sha256 = weights_digest(model)
        self._function = None
        self._reference = {}

    @property
    def dimension(self):
        """The number of features, d."""
        return int(self.model.outputs[0].shape[-1])

    @classmethod
    def from_classifier(cls, classifier, dataset, name):
        """A zoo classifier (raw levels -> logits with a ``features`` layer)."""
        info = datasets.info(dataset)
        both = keras.Model(classifier.inputs, [classifier.get_layer("features").output,
                                               keras.layers.Softmax()(classifier.outputs[0])])
        return cls(both, name, dataset, (0.0, info.num_levels - 1.0))

    @classmethod
    def from_model(cls, model, name=None, layer=None):
        """Any Keras model, or the path of a ``.keras`` file: its output (or the
        output of its layer `layer`) are the features. It gets no classifier score."""
        if isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
            if not os.path.isfile(path):
                raise FeatureError(f"no feature network at {path!r}: expected a .keras file")
            if not zipfile.is_zipfile(path):
                raise FeatureError(f"cannot load a feature network from {path!r}: it is not a "
                                   ".keras archive (a zip file written by model.save)")
            try:
                model = keras.saving.load_model(path, compile=False)
            except Exception as e:
                raise FeatureError(f"cannot load a feature network from {path!r}: "
                                   f"{type(e).__name__}: {str(e)[:300]}") from None
            name = name or os.path.basename(path)
        if not isinstance(model, keras.Model):
            raise FeatureError(f"expected a keras.Model or a .keras path, got "
                               f"{type(model).__name__}")
        if not hasattr(model, "outputs"):
            # A subclassed model (a zoo checkpoint, say) has no symbolic inputs and outputs.
            raise FeatureError(f"feature network {model.name!r} is a {type(model).__name__}, "
                               "not a functional Keras model of images -> features (one "
                               "input, one output of shape (batch, features)); a zoo model "
                               "checkpoint is no feature network")
        if layer is not None:
            model = keras.Model(model.inputs, model.get_layer(layer).output)
        if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
            raise FeatureError(f"feature network {model.name!r}: expected one output of "
                               f"shape (batch, features), got {[o.shape for o in model.outputs]}")
        return cls(model, name or model.name)

    def check(self, images, what="images"):
        """`images` as float32, or a FeatureError naming the shape and range expected."""
        images = np.asarray(images, np.float32)
        expected = f"{self.input_shape}" + (
            f" with values in [{self.value_range[0]:g}, {self.value_range[1]:g}]"
            if self.value_range else "")
        if images.ndim != len(self.input_shape) + 1 or images.shape[1:] != self.input_shape:
            raise FeatureError(f"feature network {self.name!r} expects {what} of shape "
                               f"(n,) + {expected}, got shape {images.shape}")
        if not np.all(np.isfinite(images)):
            raise FeatureError(f"{what}: {int(np.sum(~np.isfinite(images)))} NaN/Inf values")
        if self.value_range and images.size:
            low, high = float(images.min()), float(images.max())
            if low < self.value_range[0] - 1e-3 or high > self.value_range[1] + 1e-3:
                raise FeatureError(f"feature network {self.name!r} expects {what} of shape "
                                   f"{expected}, got values in [{low:g}, {high:g}]")
        return images

    def check_dataset(self, dataset):
        if self.dataset is not None and dataset != self.dataset:
            raise FeatureError(f"feature network {self.name!r} was trained on "
                               f"{self.dataset!r}; it cannot score {dataset!r} images")

    def embed(self, images, batch_size=1000, what="images"):
        """``(features, probabilities)`` of `images`, float64, from one pass of the
        network; probabilities are None for a network that is no classifier. The
        pass shows as a progress stage, "features of `what`"."""
        import tensorflow as tf

        from zoo import progress

        images = self.check(images)
        if self._function is None:
            self._function = tf.function(lambda x: self.model(x, training=False),
                                         reduce_retracing=True)
        batches = []
        with progress.stage(f"features of the {what}", len(images), what) as stage:
            for i in range(0, len(images), batch_size):
                batches.append(self._function(images[i:i + batch_size]))
                stage.update(len(images[i:i + batch_size]))
        outputs = []
        for k, output in enumerate(self.model.outputs):
            parts = [np.asarray(b[k] if isinstance(b, (list, tuple)) else b, np.float64)
                     for b in batches]
            outputs.append(np.concatenate(parts) if parts
                           else np.zeros((0,) + tuple(output.shape[1:])))
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def embed_reference(self, images, what="real images"):
        """:meth:`embed` of the images that samples are compared with, computed once
        per image set (keyed by the SHA-256 of their values) and kept, read-only, for
        the next call: ``zoo compare`` embeds a dataset's test images once, not once
        per run. The last set only is kept."""
        images = self.check(images, what)
        digest = hashlib.sha256(f"{images.shape}".encode())
        digest.update(np.ascontiguousarray(images).tobytes())
        key = digest.hexdigest()
        if key not in self._reference:
            outputs = self.embed(images, what=what)
            for output in outputs:
                if output is not None:
                    output.flags.writeable = False
            self._reference = {key: outputs}
        return self._reference[key]

    def features(self, images, batch_size=1000):
        """Features of shape (n, d), float64."""
        return self.embed(images, batch_size)[0]

    def probabilities(self, images, batch_size=1000):
        """Class probabilities (n, classes), or None for a network that is no classifier."""
        return self.embed(images, batch_size)[1]


_SHIPPED = {}


def shipped(dataset):
    """The zoo's feature network for `dataset` (weights from the package), built
    once per process and weights file (``zoo compare`` scores every run with it)."""
    path = weights_path(dataset)
    stat = os.stat(path) if os.path.isfile(path) else None
    key = (dataset, path) + ((stat.st_size, stat.st_mtime_ns) if stat else ())
    if key in _SHIPPED:
        return _SHIPPED[key]
    classifier = build_classifier(dataset)
    if not os.path.isfile(path):
        raise FeatureError(f"the weights of the {dataset!r} feature network are missing "
                           f"({path}): reinstall the zoo or run "
                           f"`python -m zoo.metrics.train_features {dataset}`")
    classifier.load_weights(path)
    _SHIPPED[key] = FeatureNetwork.from_classifier(
        classifier, dataset, f"zoo-{dataset}-v{ARCHITECTURES[dataset]['version']}")
    return _SHIPPED[key]


def get(spec, dataset):
    """A FeatureNetwork from `spec`: None (the zoo's network for `dataset`), a
    FeatureNetwork, a Keras model or a ``.keras`` path; checked against `dataset`."""
    if spec is None:
        network = shipped(dataset)
    elif isinstance(spec, FeatureNetwork):
        network = spec
    else:
        network = FeatureNetwork.from_model(spec)
    network.check_dataset(dataset)
    return network
