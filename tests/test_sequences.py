"""Sequences: the text datasets (fortunes split by file, tiny_shakespeare through
tfds on data made here) and the autoregressive sequence models."""

import os

import keras
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


# ------------------------------------------------------------------ the models
# Tiny sequence models of fortunes' shape (128 bytes): (name, overrides).
MODELS = [("transformer", dict(width=8, num_layers=1, num_heads=2)),
          ("wavenet", dict(residual_channels=4, skip_channels=8, num_layers=3, num_stacks=2))]


def tiny(name, overrides, length=128, num_levels=256):
    """A tiny model of byte sequences of `length`, its weights perturbed."""
    model = zoo.registry.entry(name).cls(data_shape=(length,), num_levels=num_levels,
                                         **overrides)
    perturb_weights(model)
    return model


def perturb_weights(model, seed=0):
    """Every weight moved a little (zero-initialised ones matter too)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype("float32"))


def text(n=3, length=128, seed=0):
    return np.random.default_rng(seed).integers(32, 127, (n, length)).astype("float32")


@pytest.mark.parametrize("name,overrides", MODELS, ids=[m[0] for m in MODELS])
def test_causality(name, overrides):
    """Changing symbol j changes no conditional before j, and changes j's successors'."""
    model = tiny(name, overrides, 32)
    x = text(2, 32)
    base = model.conditional_log_probs(x).numpy()
    assert base.shape == (2, 32)
    np.testing.assert_allclose(base.sum(1), -model.nll(x).numpy(), rtol=1e-5)
    for j in (0, 5, 20, 31):
        changed = x.copy()
        changed[:, j] = (changed[:, j] + 17) % 256
        after = model.conditional_log_probs(changed).numpy()
        np.testing.assert_array_equal(after[:, :j], base[:, :j])
        assert np.all(after[:, j] != base[:, j])  # its own probability
        if j < 31:
            assert np.any(after[:, j + 1:] != base[:, j + 1:])


def naive_samples(model, n, seed, temperature=1.0):
    """Sampling as a plain Python loop: the whole network on the partial sequence,
    then dimension i drawn from its conditional by its own uniforms of the
    observation model's noise, drawn from the seed before the loop."""
    seed = model.stateless_seed(seed)
    x = np.zeros((n,) + model.data_shape, np.float32)
    flat = x.reshape(n, -1)
    noise = model.observation_model.noise([n, model.event_size], seed)
    for i in range(model.event_size):
        params = model.ordered_params(model.params(tf.constant(x)))[:, i]
        params = model.observation_model.temper(params, temperature)
        flat[:, i] = model.observation_model.sample_from_noise(
            params, noise[:, i:i + 1])[:, 0].numpy()
    return x


@pytest.mark.parametrize("name,overrides", MODELS, ids=[m[0] for m in MODELS])
def test_compiled_sampler_equals_a_naive_loop(name, overrides):
    model = tiny(name, overrides, 8)
    compiled = model.sample(3, seed=4, temperature=0.7).numpy()
    np.testing.assert_array_equal(compiled, naive_samples(model, 3, 4, 0.7))


# The attribute that turns each model's cached sampler off: the transformer's
# key/value cache, WaveNet's queues (of dilations up to 4 at MODELS' size: each
# ring buffer wraps around within 16 positions).
CACHES = [(MODELS[0], "kv_cache"), (MODELS[1], "queues")]


@pytest.mark.parametrize("case,cache", CACHES, ids=[m[0][0] for m in CACHES])
def test_cached_sampler_equals_the_uncached_one(case, cache):
    model = tiny(*case, 16)
    uncached = tiny(*case, 16)
    uncached.set_weights(model.get_weights())
    setattr(uncached, cache, False)
    cached = model.sample(4, seed=9, temperature=0.8).numpy()
    np.testing.assert_array_equal(cached, uncached.sample(4, seed=9, temperature=0.8).numpy())
    x, mask = text(2, 16), np.zeros((2, 16), np.float32)
    mask[:, :5] = 1.0  # a prompt
    np.testing.assert_array_equal(model.complete(x, mask, seed=3).numpy(),
                                  uncached.complete(x, mask, seed=3).numpy())


# Slow (17 s of XLA compile): test_autoregressive.py runs the same loop under XLA by default;
# these add the transformer's cached step and WaveNet's queued one.
@pytest.mark.parametrize("name,overrides", [
    pytest.param(*MODELS[0], id=MODELS[0][0], marks=pytest.mark.slow),
    pytest.param(*MODELS[1], id=MODELS[1][0], marks=pytest.mark.slow)])
def test_the_xla_loop_draws_what_the_plain_graph_loop_draws(name, overrides):
    """With ``xla_sampling`` on (off by default: XLA's compile cost more than it
    saved at zoo sample's 64 sequences, bench/autoregressive_sampling.py), the loop
    runs under XLA, eagerly and traced at any n (zoo sample's batches), and draws
    the plain graph's symbols for the same seed: the same uniforms, parameters
    equal to float rounding (fixed weights here; a uniform within rounding of a
    boundary of its inverse CDF would draw the next symbol). The serving
    signature stays a plain graph."""
    keras.utils.set_random_seed(1)
    model = tiny(name, overrides, 16)
    plain = model.sample(4, seed=7, temperature=0.8).numpy()
    model.xla_sampling = True  # (completion under XLA: test_autoregressive.py)
    np.testing.assert_array_equal(model.sample(4, seed=7, temperature=0.8).numpy(), plain)
    batches = list(model.sample_batches(4, seed=7, batch_size=3, temperature=0.8))
    np.testing.assert_array_equal(batches[0], plain[:3])  # the same first uniforms
    assert set(model._xla.functions) == {"generate/graph", "generate"}
    model._xla.functions.clear()
    fn, specs = model.serving_signatures()["sample"]
    served = tf.function(fn, input_signature=specs)(4, 7, 0.8)["samples"].numpy()
    assert not model._xla.functions  # traced inline: no XLA function
    np.testing.assert_array_equal(served, plain)


def test_wavenet_step_equals_its_network_at_each_position():
    """Fast WaveNet's queued step gives each position's logits as the network over
    the whole sequence does (to float rounding: the step's activations run on
    other shapes), past its receptive field of 16 positions."""
    network = tiny(*MODELS[1], 20).wavenet_network
    assert network.receptive_field == 16
    symbols = text(3, 20).astype(np.int32)
    whole = network(symbols).numpy()
    queues = network.empty_queues(3)
    for i in range(20):
        logits, queues = network.step(tf.constant(symbols[:, max(i - 1, 0)]), tf.constant(i),
                                      queues)
        np.testing.assert_allclose(logits.numpy(), whole[:, i], rtol=1e-6, atol=1e-6)


def loop_ops(model):
    """The op types of the sequential loop's body in the graph of the model's
    ``sample`` serving signature (the function an export traces)."""
    fn, specs = model.serving_signatures()["sample"]
    library = tf.function(fn).get_concrete_function(*specs).graph.as_graph_def().library
    bodies = [f for f in library.function if f.signature.name.startswith("while_body")]
    assert len(bodies) == 1
    return {node.op for node in bodies[0].node_def}


def test_wavenet_sample_signature_runs_the_queued_step():
    """Each step of the exported sampler is one position's matrix products: no
    convolution over the sequence (as without the queues)."""
    model = tiny("wavenet", dict(residual_channels=4, skip_channels=8, num_layers=1,
                                 num_stacks=1), 4)  # one block: quick to trace
    ops = loop_ops(model)
    assert "MatMul" in ops and not any(op.startswith("Conv") for op in ops), ops
    model.queues = False
    assert "Conv2D" in loop_ops(model)


@pytest.mark.parametrize("name,overrides", MODELS, ids=[m[0] for m in MODELS])
def test_completion_keeps_the_prompt_bit_for_bit(name, overrides):
    model = tiny(name, overrides, 24)
    x = text(3, 24)
    mask = np.zeros_like(x)
    mask[:, :10] = 1.0
    a = model.complete(x, mask, seed=1).numpy()
    np.testing.assert_array_equal(a[:, :10], x[:, :10])
    assert not np.array_equal(a[:, 10:], x[:, 10:])
    assert np.all((a == np.round(a)) & (a >= 0) & (a < 256))
    b = model.complete(x, mask, seed=2).numpy()
    np.testing.assert_array_equal(b[:, :10], x[:, :10])
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name,overrides", MODELS, ids=[m[0] for m in MODELS])
def test_bad_sequences_give_clear_errors(name, overrides):
    """Longer than the context, symbols outside the vocabulary or not integers:
    clear errors in Python (and inside the exported signatures, below)."""
    model = tiny(name, overrides)
    long, outside, fraction = text(2, 129), text(2), text(2) + 0.5
    outside[0, 3] = 256
    for method in (model.nll, model.conditional_log_probs, model.log_prob):
        with pytest.raises(ValueError, match=r"expected shape \(batch,\) \+ \(128,\), "
                                             r"got \(2, 129\)"):
            method(long)
        with pytest.raises(ValueError, match=r"expected symbols in \[0, 255\], got"):
            method(outside)
        with pytest.raises(ValueError, match="expected integer symbols"):
            method(fraction)
    with pytest.raises(ValueError, match=r"expected shape \(batch,\) \+ \(128,\)"):
        model.complete(long, np.ones_like(long), seed=0)


@pytest.mark.slow  # an export: 40 s on 2 cores
@pytest.mark.parametrize("name,overrides", MODELS, ids=[m[0] for m in MODELS])
def test_bad_sequences_in_exported_signatures(name, overrides, tmp_path):
    model = tiny(name, overrides)
    long, outside = text(2, 129), text(2)
    outside[0, 3] = 256
    path = zoo.savedmodels.export(model, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    for sig in ("log_prob", "conditional_log_probs"):
        fn = loaded.signatures[sig]
        with pytest.raises(Exception, match=r"expected symbols in \[0, 255\]"):
            fn(x=tf.constant(outside))
        with pytest.raises(Exception, match=r"expected .*shape"):
            fn(x=tf.constant(long))
    complete = loaded.signatures["complete"]
    with pytest.raises(Exception, match=r"expected symbols in \[0, 255\]"):
        complete(x=tf.constant(outside), mask=tf.ones_like(outside), seed=tf.constant(0),
                 temperature=tf.constant(1.0))
    np.testing.assert_allclose(loaded.signatures["log_prob"](x=tf.constant(text(2)))["log_prob"],
                               model.log_prob(text(2)), rtol=1e-5)


# ------------------------------------------------------------------ the command
# A tiny run trained and sampled by the command: slow (about 40 s on 2 idle cores).
@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A one-epoch run (2 steps) of a tiny transformer on made-up fortune files."""
    import zoo_cli

    root = tmp_path_factory.mktemp("text")
    english = {"art": b"Hello, world. " * 60, "zippy": b"Are we having fun yet? " * 40}
    folder = root / "games"
    fortune_folder(folder, HELD_OUT)
    for name, content in english.items():
        (folder / name).write_bytes(content)
    before = os.environ.get("ZOO_FORTUNES_DIR")
    os.environ["ZOO_FORTUNES_DIR"] = str(folder)
    try:
        run = root / "run"
        assert zoo_cli.main(["train", "transformer", "--dataset", "fortunes", "--set", "width=8",
                             "--set", "num_layers=1", "--set", "num_heads=2", "--epochs", "1",
                             "--steps-per-epoch", "2", "--batch-size", "8", "--out", str(run),
                             "--data-dir", str(root / "tfds")]) == 0
    finally:
        if before is None:
            os.environ.pop("ZOO_FORTUNES_DIR")
        else:
            os.environ["ZOO_FORTUNES_DIR"] = before
    return run


@pytest.mark.slow
def test_text_samples_are_written_as_text(text_run, capsys):
    """Each epoch's samples, and `zoo sample`'s, go to a .txt where images get a PNG."""
    import zoo_cli

    assert os.listdir(text_run / "samples") == ["epoch_0001.txt"]
    written = (text_run / "samples" / "epoch_0001.txt").read_text(encoding="utf-8")
    assert written.count(zoo.plotting.TEXT_SEPARATOR) == zoo.plotting.EPOCH_SAMPLES["sequences"]
    capsys.readouterr()
    assert zoo_cli.main(["sample", str(text_run), "-n", "3"]) == 0
    path = text_run / "samples" / "sample.txt"
    assert capsys.readouterr().out.splitlines() == [str(path)]
    assert path.read_text(encoding="utf-8").count(zoo.plotting.TEXT_SEPARATOR) == 3


@pytest.mark.slow
def test_sample_with_a_prompt_prints_its_continuations(text_run, capsys, tmp_path):
    import zoo_cli

    out = tmp_path / "continued.txt"
    assert zoo_cli.main(["sample", str(text_run), "-n", "2", "--prompt", "Hello, wor",
                         "--option", "temperature=0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    texts = printed.split(zoo.plotting.TEXT_SEPARATOR + "\n")
    assert len(texts) == 3 and texts[-1] == f"{out}\n"
    for continuation in texts[:2]:
        assert continuation.startswith("Hello, wor")
    assert out.read_text(encoding="utf-8") == printed[:-len(f"{out}\n")]


@pytest.mark.slow
@pytest.mark.parametrize("argv,expected", [
    (["--prompt", "x" * 128], "the prompt is 128 bytes long; expected fewer than the "
                              "model's context of 128 symbols"),
    (["--prompt", "é" * 64], "the prompt is 128 bytes long"),  # bytes, not characters
    (["--out", "x.png"], "are written as .txt; expected a .txt file path"),
])
def test_bad_prompts_are_one_line(text_run, argv, expected, capsys, tmp_path):
    import zoo_cli

    before = sorted(os.listdir(text_run / "samples"))
    assert zoo_cli.main(["sample", str(text_run), *[a.replace("x.png", str(tmp_path / "x.png"))
                                                    for a in argv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error:") and expected in err[0], err
    assert sorted(os.listdir(text_run / "samples")) == before and not os.listdir(tmp_path)


def test_prompt_symbols_outside_the_vocabulary():
    from zoo.runs import RunError, prompt_symbols

    ascii_model = tiny(*MODELS[0], 16, num_levels=128)  # a vocabulary of ASCII
    np.testing.assert_array_equal(prompt_symbols(ascii_model, "Hi"), [72, 105])
    with pytest.raises(RunError, match=r"outside the model's vocabulary of 128 symbols "
                                       r"\(169, 195\); expected bytes below 128"):
        prompt_symbols(ascii_model, "café")
    image_model = zoo.get("transformer", dataset="digits", **MODELS[0][1])
    with pytest.raises(RunError, match="--prompt is for models of text.*images"):
        prompt_symbols(image_model, "Hi")


@pytest.mark.slow
def test_compare_on_text(text_run, tmp_path):
    """`zoo compare` of text: bits per symbol in the table, the samples as text."""
    import zoo_cli

    data_dir = str(text_run.parent / "tfds")
    out = tmp_path / "compare"
    assert zoo_cli.main(["compare", "fortunes", str(text_run), "--out", str(out),
                         "--data-dir", data_dir]) == 0
    assert sorted(os.listdir(out)) == ["index.html", "samples.txt", "table.csv", "table.md"]
    table = (out / "table.md").read_text()
    assert "bits/symbol" in table and "| discrete |" in table
    assert (out / "samples.txt").read_text(encoding="utf-8").startswith("== run\n")
