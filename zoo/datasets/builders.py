"""tensorflow-datasets builders for the zoo's offline datasets.

Their tfds names start with ``zoo_`` so that they never shadow tfds' own builders.
Each writes its splits once into the tfds data_dir and reads them back with
``as_dataset``, like any tfds dataset, in the order they were generated
(``disable_shuffling``: the pipelines shuffle, seeded, themselves).
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from zoo.datasets import toy
from zoo.datasets.idx import read_idx

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TOY_SIZES = {"train": (50_000, 0), "test": (10_000, 1)}  # split -> (points, seed)
DIGITS_TRAIN = 1500
FORTUNES_DIR = "/usr/share/games/fortunes"
# The text datasets are sequences of this many bytes (symbols 0..255).
SEQUENCE_LENGTH = 128
# The fixed split of Debian's English fortune-cookie files, by file: these files
# are the validation and test splits (about 4% and 6% of the bytes), every other
# file is the training split.
FORTUNES_HELD_OUT = {"validation": ("education", "food", "kids"),
                     "test": ("humorists", "law", "linux")}


def fashion_mnist_dir():
    """Where the IDX files are: $ZOO_FASHION_MNIST_DIR, else the Debian package's folder."""
    return os.environ.get("ZOO_FASHION_MNIST_DIR", FASHION_MNIST_DIR)


def fortunes_dir():
    """Where the fortune files are: $ZOO_FORTUNES_DIR, else the Debian packages' folder."""
    return os.environ.get("ZOO_FORTUNES_DIR", FORTUNES_DIR)


def fortunes_files(folder):
    """The fortune files of `folder` by split: ``{split: [file names]}``, each
    sorted. A fortune file is a plain file whose name has no dot (``strfile``'s
    ``.dat`` indices and the ``.u8`` links are left out). The held-out files of
    :data:`FORTUNES_HELD_OUT` are the validation and test splits, all the others
    the training split.

    Raises:
        FileNotFoundError: no such folder, or one without the held-out files.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no folder {folder}")
    names = sorted(n for n in os.listdir(folder) if "." not in n
                   and os.path.isfile(os.path.join(folder, n))
                   and not os.path.islink(os.path.join(folder, n)))
    held_out = [n for files in FORTUNES_HELD_OUT.values() for n in files]
    missing = [n for n in held_out if n not in names]
    if missing:
        raise FileNotFoundError(f"{folder} holds no fortune files {missing} (of the "
                                f"validation and test splits)")
    return {"train": [n for n in names if n not in held_out],
            **{split: sorted(files) for split, files in FORTUNES_HELD_OUT.items()}}


def byte_sequences(data, length=SEQUENCE_LENGTH):
    """The bytes `data` as uint8 sequences of `length`: consecutive windows that
    do not overlap, the last incomplete one left out; shape ``(n, length)``."""
    values = np.frombuffer(bytes(data), np.uint8)
    n = len(values) // length
    return values[:n * length].reshape(n, length).copy()


def sequence_features(length=SEQUENCE_LENGTH):
    return tfds.features.FeaturesDict({
        "text": tfds.features.Tensor(shape=(length,), dtype=np.uint8),
    })


def image_features(shape, num_classes):
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=num_classes),
    })


def labelled_examples(images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
        yield i, {"image": image, "label": int(label)}


class ZooFashionMnist(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao et al. 2017) from the original IDX files on disk."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            description="Fashion-MNIST from the IDX files of the Debian package "
                        "dataset-fashion-mnist (or $ZOO_FASHION_MNIST_DIR).",
            features=image_features((28, 28, 1), 10),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        folder = fashion_mnist_dir()
        splits = {}
        for split, (images_file, labels_file) in FASHION_MNIST_FILES.items():
            images = read_idx(os.path.join(folder, images_file))
            labels = read_idx(os.path.join(folder, labels_file))
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(
                    f"fashion_mnist: {folder} holds images of shape {images.shape} and "
                    f"labels of shape {labels.shape}; expected (N, 28, 28) and (N,)"
                )
            splits[split] = labelled_examples(images[..., None], labels)
        return splits

    def _generate_examples(self):  # the generators come from _split_generators
        raise NotImplementedError


class ZooDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8x8 handwritten digits (levels 0..16), a fixed 1500/297 split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            description="UCI optical handwritten digits as shipped in scikit-learn.",
            features=image_features((8, 8, 1), 10),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.uint8)[..., None]
        order = np.random.RandomState(0).permutation(len(images))
        train, test = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
        return {
            "train": labelled_examples(images[train], digits.target[train]),
            "test": labelled_examples(images[test], digits.target[test]),
        }

    def _generate_examples(self):
        raise NotImplementedError


class ZooFortunes(tfds.core.GeneratorBasedBuilder):
    """The English fortune-cookie files of Debian's ``fortunes`` and ``fortunes-min``
    as bytes: each split's files read in name order, one after another, cut into
    sequences of :data:`SEQUENCE_LENGTH` bytes; the split is fixed by file
    (:data:`FORTUNES_HELD_OUT`)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            description="Debian's English fortune cookies (packages fortunes, fortunes-min, "
                        "or $ZOO_FORTUNES_DIR) as byte sequences, split by file.",
            features=sequence_features(),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        folder = fortunes_dir()
        splits = {}
        for split, names in fortunes_files(folder).items():
            data = b"".join(open(os.path.join(folder, n), "rb").read() for n in names)
            splits[split] = self._sequences(byte_sequences(data))
        return splits

    @staticmethod
    def _sequences(sequences):
        for i, sequence in enumerate(sequences):
            yield i, {"text": sequence}

    def _generate_examples(self):
        raise NotImplementedError


class ZooToy2d(tfds.core.GeneratorBasedBuilder):
    """FFJORD's 2-D densities, one builder config per density."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in toy.TOY_NAMES]

    def _info(self):
        return self.dataset_info_from_configs(
            description="2-D toy densities of FFJORD (Grathwohl et al. 2019).",
            features=tfds.features.FeaturesDict({
                "x": tfds.features.Tensor(shape=(2,), dtype=np.float32)
            }),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {
            split: self._points(toy.generate(self.builder_config.name, n, seed))
            for split, (n, seed) in TOY_SIZES.items()
        }

    @staticmethod
    def _points(points):
        for i, point in enumerate(points):
            yield i, {"x": point}

    def _generate_examples(self):
        raise NotImplementedError
