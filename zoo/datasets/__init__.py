"""Datasets: tfds builders and the input pipelines of the zoo.

``load(name, split, batch_size)`` returns a ``tf.data.Dataset`` of raw float32
batches: pixel levels for images (0..255 for ``fashion_mnist``, 0..16 for
``digits``), points for the 2-D densities, byte values (0..255) for the text
datasets' sequences (``fortunes``, ``tiny_shakespeare``). Models preprocess raw data themselves
(see ``zoo.preprocessing``) and count the Jacobian of what changes volume.
"""

import contextlib
import dataclasses
import difflib
import io
import os
import sys

import numpy as np
import tensorflow as tf

from zoo.datasets import builders, toy
from zoo.datasets.idx import IDXError


class DatasetError(ValueError):
    """A dataset cannot be found, built or read; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is, known without building it."""

    name: str
    kind: str  # "image", "2d" or "text"
    shape: tuple
    num_levels: int  # intensity levels of raw images, symbols of text; None for 2-D points
    splits: dict  # split name -> number of examples
    description: str
    # The dataset's own metrics of 2-D samples beside the distances every 2-D
    # dataset gets (:func:`point_measures` gives what computes them).
    point_metrics: tuple = ()


# What a dataset that is a Gaussian mixture adds to its samples' metrics.
MIXTURE_METRICS = ("modes_covered", "num_modes", "high_quality_fraction")

INFOS = {
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", "image", (28, 28, 1), 256, {"train": 60_000, "test": 10_000},
        "Fashion-MNIST (Xiao et al. 2017), 28x28 grey levels 0..255"),
    "digits": DatasetInfo(
        "digits", "image", (8, 8, 1), 17, {"train": builders.DIGITS_TRAIN, "test": 297},
        "scikit-learn's 8x8 digits, levels 0..16, fixed split"),
    **{name: DatasetInfo(
        name, "2d", (2,), None, {s: n for s, (n, _) in builders.TOY_SIZES.items()},
        f"FFJORD's 2-D '{name}' density, fixed seeds per split",
        MIXTURE_METRICS if name in toy.MIXTURES else ())
       for name in toy.TOY_NAMES},
    # Byte sequences (symbols 0..255); the sizes are those of Debian 12's fortunes
    # 1:1.99.1 and of tfds' tiny_shakespeare.
    "fortunes": DatasetInfo(
        "fortunes", "text", (builders.SEQUENCE_LENGTH,), 256,
        {"train": 18_100, "validation": 798, "test": 1_231},
        f"Debian's English fortune cookies as bytes, sequences of "
        f"{builders.SEQUENCE_LENGTH}, a fixed split by file"),
    "tiny_shakespeare": DatasetInfo(
        "tiny_shakespeare", "text", (builders.SEQUENCE_LENGTH,), 256,
        {"train": 7_842, "validation": 435, "test": 435},
        f"tfds' tiny_shakespeare (Karpathy 2015) as bytes, sequences of "
        f"{builders.SEQUENCE_LENGTH} (needs the tfds data or a network)"),
}


def names():
    """The built-in dataset names (any other name goes to tfds)."""
    return list(INFOS)


def info(name):
    """The DatasetInfo of a built-in dataset."""
    if name not in INFOS:
        raise DatasetError(f"unknown dataset {name!r}; built-in datasets: {names()}."
                           + did_you_mean(name, names()))
    return INFOS[name]


def point_measures(name):
    """The keyword arguments of :func:`zoo.metrics.sample_quality.evaluate_points`
    that give dataset `name`'s own metrics (its info's ``point_metrics``): the
    modes and standard deviation of a Gaussian mixture (8gaussians: modes covered,
    high-quality fraction); {} for any other dataset."""
    return dict(toy.MIXTURES.get(name, {}))


def did_you_mean(name, known):
    """`` Did you mean 'x'?`` for the names of `known` close to `name`, or ""."""
    close = difflib.get_close_matches(str(name), known, n=3)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def default_data_dir():
    return os.environ.get("ZOO_DATA_DIR") or None  # None: tfds' default


def _prepared(builder, name):
    """The builder, its data prepared. The zoo's own builders read data this machine
    has, so instead of tfds' download banner and progress bars they say so in one
    line on stderr, once."""
    own = isinstance(builder, (builders.ZooToy2d, builders.ZooDigits, builders.ZooFashionMnist,
                               builders.ZooFortunes))
    try:
        if own and not builder.is_prepared():
            print(f"zoo: preparing dataset {name!r} (once) in {builder.data_dir}",
                  file=sys.stderr, flush=True)
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                builder.download_and_prepare()
        else:
            builder.download_and_prepare()
    except IDXError as e:
        raise DatasetError(f"dataset {name!r}: {e}") from e
    return builder


def _builder(name, data_dir):
    import tensorflow_datasets as tfds

    if name in toy.TOY_NAMES:
        return _prepared(builders.ZooToy2d(config=name, data_dir=data_dir), name)
    if name == "digits":
        return _prepared(builders.ZooDigits(data_dir=data_dir), name)
    if name == "fashion_mnist":
        folder = builders.fashion_mnist_dir()
        if os.path.isdir(folder):
            return _prepared(builders.ZooFashionMnist(data_dir=data_dir), name)
        try:
            return _prepared(tfds.builder("fashion_mnist", data_dir=data_dir), name)
        except Exception as e:  # no network, no tfds data
            raise DatasetError(
                f"dataset 'fashion_mnist': no IDX files in {folder} and tfds' own download "
                f"failed ({type(e).__name__}: {str(e)[:200]}). Install them with "
                "`sudo apt-get install dataset-fashion-mnist`, or set ZOO_FASHION_MNIST_DIR "
                "to a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, or give this "
                "machine a network for tfds' download."
            ) from e
    if name == "fortunes":
        folder = builders.fortunes_dir()
        try:
            builders.fortunes_files(folder)
        except FileNotFoundError as e:
            raise DatasetError(
                f"dataset 'fortunes': {e}. Install Debian's English fortune cookies with "
                "`sudo apt-get install fortunes` (`make data` does), or set ZOO_FORTUNES_DIR "
                "to a folder of fortune files holding "
                f"{[n for files in builders.FORTUNES_HELD_OUT.values() for n in files]}."
            ) from None
        return _prepared(builders.ZooFortunes(data_dir=data_dir), name)
    try:
        return _prepared(tfds.builder(name, data_dir=data_dir), name)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(
            f"unknown dataset {name!r}: it is not built in ({names()}) and tfds could not "
            f"provide it ({type(e).__name__}: {str(e)[:300]}). tfds names need the data "
            "already in the tfds data_dir or a network."
        ) from e


def _features(name):
    """Element -> (x, label) as float32 x."""
    if name in toy.TOY_NAMES:
        return lambda e: (e["x"], tf.constant(-1, tf.int64))
    def image(e):
        label = e["label"] if "label" in e else tf.constant(-1, tf.int64)
        return tf.cast(e["image"], tf.float32), label
    return image


def _split_builder(name, split, batch_size, data_dir):
    """The prepared builder of dataset `name`, after checking `batch_size` and that it
    has `split` (for the zoo's own datasets, before anything is built)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DatasetError(f"dataset {name!r}: batch_size must be an int >= 1, got {batch_size!r}")
    if name in INFOS and split not in INFOS[name].splits:
        raise DatasetError(
            f"dataset {name!r} has no split {split!r}; splits: {list(INFOS[name].splits)}"
        )
    builder = _builder(name, data_dir if data_dir is not None else default_data_dir())
    if name not in INFOS and split not in builder.info.splits:
        raise DatasetError(
            f"dataset {name!r} has no split {split!r}; splits: {list(builder.info.splits)}"
        )
    return builder


def load(name, split="train", batch_size=64, *, shuffle=None, repeat=False, data_dir=None,
         seed=0, drop_remainder=False, take=None, with_labels=False):
    """A batched ``tf.data`` pipeline of a dataset's raw values.

    The built-in datasets are held in memory as stored (Fashion-MNIST's training
    split is 47 MB of bytes) and batches are gathered from them; tfds names stream
    example by example through tfds, a cache and a shuffle buffer.

    Args:
        name: a built-in name (``names()``) or any tfds name.
        split: "train" or "test" (any tfds split for tfds names).
        batch_size: examples per batch (>= 1).
        shuffle: shuffle each epoch (seeded); default True for "train" only.
        repeat: repeat forever (then pass ``steps_per_epoch`` to ``fit``).
        data_dir: the tfds data_dir; default $ZOO_DATA_DIR, else tfds' default.
        seed: the shuffle seed.
        drop_remainder: drop a last partial batch.
        take: keep only the first `take` examples (before shuffling).
        with_labels: yield ``(x, label)`` instead of ``x``.
    Returns:
        A ``tf.data.Dataset`` of float32 batches of shape ``(batch,) + info.shape``.
    """
    shuffle = shuffle if shuffle is not None else split == "train"
    if name in INFOS:
        values, labels = _whole_split(name, split, batch_size, data_dir)
        return _in_memory(values, labels, batch_size, shuffle=shuffle, repeat=repeat, seed=seed,
                          drop_remainder=drop_remainder, take=take, with_labels=with_labels)
    builder = _split_builder(name, split, batch_size, data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if take is not None:
        ds = ds.take(int(take))
    ds = ds.map(_features(name), num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        size = builder.info.splits[split].num_examples
        ds = ds.shuffle(min(size, 100_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if not with_labels:
        ds = ds.map(lambda x, label: x)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _in_memory(values, labels, batch_size, *, shuffle, repeat, seed, drop_remainder, take,
               with_labels):
    """``load``'s pipeline for a split held in memory as stored (the built-in
    datasets): only indices flow through ``tf.data``, and each batch is gathered
    and converted to float32 at once. (Shuffling whole examples one by one through
    a shuffle buffer capped the training of small models: 2-D points came at
    25k/s, and every new iterator refilled a 50,000-element buffer.)

    Each pass reads the examples in a permutation drawn from a seed that
    ``tf.data.Dataset.random`` gives it, so passes and new iterators differ from
    each other, and the whole sequence is fixed by `seed`.
    """
    if take is not None:
        values, labels = values[:int(take)], labels[:int(take)]
    values, labels = tf.constant(values), tf.constant(np.asarray(labels, np.int64))
    size = int(values.shape[0])
    if shuffle:
        def permutation(pass_seed):
            return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(
                tf.range(size, dtype=tf.int64), seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)])))

        passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        indices = (passes if repeat else passes.take(1)).flat_map(permutation)
    else:
        indices = tf.data.Dataset.range(size)
        if repeat:
            indices = indices.repeat()
    batches = indices.batch(batch_size, drop_remainder=drop_remainder)

    def gather(i):
        x = tf.cast(tf.gather(values, i), tf.float32)
        return (x, tf.gather(labels, i)) if with_labels else x

    return _without_autotune(batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                         deterministic=True).prefetch(tf.data.AUTOTUNE))


def _without_autotune(ds):
    """`ds` with tf.data's autotuning off. Gathering whole batches from memory
    needs no tuning, and the autotuner's thread made deleting an iterator (at
    the end of every ``fit``) take up to a second at random: a third of a short
    fit's wall time (bench/flows_speed.py)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def arrays(name, split="test", data_dir=None):
    """A whole split in memory as NumPy: ``(values, labels)``, values float32 of
    shape ``(n,) + info.shape`` (raw levels or points), labels int64 (-1 where the
    dataset has none). For the test splits and evaluation; Fashion-MNIST's training
    split is 188 MB as float32."""
    values, labels = _whole_split(name, split, 1, data_dir)
    return values.astype(np.float32), np.asarray(labels, np.int64)


def _whole_split(name, split, batch_size, data_dir):
    """A whole split as stored (uint8 images, float points) and its labels (-1
    where there are none), after ``_split_builder``'s checks; read-only arrays.

    Each split of each prepared dataset folder is read once per process (the
    last ``_SPLITS_KEPT`` are kept): through tfds it took 1.2-1.8 s for the
    50,000 points of a 2-D density and 2.3 s for Fashion-MNIST's training images,
    at every training run, evaluation and pipeline built. Every caller copies
    what it keeps, so the arrays are made read-only.
    """
    builder = _split_builder(name, split, batch_size, data_dir)
    key = (name, split, os.fspath(builder.data_dir))
    if key not in _SPLITS:
        values, labels = _read_split(name, builder, split)
        for array in (values, labels):
            array.flags.writeable = False
        while len(_SPLITS) >= _SPLITS_KEPT:
            _SPLITS.pop(next(iter(_SPLITS)))
        _SPLITS[key] = values, labels
    return _SPLITS[key]


def _read_split(name, builder, split):
    """A whole split that tfds holds, as ``(values, labels)``: points, images, or
    for the text datasets byte sequences. tfds' own text datasets hold a split as
    strings: they are read one by one and cut as the zoo's own are
    (:func:`builders.byte_sequences`)."""
    import tensorflow_datasets as tfds

    if INFOS.get(name) and INFOS[name].kind == "text" and not isinstance(
            builder, builders.ZooFortunes):
        text = b"".join(e["text"] for e in tfds.as_numpy(
            builder.as_dataset(split=split, shuffle_files=False)))
        values = builders.byte_sequences(text, INFOS[name].shape[0])
        return values, np.full(len(values), -1)
    whole = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    values = whole["x"] if name in toy.TOY_NAMES else whole.get("image", whole.get("text"))
    return values, whole.get("label", np.full(len(values), -1))


_SPLITS = {}  # (name, split, prepared folder) -> (values, labels), oldest first
_SPLITS_KEPT = 6


def training_epochs(name, batch_size, epochs, *, first_epoch=0, steps_per_epoch=None, seed=0,
                    data_dir=None, split="train", num_classes=0):
    """The training pipeline of epochs ``first_epoch`` .. ``epochs - 1``, for one ``fit``.

    Epoch ``e`` reads the split in an order drawn statelessly from ``(seed, e)``
    alone: one pass (the last batch may be partial), or, with `steps_per_epoch`,
    that many batches of passes in fresh orders. So a resumed run reads exactly
    the batches a run that never stopped would have read. The split is held in
    memory as it is stored (Fashion-MNIST's 60,000 images are 47 MB of bytes) and
    converted to float32 batch by batch.

    With ``num_classes > 0`` (a class-conditional model) the batches are
    ``(x, label)``, and every label must lie in ``[0, num_classes)``.

    Returns:
        ``(dataset, steps_per_epoch)``: the batches of all those epochs in a row,
        and how many make one epoch (pass both to ``fit``).
    Raises:
        DatasetError: labels asked of a dataset without them, or out of range.
    """
    values, labels = _whole_split(name, split, batch_size, data_dir)
    values = tf.constant(values)
    if num_classes:
        labels = np.asarray(labels, np.int64)
        if labels.size and labels.min() < 0:
            raise DatasetError(f"dataset {name!r} has no class labels; a class-conditional "
                               f"model (num_classes={num_classes}) trains on labelled data")
        if labels.size and labels.max() >= num_classes:
            raise DatasetError(f"dataset {name!r} has labels up to {labels.max()}, but the "
                               f"model has num_classes={num_classes}; expected "
                               f"num_classes >= {labels.max() + 1}")
        labels = tf.constant(labels)
    size = int(values.shape[0])
    steps = steps_per_epoch or -(-size // batch_size)
    passes = -(-steps * batch_size // size) if steps_per_epoch else 1
    seed = tf.constant(seed, tf.int64)

    def order(epoch, index):
        """A permutation of the split, from the stateless seed (seed, epoch, pass)."""
        keys = tf.random.stateless_uniform([size], seed=tf.stack([seed, epoch * 65536 + index]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

    def epoch(e):
        indices = tf.data.Dataset.range(passes).flat_map(lambda k: order(e, k))
        return indices.batch(batch_size).take(steps)

    ds = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch)
    if num_classes:
        def gather(i):
            return tf.cast(tf.gather(values, i), tf.float32), tf.gather(labels, i)
    else:
        def gather(i):
            return tf.cast(tf.gather(values, i), tf.float32)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _without_autotune(ds.prefetch(tf.data.AUTOTUNE)), steps


__all__ = ["DatasetError", "DatasetInfo", "arrays", "info", "load", "names", "training_epochs"]
