"""Datasets: tfds builders on data the tests make, toy densities, clear errors."""

import gzip
import os

import numpy as np
import pytest

import zoo
from zoo.datasets import DatasetError, toy
from zoo.datasets.builders import FASHION_MNIST_DIR
from zoo.datasets.idx import IDXError, read_idx


def write_idx(path, array, compress=True):
    """An IDX file of uint8 `array` (the MNIST format: 00 00 08 ndim, dims, data)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(raw)


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """20 train / 10 test images of 28x28 in IDX files, as $ZOO_FASHION_MNIST_DIR."""
    folder = tmp_path / "idx"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (20, 28, 28)), "test": rng.integers(0, 256, (10, 28, 28))}
    labels = {"train": np.arange(20) % 10, "test": np.arange(10)}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(str(folder / f"{prefix}-images-idx3-ubyte.gz"), images[split])
        write_idx(str(folder / f"{prefix}-labels-idx1-ubyte.gz"), labels[split])
    monkeypatch.setenv("ZOO_FASHION_MNIST_DIR", str(folder))
    return folder, images, labels


def collect(ds):
    return np.concatenate([np.asarray(b) for b in ds])


def test_fashion_mnist_from_idx_files(tiny_fashion, tmp_path):
    folder, images, labels = tiny_fashion
    data_dir = str(tmp_path / "tfds")
    train = collect(zoo.datasets.load("fashion_mnist", "train", 8, shuffle=False, data_dir=data_dir))
    assert train.shape == (20, 28, 28, 1) and train.dtype == np.float32
    np.testing.assert_array_equal(train[..., 0], images["train"])
    test = zoo.datasets.load("fashion_mnist", "test", 4, data_dir=data_dir, with_labels=True)
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in test])
    np.testing.assert_array_equal(np.concatenate(xs)[..., 0], images["test"])
    np.testing.assert_array_equal(np.concatenate(ys), labels["test"])
    assert [len(x) for x in xs] == [4, 4, 2]
    dropped = zoo.datasets.load("fashion_mnist", "test", 4, data_dir=data_dir, drop_remainder=True)
    assert [len(b) for b in dropped] == [4, 4]


def test_shuffle_is_seeded_and_take_keeps_the_first(tiny_fashion, tmp_path):
    data_dir = str(tmp_path / "tfds")
    a = collect(zoo.datasets.load("fashion_mnist", "train", 20, seed=1, data_dir=data_dir))
    b = collect(zoo.datasets.load("fashion_mnist", "train", 20, seed=1, data_dir=data_dir))
    plain = collect(zoo.datasets.load("fashion_mnist", "train", 20, shuffle=False, data_dir=data_dir))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, plain)
    np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(plain.ravel()))
    first = collect(zoo.datasets.load("fashion_mnist", "train", 4, take=5, shuffle=False,
                                      data_dir=data_dir))
    np.testing.assert_array_equal(first, plain[:5])


def test_a_split_is_read_once_per_prepared_folder(tiny_fashion, tmp_path):
    """After the first read a split comes from memory, per prepared folder, as
    read-only arrays; the public readers hand out copies."""
    _, images, _ = tiny_fashion
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    values, labels = zoo.datasets._whole_split("fashion_mnist", "train", 1, first)
    again = zoo.datasets._whole_split("fashion_mnist", "train", 1, first)
    assert again[0] is values and again[1] is labels
    assert not values.flags.writeable and not labels.flags.writeable
    other = zoo.datasets._whole_split("fashion_mnist", "train", 1, second)[0]
    assert other is not values
    np.testing.assert_array_equal(other[..., 0], images["train"])
    copy = zoo.datasets.arrays("fashion_mnist", "train", first)[0]
    copy[:] = 0  # a copy: the kept split is unchanged
    np.testing.assert_array_equal(values[..., 0], images["train"])


def test_each_pass_and_each_new_iterator_reads_a_fresh_permutation(data_dir):
    """The built-in datasets are gathered from memory: every pass of a repeated
    pipeline is a permutation of the whole split, a new one each pass and for each
    new iterator, and the whole sequence is fixed by the seed."""
    size = zoo.datasets.info("digits").splits["train"]
    plain = collect(zoo.datasets.load("digits", "train", size, shuffle=False)).reshape(size, -1)
    row = {r.tobytes(): i for i, r in enumerate(plain)}
    assert len(row) > size - 10  # nearly all digits differ: rows name their index

    def passes(ds, count):
        it = iter(ds)
        flat = np.concatenate([np.asarray(next(it)) for _ in range(count * size // 100)])
        return [[row.get(r.tobytes()) for r in p.reshape(size, -1)]
                for p in np.split(flat, count)]

    def repeated(seed):
        return zoo.datasets.load("digits", "train", 100, repeat=True, seed=seed)  # 15 per pass

    ds = repeated(1)
    first, second = passes(ds, 2), passes(ds, 2)
    for order in first + second:
        assert sorted(i for i in order if i is not None) == sorted(
            i for i in range(size) if i in row.values())
    assert first[0] != first[1] and first[0] != second[0]
    assert passes(repeated(1), 2) == first and passes(repeated(2), 2) != first


def test_corrupt_idx_files(tmp_path):
    good = np.zeros((3, 28, 28), np.uint8)
    path = str(tmp_path / "x.gz")
    write_idx(path, good)
    assert read_idx(path).shape == (3, 28, 28)
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-5])
    with pytest.raises(IDXError, match="corrupt.*need 2352 data bytes, got 2347"):
        read_idx(path)
    with gzip.open(path, "wb") as f:
        f.write(b"\x12\x34" + raw[2:])
    with pytest.raises(IDXError, match="not an IDX file"):
        read_idx(path)
    with pytest.raises(IDXError, match="not found"):
        read_idx(str(tmp_path / "missing.gz"))


def test_corrupt_fashion_mnist_names_the_dataset(tiny_fashion, tmp_path):
    folder = tiny_fashion[0]
    with open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"not gzip at all")
    with pytest.raises(DatasetError, match="fashion_mnist.*train-images-idx3-ubyte.gz"):
        zoo.datasets.load("fashion_mnist", data_dir=str(tmp_path / "tfds"))


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "builder", offline)
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist.*ZOO_FASHION"):
        zoo.datasets.load("fashion_mnist", data_dir=str(tmp_path / "tfds"))


@pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
                    and not os.environ.get("ZOO_REQUIRE_DATA"),
                    reason="the Debian package dataset-fashion-mnist is not installed "
                           "(`make data`; CI installs it and sets ZOO_REQUIRE_DATA)")
def test_real_fashion_mnist_files():
    labels = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    images = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_digits_split(data_dir):
    train = collect(zoo.datasets.load("digits", "train", 500, shuffle=False))
    test = collect(zoo.datasets.load("digits", "test", 500))
    assert train.shape == (1500, 8, 8, 1) and test.shape == (297, 8, 8, 1)
    assert train.min() == 0 and train.max() == 16
    assert np.all(train == np.round(train))
    from sklearn.datasets import load_digits

    every = load_digits().images.reshape(-1, 64)
    rows = {r.tobytes() for r in np.concatenate([train, test]).reshape(-1, 64).astype(np.float64)}
    assert rows == {r.tobytes() for r in every.astype(np.float64)}  # a partition of all
    assert len({r.tobytes() for r in train.reshape(-1, 64)} & {r.tobytes() for r in test.reshape(-1, 64)}) <= 2


@pytest.mark.parametrize("name", toy.TOY_NAMES)
def test_toy_densities_are_seeded(name):
    a, b = toy.generate(name, 1000, 0), toy.generate(name, 1000, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, toy.generate(name, 1000, 1))
    assert a.shape == (1000, 2) and a.dtype == np.float32 and np.all(np.isfinite(a))


def test_toy_density_shapes():
    g = toy.generate("8gaussians", 8000, 0)
    radius = np.linalg.norm(g, axis=1)
    assert abs(np.median(radius) - 4 / 1.414) < 0.1
    angles = np.round(np.arctan2(g[:, 1], g[:, 0]) / (np.pi / 4)) % 8
    assert np.bincount(angles.astype(int), minlength=8).min() > 800  # eight modes
    c = toy.generate("checkerboard", 8000, 0) / 2
    assert np.all(np.abs(c) <= 2)
    assert np.all((np.floor(c[:, 0]) + np.floor(c[:, 1])) % 2 == 0)  # on the black squares
    r = np.linalg.norm(toy.generate("rings", 8000, 0), axis=1)
    for ring in (0.75, 1.5, 2.25, 3.0):
        assert np.mean(np.abs(r - ring) < 0.3) > 0.2
    m = toy.generate("moons", 8000, 0)
    # make_moons has mean (0.5, 0.25); FFJORD maps it by 2x + (-1, -0.2).
    np.testing.assert_allclose(m.mean(0), [0.0, 0.3], atol=0.05)


def test_toy_entropy_matches_exact_values():
    # Checkerboard is uniform on 8 squares of side 2: exactly log 32.
    assert abs(toy.entropy("checkerboard") - np.log(32.0)) < 0.02
    # 8gaussians: Monte Carlo -E log p under its exact mixture density.
    sigma, scale = 0.5 / 1.414, 4.0 / 1.414
    s = 1.0 / np.sqrt(2.0)
    centers = scale * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    x = toy.generate("8gaussians", 200_000, 7).astype(np.float64)
    squared = np.sum((x[:, None, :] - centers[None]) ** 2, axis=-1)
    log_components = -squared / (2 * sigma**2) - np.log(2 * np.pi * sigma**2) - np.log(8.0)
    top = log_components.max(1)
    exact = -np.mean(top + np.log(np.exp(log_components - top[:, None]).sum(1)))
    assert abs(toy.entropy("8gaussians") - exact) < 0.02


def test_toy_dataset_through_tfds(data_dir):
    train = zoo.datasets.load("moons", "train", 1000, take=3000, shuffle=False)
    x = collect(train)
    assert x.shape == (3000, 2)
    np.testing.assert_allclose(x, toy.generate("moons", 50_000, 0)[:3000])
    assert zoo.datasets.info("moons").splits == {"train": 50_000, "test": 10_000}


def test_errors(data_dir):
    with pytest.raises(DatasetError, match="unknown dataset 'no_such_set'.*built in"):
        zoo.datasets.load("no_such_set")
    with pytest.raises(DatasetError, match="no split 'validation'.*'train', 'test'"):
        zoo.datasets.load("digits", "validation")
    with pytest.raises(DatasetError, match="batch_size must be an int >= 1"):
        zoo.datasets.load("digits", batch_size=0)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        zoo.datasets.info("nope")
    assert zoo.datasets.info("digits").num_levels == 17
