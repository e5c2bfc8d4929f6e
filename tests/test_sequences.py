"""Sequences: the text datasets (fortunes split by file, tiny_shakespeare through
tfds on data made here) and the autoregressive sequence models."""

import os

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.datasets import DatasetError, builders


def fortune_folder(path, sizes):
    """A folder of fortune files `name -> size` of made-up bytes (each file its own
    letter), with strfile's .dat indices and a .u8 link beside them, as Debian has."""
    path.mkdir()
    contents = {}
    for i, (name, size) in enumerate(sorted(sizes.items())):
        contents[name] = bytes([ord("A") + i % 26]) * size
        (path / name).write_bytes(contents[name])
        (path / f"{name}.dat").write_bytes(b"\0" * 24)
        os.symlink(name, path / f"{name}.u8")
    return contents


HELD_OUT = {n: 300 for files in builders.FORTUNES_HELD_OUT.values() for n in files}


def test_fortunes_split_is_fixed_and_by_file(tmp_path, monkeypatch):
    contents = fortune_folder(tmp_path / "games", {"art": 1000, "zippy": 700, "cookie": 200,
                                                   **HELD_OUT})
    monkeypatch.setenv("ZOO_FORTUNES_DIR", str(tmp_path / "games"))
    data_dir = str(tmp_path / "tfds")
    for split, names in (("train", ["art", "cookie", "zippy"]),
                         *builders.FORTUNES_HELD_OUT.items()):
        values, labels = zoo.datasets.arrays("fortunes", split, data_dir)
        text = b"".join(contents[n] for n in sorted(names))  # the files in name order
        n = len(text) // 128
        assert values.shape == (n, 128) and np.all(labels == -1)
        assert bytes(values.astype(np.uint8).ravel()) == text[:n * 128]
    # No byte of a held-out file is in the training split.
    train = zoo.datasets.arrays("fortunes", "train", data_dir)[0]
    held_out = {ord("A") + i for i, name in enumerate(sorted(contents)) if name in HELD_OUT}
    assert not held_out & set(np.unique(train).astype(int))


def test_missing_fortunes_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_FORTUNES_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="apt-get install fortunes.*ZOO_FORTUNES_DIR"):
        zoo.datasets.load("fortunes", data_dir=str(tmp_path / "tfds"))
    fortune_folder(tmp_path / "some", {"art": 500, "law": 500})  # held-out files missing
    monkeypatch.setenv("ZOO_FORTUNES_DIR", str(tmp_path / "some"))
    with pytest.raises(DatasetError, match="no fortune files.*'education'.*apt-get install"):
        zoo.datasets.load("fortunes", data_dir=str(tmp_path / "tfds"))


@pytest.mark.skipif(not os.path.exists(os.path.join(builders.FORTUNES_DIR, "cookie"))
                    and not os.environ.get("ZOO_REQUIRE_DATA"),
                    reason="the Debian package fortunes is not installed "
                           "(`make data`; CI installs it and sets ZOO_REQUIRE_DATA)")
def test_real_fortunes_files_give_the_stated_splits():
    files = builders.fortunes_files(builders.FORTUNES_DIR)
    sizes = {split: sum(os.path.getsize(os.path.join(builders.FORTUNES_DIR, n)) for n in names)
             // builders.SEQUENCE_LENGTH for split, names in files.items()}
    assert sizes == zoo.datasets.info("fortunes").splits
    assert "cookie" in files["train"] and "fortunes" in files["train"]


def test_tiny_shakespeare_through_tfds(tmp_path):
    """tfds' tiny_shakespeare holds each split as one string: here strings made by
    the test stand in for its files (tfds' mock), cut into byte sequences."""
    import tensorflow_datasets as tfds

    text = {"train": b"First Citizen:\n" * 40, "validation": b"abc" * 100, "test": b"xy" * 64}

    def as_dataset(builder, split, **kwargs):
        half = len(text[split]) // 2  # a split in two strings: read one after another
        return tf.data.Dataset.from_tensor_slices({"text": [text[split][:half],
                                                            text[split][half:]]})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        for split in text:
            values, labels = zoo.datasets.arrays("tiny_shakespeare", split,
                                                 str(tmp_path / "tfds"))
            n = len(text[split]) // 128
            assert values.shape == (n, 128) and values.dtype == np.float32
            assert bytes(values.astype(np.uint8).ravel()) == text[split][:n * 128]
    info = zoo.datasets.info("tiny_shakespeare")
    assert info.kind == "text" and info.num_levels == 256 and info.shape == (128,)
