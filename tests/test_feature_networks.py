"""zoo.metrics.features: the shipped feature networks, their training script, and
sample quality of images (zoo.metrics.sample_quality.evaluate_images)."""

import json
import os

import keras
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from zoo import datasets
from zoo.datasets import builders
from zoo.datasets.idx import IDXError, read_idx
from zoo.metrics import features, sample_quality, train_features
from zoo.metrics.features import FeatureError
from zoo.metrics.likelihood import NonFiniteMetricError

# Accuracy the issue asks of the shipped networks on the test splits.
MIN_ACCURACY = {"digits": 0.97, "fashion_mnist": 0.91}


def record(dataset):
    with open(os.path.join(features.WEIGHTS_DIR, f"{dataset}.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def digits_network():
    return features.shipped("digits")


@pytest.fixture(scope="module")
def digits_test(data_dir):
    return datasets.arrays("digits", "test", data_dir)


def fashion_mnist_or_skip():
    """The Fashion-MNIST test split read from its IDX files (what the tfds builder
    reads, without preparing all 70,000 images for one split)."""
    folder = builders.fashion_mnist_dir()
    images_file, labels_file = builders.FASHION_MNIST_FILES["test"]
    try:
        images = read_idx(os.path.join(folder, images_file))
        labels = read_idx(os.path.join(folder, labels_file))
    except IDXError as e:
        if os.environ.get("ZOO_REQUIRE_DATA"):
            raise
        pytest.skip(f"no Fashion-MNIST here ({e}); `make data` installs it")
    return images[..., None].astype(np.float32), labels.astype(np.int64)


# ------------------------------------------------------------------ shipped networks
@pytest.mark.parametrize("dataset", ["digits", "fashion_mnist"])
def test_shipped_weights_reach_their_accuracy(dataset, data_dir):
    images, labels = (datasets.arrays("digits", "test", data_dir) if dataset == "digits"
                      else fashion_mnist_or_skip())
    network = features.shipped(dataset)
    # The weights are those the training script recorded, and so is their accuracy.
    assert network.sha256 == record(dataset)["sha256"]
    probabilities = network.probabilities(images)
    accuracy = float(np.mean(probabilities.argmax(1) == labels))
    assert accuracy >= MIN_ACCURACY[dataset], accuracy
    assert accuracy == pytest.approx(record(dataset)["test_accuracy"], abs=1e-9)
    assert network.name == f"zoo-{dataset}-v1"
    width = features.ARCHITECTURES[dataset]["features"]
    assert network.features(images[:5]).shape == (5, width)
    size = os.path.getsize(features.weights_path(dataset))
    assert size < 1_000_000, size  # a few hundred KB


@pytest.mark.slow
def test_the_training_script_reproduces_the_digits_network(data_dir, tmp_path):
    _, retrained = train_features.train("digits", tmp_path, data_dir=data_dir, verbose=0)
    shipped = record("digits")
    assert retrained["settings"] == shipped["settings"]
    assert retrained["test_accuracy"] >= MIN_ACCURACY["digits"]
    # Same software, same seed: the same accuracy (bit-equal weights need the same
    # CPU kernels too, so only the accuracy is held to it).
    assert retrained["test_accuracy"] == pytest.approx(shipped["test_accuracy"], abs=0.01)
    again = features.build_classifier("digits")
    again.load_weights(tmp_path / "digits.weights.h5")
    assert features.weights_digest(again) == retrained["sha256"]


@pytest.mark.slow
def test_the_training_script_reproduces_the_fashion_mnist_network(data_dir, tmp_path):
    fashion_mnist_or_skip()
    _, retrained = train_features.train("fashion_mnist", tmp_path, data_dir=data_dir,
                                        verbose=0)
    assert retrained["test_accuracy"] >= MIN_ACCURACY["fashion_mnist"]
    assert retrained["test_accuracy"] == pytest.approx(record("fashion_mnist")["test_accuracy"],
                                                       abs=0.01)


# ------------------------------------------------------------------ metrics in its features
def degraded(images, kind, level, seed=0):
    if level == 0:
        return images
    if kind == "noise":
        noisy = images + np.random.RandomState(seed).randn(*images.shape) * level
    else:
        noisy = gaussian_filter(images, sigma=(0, level, level, 0))
    return np.clip(noisy, 0.0, 16.0)


@pytest.mark.parametrize("kind, levels", [("noise", [0, 1, 2, 4]), ("blur", [0, 0.5, 1, 1.5])])
def test_fid_and_kid_grow_as_digits_are_degraded(digits_network, digits_test, data_dir,
                                                 kind, levels):
    train, _ = datasets.arrays("digits", "train", data_dir)
    real = digits_network.features(train)
    test = digits_test[0]
    fake = [digits_network.features(degraded(test, kind, level)) for level in levels]
    fids = [sample_quality.fid(real, f) for f in fake]
    kids = [sample_quality.kid(real, f, num_subsets=20)[0] for f in fake]
    assert all(np.diff(fids) > 0), fids
    assert all(np.diff(kids) > 0), kids


class ArrayModel:
    """A stand-in image model whose samples are given images (a perfect model
    when they are held-out data)."""

    name = "array_model"

    def __init__(self, images):
        self.images = images

    def sample_batches(self, n, seed=0, batch_size=1000):
        index = np.random.RandomState(seed).randint(0, len(self.images), n)
        for start in range(0, n, batch_size):
            yield self.images[index[start:start + batch_size]]


def test_evaluate_images_tells_data_from_a_collapsed_model(digits_network, digits_test,
                                                           data_dir):
    train, labels = datasets.arrays("digits", "train", data_dir)
    test = digits_test[0]
    good = sample_quality.evaluate_images(ArrayModel(train), test, digits_network, 1000)
    # One class only, slightly out of range (clipped, and the fraction reported).
    sevens = train[labels == 7] * 1.01
    collapsed = sample_quality.evaluate_images(ArrayModel(sevens), test, digits_network, 1000)
    assert good["features"] == "zoo-digits-v1" and good["features_sha256"] == digits_network.sha256
    assert good["num_samples"] == 1000 and good["num_real"] == len(test)
    assert good["clipped_fraction"] == 0.0 < collapsed["clipped_fraction"]
    assert good["fid"] * 5 < collapsed["fid"], (good["fid"], collapsed["fid"])
    assert good["kid"] < collapsed["kid"]
    assert good["recall"] > 0.8 > 0.3 > collapsed["recall"]
    assert good["precision"] > 0.8
    assert good["classifier_score"] > 8.0 > 1.5 > collapsed["classifier_score"]
    assert good["classifier_score_real"] > 9.0
    assert good["samples_per_second"] > 0


def test_the_test_images_are_embedded_once_per_process(digits_test, data_dir, monkeypatch):
    """`zoo compare` scores many runs against one test split: the shipped network is
    built once and the test images' features computed once, not once per run."""
    network = features.shipped("digits")
    assert features.shipped("digits") is network
    embedded = []
    monkeypatch.setattr(network, "embed", lambda images, batch_size=1000, what="images": (
        embedded.append(what) or features.FeatureNetwork.embed(network, images, batch_size,
                                                                what)))
    network._reference = {}
    train, _ = datasets.arrays("digits", "train", data_dir)
    test = digits_test[0]
    first = sample_quality.evaluate_images(ArrayModel(train), test, network, 100)
    second = sample_quality.evaluate_images(ArrayModel(train), test, network, 100)
    assert embedded == ["real images", "samples", "samples"]
    assert first["fid"] == second["fid"]
    # Other images are embedded anew, and kept features cannot be changed by a caller.
    sample_quality.evaluate_images(ArrayModel(train), test[:-1], network, 100)
    assert embedded[3:] == ["real images", "samples"]
    with pytest.raises(ValueError, match="read-only"):
        network.embed_reference(test[:-1])[0][0, 0] = 1.0


# ------------------------------------------------------------------ bad input
def test_bad_images_and_networks_are_named(digits_network, digits_test):
    test = digits_test[0]
    with pytest.raises(FeatureError, match=r"expects images of shape \(n,\) \+ \(8, 8, 1\) "
                                           r"with values in \[0, 16\], got shape \(3, 8, 8\)"):
        digits_network.features(test[:3, :, :, 0])
    with pytest.raises(FeatureError, match=r"got values in \[0, 255\]"):
        digits_network.features(test[:3] * 255 / 16)
    with pytest.raises(FeatureError, match="trained on 'digits'; it cannot score "
                                           "'fashion_mnist' images"):
        features.get(digits_network, "fashion_mnist")
    with pytest.raises(FeatureError, match="ships feature networks for .* not 'moons'"):
        features.shipped("moons")
    with pytest.raises(ValueError, match="64-dimensional features of 'zoo-digits-v1' needs "
                                         "more than 64 samples, got 50: use at least 65"):
        sample_quality.evaluate_images(ArrayModel(test), test, digits_network, 50)
    nan = ArrayModel(np.full((10, 8, 8, 1), np.nan, np.float32))
    with pytest.raises(NonFiniteMetricError, match="100 of its 100 samples hold NaN/Inf"):
        sample_quality.evaluate_images(nan, test, digits_network, 100)


def test_any_keras_model_plugs_in_by_path(digits_test, tmp_path):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "mine.keras")
    network = features.get(str(tmp_path / "mine.keras"), "digits")
    assert network.name == "mine.keras" and network.dataset is None
    assert network.features(digits_test[0]).shape == (len(digits_test[0]), 4)
    assert network.probabilities(digits_test[0]) is None
    metrics = sample_quality.evaluate_images(ArrayModel(digits_test[0]), digits_test[0],
                                             network, 100)
    assert "classifier_score" not in metrics and np.isfinite(metrics["fid"])
    with pytest.raises(FeatureError, match="no feature network at"):
        features.get(str(tmp_path / "missing.keras"), "digits")
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(FeatureError, match="cannot load a feature network"):
        features.get(str(tmp_path / "junk.keras"), "digits")
