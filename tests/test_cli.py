"""The `zoo` command and its run folders, on tiny models (in-process where possible).

Every bad-input case runs the command and checks its exit code, its one
``zoo: error:`` line, and that no file of the run changed.
"""

import csv
import errno
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo_cli as cli
from helpers import events, hparams
from zoo import datasets, plotting, runs, training
from zoo.savedmodels.serve import SERVER

TINY_MOONS = ["--dataset", "moons", "--set", "hidden_units=8", "--set", "num_couplings=2",
              "--steps-per-epoch", "3", "--batch-size", "32"]
TINY_NICE_DIGITS = ["--dataset", "digits", "--set", "hidden_units=8", "--set", "num_hidden=1",
                    "--steps-per-epoch", "2", "--batch-size", "32"]
TINY_WGAN = ["--dataset", "moons", "--set", "hidden_units=8", "--set", "num_hidden=1",
             "--steps-per-epoch", "3", "--batch-size", "32"]


def zoo(*argv):
    """Runs `zoo argv...` in this process; returns the exit code."""
    return cli.main([str(a) for a in argv])


def read(path):
    with open(path) as f:
        return json.load(f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def files(folder):
    """{relative path: sha256} of every file under `folder` (nothing if missing)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = hashlib.sha256(read_bytes(path)).hexdigest()
    return found


def one_error_line(capsys, expected):
    """The command's stderr is one `zoo: error:` line holding `expected`."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("zoo: warning:")]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    assert expected in lines[0], err
    return lines[0]


def pasted(line):
    """The `zoo ...` command quoted in an error line, as argv (without `zoo`)."""
    commands = re.findall(r"`(zoo [^`]*)`", line)
    assert len(commands) == 1, line
    return shlex.split(commands[0])[1:]


def same_state(a, b):
    """True if two models have bitwise equal weights and optimizer variables."""
    pairs = list(zip(a.weights, b.weights)) + list(zip(a.optimizer.variables,
                                                      b.optimizer.variables))
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def finished_run(tmp_path_factory, data_dir, epochs):
    run = tmp_path_factory.mktemp("runs") / f"epochs{epochs}"
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", epochs, "--out", run,
               "--data-dir", data_dir) == 0
    return run


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory, data_dir):
    """A finished one-epoch run of a tiny RealNVP on moons (3 steps of 32)."""
    return finished_run(tmp_path_factory, data_dir, 1)


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory, data_dir):
    """A finished three-epoch run of the same model (checkpoints 1, 2 and 3)."""
    return finished_run(tmp_path_factory, data_dir, 3)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, data_dir):
    """A finished one-epoch run of a tiny NICE on digits (2 steps of 32)."""
    run = tmp_path_factory.mktemp("runs") / "nice-digits"
    assert zoo("train", "nice", *TINY_NICE_DIGITS, "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    return run


def copy_run(run, tmp_path, name="copy"):
    return shutil.copytree(run, tmp_path / name)


def diverge(run):
    """Adds epoch 2 to `run`: its checkpoint, with NaN weights, as the last good one."""
    model, _, _ = runs.load_checkpoint(run)
    for w in model.trainable_weights:
        w.assign(np.full(w.shape, np.nan, np.float32))
    model.save(str(run / "checkpoints" / "epoch_0002.keras"))
    runs.write_json(str(run / "checkpoints" / "latest.json"),
                    {"epoch": 2, "file": "epoch_0002.keras"})


# ------------------------------------------------------------------ train / resume
def test_train_writes_the_run_folder(moons_run):
    run = read(moons_run / "run.json")
    assert run["model"] == "realnvp" and run["dataset"] == "moons"
    assert run["overrides"] == {"hidden_units": 8, "num_couplings": 2}
    assert run["training"]["steps_per_epoch"] == 3 and run["training"]["batch_size"] == 32
    assert run["training"]["learning_rate"] == 1e-3  # the preset's
    assert run["seed"] == 0 and run["zoo_version"]
    assert os.path.isfile(moons_run / "checkpoints" / "epoch_0001.keras")
    assert read(moons_run / "checkpoints" / "latest.json") == {
        "epoch": 1, "file": "epoch_0001.keras"}
    with Image.open(moons_run / "samples" / "epoch_0001.png") as image:
        assert image.size == (plotting.SCATTER_SIZE, plotting.SCATTER_SIZE)
    history = read(moons_run / "history.json")
    assert [r["epoch"] for r in history] == [1]
    assert math.isfinite(history[0]["loss"]) and "bits_per_dim" in history[0]
    assert history[0]["learning_rate"] == 1e-3
    events = [f for _, _, names in os.walk(moons_run / "logs") for f in names
              if f.startswith("events.out.tfevents")]
    assert events, "no TensorBoard event file under logs/"
    assert not [n for n in os.listdir(moons_run / "checkpoints") if n.startswith(".tmp")]


def test_resume_continues_exactly(moons_run, three_epochs, tmp_path, data_dir):
    resumed = copy_run(moons_run, tmp_path, "resumed")
    assert zoo("train", "realnvp", "--out", resumed, "--resume", "--epochs", 2,
               "--data-dir", data_dir) == 0
    assert read(resumed / "checkpoints" / "latest.json")["epoch"] == 2
    history = read(resumed / "history.json")
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[0] == read(moons_run / "history.json")[0]
    assert read(resumed / "run.json")["training"]["epochs"] == 2
    model, _, latest = runs.load_checkpoint(resumed)
    assert latest.file == "epoch_0002.keras"
    assert int(model.optimizer.iterations) == 2 * 3  # two epochs of 3 steps

    # The same two epochs without interruption give the same bits.
    reference = runs.load_model_file(str(three_epochs / "checkpoints" / "epoch_0002.keras"))
    assert same_state(model, reference)


def test_validation_is_chosen_and_trains_nothing(moons_run, three_epochs, tmp_path, data_dir,
                                                 capsys):
    """The test split's loss terms every epoch by default on moons (history.json,
    TensorBoard's validation run); `--validate-every` changes that on resume, and
    the training is the same bits either way."""
    assert read(moons_run / "run.json")["training"]["validate_every"] == 1
    validated = read(moons_run / "history.json")[0]
    assert {"val_loss", "val_bits_per_dim"} <= set(validated)
    [(step, value)] = events(moons_run / "logs" / "validation")["epoch_loss"][1]
    assert step == 0 and value == np.float32(validated["val_loss"])

    resumed = copy_run(moons_run, tmp_path, "unvalidated")
    capsys.readouterr()
    assert zoo("train", "realnvp", "--out", resumed, "--resume", "--epochs", 2,
               "--validate-every", 0, "--data-dir", data_dir, "--quiet") == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("run: ") and "Epoch" not in printed.out  # no Keras bar
    assert read(resumed / "run.json")["training"]["validate_every"] == 0
    second = read(resumed / "history.json")[1]
    assert "loss" in second and not [k for k in second if k.startswith("val_")]
    assert [s for s, _ in events(resumed / "logs" / "validation")["epoch_loss"][1]] == [0]
    reference = runs.load_model_file(str(three_epochs / "checkpoints" / "epoch_0002.keras"))
    assert same_state(runs.load_checkpoint(resumed)[0], reference)  # validated every epoch


def test_tensorboard_shows_the_samples_and_density_of_2d_data(moons_run):
    train = events(moons_run / "logs" / "train")
    assert {"epoch_loss", "epoch_bits_per_dim", "epoch_learning_rate"} <= set(train)
    plugin, [(step, image)] = train["samples"]
    assert plugin == "images" and step == 0
    with Image.open(moons_run / "samples" / "epoch_0001.png") as png:
        assert np.array_equal(tf.io.decode_png(image[2]).numpy(), np.asarray(png))
    plugin, [(step, image)] = train["density"]  # a flow on 2-D points has a density
    assert plugin == "images" and step == 0
    height, width = tf.io.decode_png(image[2]).shape[:2]
    assert height == plotting.SCATTER_SIZE and width > 2 * plotting.SCATTER_SIZE
    found = hparams(moons_run / "logs")
    assert found["model"] == "realnvp" and found["dataset"] == "moons"
    assert found["hidden_units"] == 8 and found["batch_size"] == 32
    assert found["learning_rate"] == pytest.approx(1e-3) and found["validate_every"] == 1


@pytest.mark.parametrize("argv, expected", [
    (["--batch-size", "7"], "batch_size"),
    (["--dataset", "digits"], "dataset"),
    (["--seed", "5"], "seed"),
    (["--set", "hidden_units=9"], "overrides"),
])
def test_resume_refuses_conflicting_settings(argv, expected, moons_run, capsys):
    before = files(moons_run)
    assert zoo("train", "realnvp", "--out", moons_run, "--resume", *argv) == 2
    one_error_line(capsys, expected)
    assert files(moons_run) == before


def test_sample_every_draws_grids_every_n_epochs_and_after_the_last(
        moons_run, three_epochs, tmp_path, data_dir):
    """Every epoch's grid by default; `--sample-every N` draws one at the epochs N
    divides and after the last, 0 none; it may change on resume, and the training
    is the same bits either way."""
    assert read(moons_run / "run.json")["training"]["sample_every"] == 1
    resumed = copy_run(moons_run, tmp_path, "sparse")
    assert zoo("train", "realnvp", "--out", resumed, "--resume", "--epochs", 2,
               "--sample-every", 0, "--data-dir", data_dir, "--quiet") == 0
    assert read(resumed / "run.json")["training"]["sample_every"] == 0
    assert sorted(os.listdir(resumed / "samples")) == ["epoch_0001.png"]
    reference = runs.load_model_file(str(three_epochs / "checkpoints" / "epoch_0002.keras"))
    assert same_state(runs.load_checkpoint(resumed)[0], reference)

    assert zoo("train", "realnvp", "--out", resumed, "--resume", "--epochs", 5,
               "--sample-every", 3, "--data-dir", data_dir, "--quiet") == 0
    assert sorted(os.listdir(resumed / "samples")) == [
        "epoch_0001.png", "epoch_0003.png", "epoch_0005.png"]


@pytest.mark.parametrize("key", ["validate_every", "sample_every"])
def test_every_settings_are_non_negative_integers(moons_run, tmp_path, capsys, key):
    """`--validate-every` and `--sample-every`: a negative count is one
    `zoo: error:` line; in Python a float or a bool is a RunError naming it."""
    run = copy_run(moons_run, tmp_path)
    flag = "--" + key.replace("_", "-")
    capsys.readouterr()
    assert zoo("train", "realnvp", "--out", run, "--resume", flag, -1) == 2
    one_error_line(capsys, f"argument {flag}: expected a non-negative integer, got '-1'")
    for bad in (1.5, True):
        with pytest.raises(runs.RunError, match=rf"{key} must be an integer >= 0 "
                                                rf"\(0: never\), got {bad}"):
            training.train("realnvp", None, run, resume=True, **{key: bad})


def test_new_run_refuses_a_folder_with_checkpoints(moons_run, capsys):
    before = files(moons_run)
    assert zoo("train", "wgan_gp", "--out", moons_run, "--resume") == 2
    one_error_line(capsys, "model")
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", moons_run) == 2
    one_error_line(capsys, "--resume")
    assert files(moons_run) == before


def test_resume_of_a_finished_run_says_so(moons_run, capsys):
    before = files(moons_run)
    assert zoo("train", "realnvp", "--out", moons_run, "--resume") == 0
    assert "finished" in capsys.readouterr().out
    assert files(moons_run) == before


def test_resume_rebuilds_a_lost_index_from_the_newest_checkpoint(three_epochs, tmp_path,
                                                                  capsys, data_dir):
    run = copy_run(three_epochs, tmp_path, "c2")
    os.remove(run / "checkpoints" / "latest.json")
    kept = {name: read_bytes(run / "checkpoints" / name) for name in runs.checkpoint_files(run)}
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 4,
               "--data-dir", data_dir) == 0
    out = capsys.readouterr()
    assert "latest.json is missing" in out.err and "resuming" in out.out
    assert "at epoch 4 of 4" in out.out
    assert [r["epoch"] for r in read(run / "history.json")] == [1, 2, 3, 4]
    assert read(run / "history.json")[:3] == read(three_epochs / "history.json")
    for name in ("epoch_0002.keras", "epoch_0003.keras"):  # never rewritten
        assert read_bytes(run / "checkpoints" / name) == kept[name]
    assert read(run / "checkpoints" / "latest.json")["epoch"] == 4
    # Only the last KEEP_CHECKPOINTS are kept.
    assert runs.checkpoint_files(run) == [runs.checkpoint_name(e) for e in (2, 3, 4)]


def test_resume_of_an_empty_folder_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert zoo("train", "realnvp", "--out", empty, "--resume") == 2
    one_error_line(capsys, "nothing to resume")
    assert os.listdir(empty) == []
    assert zoo("train", "realnvp", "--out", tmp_path / "missing", "--resume") == 2
    one_error_line(capsys, "nothing to resume")
    assert not os.path.exists(tmp_path / "missing")


def test_a_truncated_checkpoint_falls_back_to_the_intact_one(three_epochs, tmp_path, capsys,
                                                             data_dir):
    run = copy_run(three_epochs, tmp_path, "truncated")
    newest = run / "checkpoints" / "epoch_0003.keras"
    with open(newest, "r+b") as f:
        f.truncate(100)
    intact = {n: read_bytes(run / "checkpoints" / n) for n in ("epoch_0001.keras",
                                                              "epoch_0002.keras")}
    png, base = tmp_path / "s.png", tmp_path / "savedmodels"
    for argv in (["sample", run, "--out", png], ["evaluate", run],
                 ["export", run, "--base", base]):
        assert zoo(*argv) == 0, argv
        err = capsys.readouterr().err
        assert "epoch_0003.keras" in err and "truncated" in err and "epoch_0002.keras" in err
    assert read(run / "metrics.json")["epoch"] == 2
    assert zoo("train", "realnvp", "--out", run, "--resume", "--data-dir", data_dir) == 0
    assert "resuming" in capsys.readouterr().out
    for name, data in intact.items():
        if name in runs.checkpoint_files(run):
            assert read_bytes(run / "checkpoints" / name) == data
    model, _, latest = runs.load_checkpoint(run)  # epoch 3 trained again, intact now
    assert latest.epoch == 3 and int(model.optimizer.iterations) == 9


# ------------------------------------------------------------------ NaN / Inf
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        moons_run, tmp_path, monkeypatch, capsys, data_dir):
    from zoo.flows.realnvp import RealNVP

    run = copy_run(moons_run, tmp_path, "diverging")
    before = files(run / "checkpoints")
    good = run / "checkpoints" / "epoch_0001.keras"
    original = RealNVP.compute_losses

    def nan_losses(self, x, training=False):
        return {k: v * float("nan") for k, v in original(self, x, training).items()}

    monkeypatch.setattr(RealNVP, "compute_losses", nan_losses)
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 3,
               "--data-dir", data_dir) == 3
    line = one_error_line(capsys, "non-finite")
    assert "epoch 2" in line and str(good) in line
    assert f"`zoo train realnvp --out {run} --resume --lr 0.0001 --data-dir {data_dir}`" in line
    assert files(run / "checkpoints") == before
    assert len(read(run / "history.json")) == 1
    monkeypatch.setattr(RealNVP, "compute_losses", original)
    assert zoo(*pasted(line)) == 0  # the command works as pasted
    assert read(run / "checkpoints" / "latest.json")["epoch"] == 3


def test_non_finite_stop_checks_every_logged_value():
    class Model:
        stop_training = False

    guard = training.NonFiniteStop()
    guard.set_model(Model())
    guard.on_epoch_begin(4)
    guard.on_train_batch_end(0, {"critic_loss": np.float32(1.0), "wasserstein": 2.0})
    assert guard.failure is None and not guard.model.stop_training
    guard.on_train_batch_end(1, {"critic_loss": 1.0, "wasserstein": np.array(float("inf"))})
    assert guard.model.stop_training
    assert guard.failure == {"epoch": 5, "batch": 1, "values": {"wasserstein": float("inf")}}


def test_a_diverged_checkpoint_is_not_evaluated_sampled_or_exported(moons_run, tmp_path,
                                                                     capsys):
    run = copy_run(moons_run, tmp_path, "n3")
    diverge(run)
    before = files(run)
    png, npy, base = tmp_path / "s.png", tmp_path / "s.npy", tmp_path / "savedmodels"
    for argv in (["sample", run, "--out", png, "--npy", npy], ["sample", run],
                 ["export", run, "--base", base], ["evaluate", run]):
        assert zoo(*argv) == 3, argv
        one_error_line(capsys, f"checkpoint {run / 'checkpoints' / 'epoch_0002.keras'} holds "
                               "non-finite weights")
    assert files(run) == before
    assert sorted(os.listdir(tmp_path)) == ["n3"]


def test_a_last_update_that_breaks_the_model_is_not_saved(tmp_path, monkeypatch, capsys,
                                                          data_dir):
    """As with `--lr 1e6`: the logged losses (before each update) are finite, but the
    model the epoch ends with gives NaN, so no checkpoint is written, and the run
    starts again with a lower rate."""
    from zoo.flows.realnvp import RealNVP

    original = RealNVP.compute_losses

    def broken_after_the_update(self, x, training=False):
        terms = original(self, x, training)
        return terms if training else {k: v * float("nan") for k, v in terms.items()}

    monkeypatch.setattr(RealNVP, "compute_losses", broken_after_the_update)
    run = tmp_path / "n3"
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", 2, "--out", run,
               "--data-dir", data_dir) == 3
    line = one_error_line(capsys, "epoch 1 (after its last update, on a fixed batch)")
    assert "no checkpoint was written" in line and "--lr 0.0001" in line
    assert runs.checkpoint_files(run) == []
    monkeypatch.setattr(RealNVP, "compute_losses", original)
    assert zoo(*pasted(line)) == 0  # the command works as pasted
    assert read(run / "run.json")["training"]["learning_rate"] == 1e-4
    assert [r["learning_rate"] for r in read(run / "history.json")] == [1e-4, 1e-4]


def test_resume_with_a_lower_learning_rate_is_recorded(moons_run, tmp_path, capsys, data_dir):
    run = copy_run(moons_run, tmp_path, "lower")
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2, "--lr", "1e-4",
               "--data-dir", data_dir) == 0
    settings = read(run / "run.json")
    assert settings["training"]["learning_rate"] == 1e-4
    assert settings["learning_rate_changes"] == [{"epoch": 2, "from": 1e-3, "to": 1e-4}]
    assert [r["learning_rate"] for r in read(run / "history.json")] == [1e-3, 1e-4]
    model, _, _ = runs.load_checkpoint(run)
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 1e-4, rtol=1e-6)


# ------------------------------------------------------------------ sample / evaluate / export
def test_sample_writes_a_png(moons_run, tmp_path, capsys):
    out = tmp_path / "points.png"
    assert zoo("sample", moons_run, "-n", 50, "--seed", 3, "--out", out) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "zoo: sample:" not in captured.err  # one batch: no progress to show
    with Image.open(out) as image:
        assert image.size == (plotting.SCATTER_SIZE, plotting.SCATTER_SIZE)
        assert len(image.getcolors(1 << 16)) > 1  # something was drawn


def test_sample_many_in_bounded_batches(moons_run, tmp_path, capsys):
    out, npy = tmp_path / "many.png", tmp_path / "many.npy"
    assert zoo("sample", moons_run, "-n", 2500, "--out", out, "--npy", npy) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out), str(npy)]
    assert re.fullmatch(r"zoo: sample: 2500/2500 samples in [\d.]+ s \([\d.]+ samples/s\)\n",
                        captured.err), captured.err
    quiet = tmp_path / "quiet.npy"
    assert zoo("sample", moons_run, "-n", 2500, "--out", out, "--npy", quiet, "--quiet") == 0
    captured_quietly = capsys.readouterr()
    assert captured_quietly.err == "" and \
        captured_quietly.out == captured.out.replace(str(npy), str(quiet))
    samples = np.load(npy)
    assert samples.shape == (2500, 2) and np.all(np.isfinite(samples))
    model, _, _ = runs.load_checkpoint(moons_run)
    np.testing.assert_allclose(samples[:1000], model.sample(1000, seed=0), rtol=1e-6)
    assert len(np.unique(samples, axis=0)) == 2500  # every batch has its own seed
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_sample_with_sampler_options(moons_run, tmp_path, capsys, data_dir):
    npy = tmp_path / "cool.npy"
    assert zoo("sample", moons_run, "-n", 50, "--option", "temperature=0.5", "--npy", npy,
               "--out", tmp_path / "cool.png") == 0
    model, _, _ = runs.load_checkpoint(moons_run)
    np.testing.assert_allclose(np.load(npy), model.sample(50, seed=0, temperature=0.5),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.load(npy), model.sample(50, seed=0), rtol=1e-3)

    # A class-conditional GAN's label.
    run = tmp_path / "sngan"
    assert zoo("train", "sngan", "--dataset", "digits", "--set", "num_classes=10", "--set",
               "filters=4", "--set", "latent_dim=4", "--steps-per-epoch", 1, "--batch-size",
               16, "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    assert zoo("sample", run, "-n", 16, "--option", "label=3", "--npy", tmp_path / "3.npy") == 0
    model, _, _ = runs.load_checkpoint(run)
    np.testing.assert_allclose(np.load(tmp_path / "3.npy"), model.sample(16, seed=0, label=3),
                               rtol=1e-5, atol=1e-5)
    before = files(run)
    capsys.readouterr()
    assert zoo("sample", run, "--option", "label=3.5") == 2
    one_error_line(capsys, "sampler option label: expected an integer (label > -2 and "
                           "label < 10), got 3.5")
    assert zoo("sample", run, "--option", "label=10") == 2
    one_error_line(capsys, "expected label > -2 and label < 10, got 10")
    assert files(run) == before


@pytest.mark.parametrize("option, expected", [
    ("label=3", "model 'realnvp' of this run has no sampler option 'label'; its options: "
                "temperature ("),
    ("temperature=0", "sampler option temperature: realnvp.sample: expected temperature > 0"),
    ("temperature=x", "--option temperature: expected a number, got 'x'"),
    ("temperature=[1]", "sampler option temperature: expected a number"),
    ("temperature", "--option expects name=value"),
])
def test_sample_refuses_bad_options(option, expected, moons_run, tmp_path, capsys):
    before = files(moons_run)
    assert zoo("sample", moons_run, "--option", option, "--out", tmp_path / "s.png") == 2
    one_error_line(capsys, expected)
    assert files(moons_run) == before and os.listdir(tmp_path) == []


def test_evaluate_writes_metrics(moons_run, capsys):
    assert zoo("evaluate", moons_run) == 0
    metrics = read(moons_run / "metrics.json")
    captured = capsys.readouterr()
    assert json.loads(captured.out.rsplit("metrics:", 1)[0]) == metrics
    stages = [line.split(" in ")[0] for line in captured.err.splitlines()]
    assert stages == ["zoo: evaluate: loss terms: 313/313 batches",  # 10,000 points by 32
                      "zoo: evaluate: NLL (exact): 10000/10000 examples",
                      "zoo: evaluate: sampling: 10000/10000 samples"], captured.err
    assert metrics["epoch"] == 1 and metrics["split"] == "test"
    assert math.isfinite(metrics["bits_per_dim"]) and metrics["num_examples"] == 10_000
    assert metrics["likelihood"] == "exact" and "exact" in metrics["bound"]
    assert set(metrics["loss_terms"]) == {"loss", "bits_per_dim"}
    quality = metrics["sample_quality"]
    assert quality["num_samples"] == 10_000 and quality["mmd_num_samples"] == 2000
    assert quality["sliced_wasserstein"] > 0 and math.isfinite(quality["mmd_rbf"])


def declare_evaluation(monkeypatch, run, **declared):
    """Makes the model class of `run` declare `declared` over its evaluation defaults;
    returns the sampler options each ``sample_batches`` call was given."""
    cls = type(runs.load_checkpoint(run)[0])
    defaults = cls.evaluation_defaults
    monkeypatch.setattr(cls, "evaluation_defaults",
                        lambda self: {**defaults(self), **declared})
    given, sample_batches = [], cls.sample_batches

    def recording(self, n, seed=0, batch_size=1000, **options):
        given.append(options)
        return sample_batches(self, n, seed, batch_size, **options)

    monkeypatch.setattr(cls, "sample_batches", recording)
    return given


def test_evaluate_spends_what_the_model_declares(moons_run, tmp_path, monkeypatch):
    run = copy_run(moons_run, tmp_path)
    given = declare_evaluation(monkeypatch, run, nll_examples=50, num_samples=300,
                               sample_options={"temperature": 0.5})
    assert zoo("evaluate", run, "--batch-size", 1000) == 0
    metrics = read(run / "metrics.json")
    test, _ = datasets.arrays("moons", "test")
    model, _, _ = runs.load_checkpoint(run)
    assert metrics["num_examples"] == 50
    np.testing.assert_allclose(metrics["nll_nats"], np.mean(model.nll(test[:50])), rtol=1e-5)
    assert metrics["sample_quality"]["num_samples"] == 300
    assert given == [{"temperature": 0.5}]
    # A flag overrides the declared default; the others stay.
    assert zoo("evaluate", run, "--batch-size", 1000, "--num-samples", 200,
               "--iwae-samples", 3) == 0
    metrics = read(run / "metrics.json")
    assert metrics["sample_quality"]["num_samples"] == 200 and metrics["num_examples"] == 50
    assert zoo("evaluate", run, "--batch-size", 1000, "--num-samples", 200,
               "--nll-examples", 30) == 0
    metrics = read(run / "metrics.json")
    assert metrics["num_examples"] == 30
    np.testing.assert_allclose(metrics["nll_nats"], np.mean(model.nll(test[:30])), rtol=1e-5)
    assert "importance_weighted" not in metrics  # a flow has no such bound: the flag is unused


def test_likelihood_over_the_first_examples_whatever_the_batches(moons_run):
    from zoo.metrics import evaluate_likelihood

    model, _, _ = runs.load_checkpoint(moons_run)
    test, _ = datasets.arrays("moons", "test")
    data = tf.data.Dataset.from_tensor_slices(test[:100]).batch(20)
    values = model.nll(test[:50]).numpy().astype(np.float64)
    error = values.std(ddof=1) / np.sqrt(50)
    for batches in (data, data.unbatch().batch(50), data.unbatch().batch(7)):
        result = evaluate_likelihood(model, batches, max_examples=50)
        assert result["num_examples"] == 50
        np.testing.assert_allclose(result["nll_nats"], values.mean(), rtol=1e-5)
        np.testing.assert_allclose(result["standard_error_nats"], error, rtol=1e-4)
        np.testing.assert_allclose(result["standard_error_bits_per_dim"],
                                   error / (2 * np.log(2.0)), rtol=1e-4)
    assert evaluate_likelihood(model, data, max_examples=1000)["num_examples"] == 100
    with pytest.raises(ValueError, match="max_examples must be an int >= 1 or None, got 0"):
        evaluate_likelihood(model, data, max_examples=0)


@pytest.mark.parametrize("declared, expected", [
    (dict(num_samples=0), "evaluation_defaults(): expected num_samples to be an int >= 1, "
                          "got 0"),
    (dict(nll_examples=2.5), "expected nll_examples to be an int >= 1 or None, got 2.5"),
    (dict(sample_options={"label": 3}), "model 'realnvp' of this run has no sampler option "
                                        "'label'"),
    (dict(sample_options={"temperature": 0}), "sampler option temperature: realnvp.sample: "
                                              "expected temperature > 0"),
])
def test_evaluate_refuses_bad_declared_defaults(declared, expected, moons_run, tmp_path,
                                                monkeypatch, capsys):
    run = copy_run(moons_run, tmp_path)
    declare_evaluation(monkeypatch, run, **declared)
    before = files(run)
    assert zoo("evaluate", run) == 2
    one_error_line(capsys, expected)
    assert files(run) == before


def test_evaluate_names_what_declared_defaults_lack(moons_run, tmp_path, monkeypatch,
                                                   capsys):
    run = copy_run(moons_run, tmp_path)
    monkeypatch.setattr(type(runs.load_checkpoint(run)[0]), "evaluation_defaults",
                        lambda self: {"num_samples": 100})
    before = files(run)
    assert zoo("evaluate", run) == 2
    one_error_line(capsys, "model 'realnvp': evaluation_defaults() lacks nll_examples, "
                           "sample_options: expected them beside its own settings")
    assert files(run) == before


def test_export_and_serve(moons_run, tmp_path, capsys):
    base = tmp_path / "savedmodels"
    old = os.umask(0o022)
    try:
        assert zoo("export", moons_run, "--base", base) == 0
    finally:
        os.umask(old)
    captured = capsys.readouterr()
    folder = captured.out.strip()
    assert folder == str(base / "realnvp" / "1")
    assert re.match(r"zoo: export: tracing: (\d+)/\1 signatures in .*\n"
                    r"zoo: export: writing: 3/3 files in ", captured.err), captured.err
    assert os.path.isfile(os.path.join(folder, "saved_model.pb"))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755  # TF Serving may be another user
    before = files(base)
    assert zoo("export", moons_run, "--base", base, "--version", 1) == 2
    line = one_error_line(capsys, "version 1 exists already")
    assert "omit --version" in line and "version=None" not in line
    assert files(base) == before

    # A dry run writes the configs and exits 0, with or without the server.
    assert zoo("serve", base, "--dry-run") == 0
    err = capsys.readouterr().err
    assert ("would run" in err) if shutil.which(SERVER) else \
        ("apt-get install tensorflow-model-server" in err)
    assert zoo("serve", tmp_path / "nothing-here") == 2
    one_error_line(capsys, "expected an export base path")


def test_export_limits_the_samples_of_one_request(moons_run, tmp_path, capsys):
    import tensorflow as tf

    from zoo.savedmodels.export import SAMPLE_BYTES, read_metadata

    base = tmp_path / "savedmodels"
    assert zoo("export", moons_run, "--base", base, "--max-samples", 10) == 0
    folder = capsys.readouterr().out.strip()
    assert read_metadata(folder)["max_samples"] == 10
    sample = tf.saved_model.load(folder).signatures["sample"]
    inputs = {"seed": tf.constant(0), "temperature": tf.constant(1.0)}
    assert sample(n=tf.constant(10), **inputs)["samples"].shape == (10, 2)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"sample: expected n <= 10 \(max_samples of this export"):
        sample(n=tf.constant(11), **inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected n >= 0"):
        sample(n=tf.constant(-1), **inputs)

    # The default: as many 2-D float32 points as fit in SAMPLE_BYTES.
    assert zoo("export", moons_run, "--base", base) == 0
    folder = capsys.readouterr().out.strip()
    assert read_metadata(folder)["max_samples"] == SAMPLE_BYTES // (2 * 4)
    before = files(base)
    assert zoo("export", moons_run, "--base", base, "--max-samples", 0) == 2
    one_error_line(capsys, "--max-samples: expected an integer in [1, 2147483647], got '0'")
    assert files(base) == before


def test_digits_run(tmp_path, capsys, data_dir):
    run = tmp_path / "digits"
    assert zoo("train", "nice", *TINY_NICE_DIGITS, "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    side = 8 * (8 * 4 + plotting.PADDING) + plotting.PADDING  # 8x8 grid of 8x8 digits, x4
    with Image.open(run / "samples" / "epoch_0001.png") as image:
        assert image.size == (side, side) and image.mode == "L"
    capsys.readouterr()
    assert zoo("evaluate", run, "--batch-size", 100, "--num-samples", 200) == 0
    assert [line.split(" in ")[0] for line in capsys.readouterr().err.splitlines()] == [
        "zoo: evaluate: loss terms: 3/3 batches",
        "zoo: evaluate: NLL (dequantized): 297/297 examples",
        "zoo: evaluate: sampling: 200/200 samples",
        "zoo: evaluate: features of the real images: 297/297 real images",
        "zoo: evaluate: features of the samples: 200/200 samples"]
    metrics = read(run / "metrics.json")
    assert math.isfinite(metrics["bits_per_dim"]) and metrics["num_examples"] == 297
    assert metrics["likelihood"] == "dequantized" and "upper bound" in metrics["bound"]
    quality = metrics["sample_quality"]
    assert quality["features"] == "zoo-digits-v1" and len(quality["features_sha256"]) == 64
    assert quality["num_samples"] == 200 and quality["num_real"] == 297
    assert all(math.isfinite(quality[k]) for k in ("fid", "kid", "precision", "recall"))

    # TensorBoard: the epoch's sample grid (that very PNG), no density (images), the
    # test split's loss terms, the hyperparameters, and evaluate's numbers at epoch 1.
    train = events(run / "logs" / "train")
    plugin, [(step, image)] = train["samples"]
    with Image.open(run / "samples" / "epoch_0001.png") as png:
        assert np.array_equal(tf.io.decode_png(image[2]).numpy()[..., 0], np.asarray(png))
    assert plugin == "images" and step == 0 and "density" not in train
    history = read(run / "history.json")[0]
    assert train["epoch_loss"][1] == [(0, np.float32(history["loss"]))]
    validation = events(run / "logs" / "validation")
    assert validation["epoch_loss"][1] == [(0, np.float32(history["val_loss"]))]
    found = hparams(run / "logs")
    assert (found["model"], found["dataset"], found["num_hidden"]) == ("nice", "digits", 1)
    evaluation = events(run / "logs" / "evaluation")
    for tag, value in (("bits_per_dim", metrics["bits_per_dim"]),
                       ("sample_quality/fid", quality["fid"]),
                       ("loss_terms/loss", metrics["loss_terms"]["loss"])):
        assert evaluation[tag] == ("scalars", [(0, np.float32(value))]), tag

    # zoo compare: this run and a copy whose metrics.json is gone (evaluated anew).
    other = copy_run(run, tmp_path, "other")
    os.remove(other / "metrics.json")
    capsys.readouterr()
    assert zoo("compare", "digits", run, other, "--num-samples", 200,
               "--out", tmp_path / "compared") == 0
    captured = capsys.readouterr()
    assert f"evaluating {other} (no metrics.json)" in captured.err
    assert f"zoo: compare: {other}: evaluate: sampling: 200/200 samples in " in captured.err
    assert "zoo: compare: sample sheet: 2/2 runs in " in captured.err
    assert str(run) not in captured.err  # its metrics were current
    timing = ("sampling_seconds", "samples_per_second")
    same = {k: v for k, v in read(other / "metrics.json")["sample_quality"].items()
            if k not in timing}
    assert same == {k: v for k, v in quality.items() if k not in timing}  # same seed
    with open(tmp_path / "compared" / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["digits", "other"]
    assert float(rows[0]["fid"]) == quality["fid"] and rows[0]["steps"] == "2"
    table = (tmp_path / "compared" / "table.md").read_text()
    assert table in captured.out and "| FID |" in table and table.count("\n") == 4
    with Image.open(tmp_path / "compared" / "samples.png") as sheet:
        assert sheet.width > 2 * side and sheet.height > side
    assert zoo("compare", "moons", run) == 2
    one_error_line(capsys, f"run {str(run)!r} is on 'digits', not 'moons'")


@pytest.mark.slow  # by default: test_vae_variants.py's latent metrics and pictures
def test_vae_run_reports_its_bounds_and_pictures(tmp_path, data_dir):
    run = tmp_path / "vae"
    assert zoo("train", "planar_vae", "--dataset", "digits", "--set", "latent_dim=2",
               "--set", "filters=4", "--set", "hidden_units=8", "--set", "num_flows=2",
               "--steps-per-epoch", "2", "--batch-size", "32", "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    assert zoo("evaluate", run, "--num-samples", 100, "--iwae-samples", 20,
               "--iwae-examples", 50, "--data-dir", data_dir) == 0
    metrics = read(run / "metrics.json")
    assert metrics["likelihood"] == "bound" and metrics["num_examples"] == 297
    iwae = metrics["importance_weighted"]
    assert iwae["num_samples"] == 20 and iwae["num_examples"] == 50
    assert "upper bound" in iwae["bound"] and math.isfinite(iwae["bits_per_dim"])
    assert metrics["active_units"]["dimensions"] == 2
    assert set(metrics["pictures"]) == {"reconstructions", "traversals"}
    with Image.open(run / metrics["pictures"]["reconstructions"]) as image:
        assert image.size[1] > image.size[0] / 8  # 16 examples: 4 rows of 8
    with Image.open(run / metrics["pictures"]["traversals"]) as image:
        assert image.size[0] > 4 * image.size[1]  # 2 dimensions x 9 steps


def test_gan_run(tmp_path, data_dir, capsys):
    run = tmp_path / "wgan"
    # Two time-scale updates: the critic at 4x the generator's rate.
    assert zoo("train", "wgan_gp", *TINY_WGAN, "--epochs", 1, "--out", run, "--lr", "1e-4",
               "--critic-lr", "4e-4", "--data-dir", data_dir) == 0
    assert read(run / "run.json")["training"]["critic_learning_rate"] == 4e-4
    assert {"critic_loss", "wasserstein"} <= set(read(run / "history.json")[0])
    model, _, _ = runs.load_checkpoint(run)
    assert int(model.critic_optimizer.iterations) == 3
    np.testing.assert_allclose(float(model.critic_optimizer.learning_rate.numpy()), 4e-4)
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 1e-4)
    before = files(run)
    capsys.readouterr()
    assert zoo("train", "wgan_gp", "--out", run, "--resume", "--critic-lr", "1e-3") == 2
    one_error_line(capsys, "critic_learning_rate=0.0004, but critic_learning_rate=0.001")
    assert files(run) == before
    assert zoo("evaluate", run, "--num-samples", 500) == 0
    metrics = read(run / "metrics.json")
    assert "bits_per_dim" not in metrics and "bound" not in metrics
    assert metrics["sample_quality"]["num_samples"] == 500
    assert all(math.isfinite(v) for v in metrics["loss_terms"].values())
    assert "gradient_penalty" in metrics["loss_terms"]


def test_compare_gives_a_run_that_cannot_be_evaluated_a_line(moons_run, tmp_path,
                                                               monkeypatch, capsys):
    runs_dir = tmp_path / "runs"
    for name in ("a", "b"):
        copy_run(moons_run, runs_dir, name)
        (runs_dir / name / "metrics.json").unlink(missing_ok=True)

    def diverged(run_dir, **settings):
        raise runs.NonFiniteError(f"{os.path.basename(run_dir)}'s samples are NaN")

    monkeypatch.setattr(runs, "evaluate_run", diverged)
    assert zoo("compare", "moons", "--runs-dir", runs_dir) == 0
    table = (runs_dir / "compare-moons" / "table.md").read_text()
    assert f"Not evaluated: {runs_dir / 'a'}: a's samples are NaN" in table
    assert f"Not evaluated: {runs_dir / 'b'}: b's samples are NaN" in table
    assert not (runs_dir / "compare-moons" / "samples.png").exists()  # no run to draw


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv, expected", [
    (["train", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["train", "realnvp", "--dataset", "nosuchdata"], "no preset for dataset 'nosuchdata'"),
    (["train", "realnvp", "--dataset", "moons", "--set", "hidden_units"],
     "--set expects key=value"),
    (["train", "realnvp", "--dataset", "moons", "--set", "no_such=1"], "no parameter 'no_such'"),
    (["train", "realnvp", "--dataset", "moons", "--set", "data_shape=[3]"],
     "data_shape come from the dataset"),
    (["train", "realnvp", "--epochs", "0"], "--epochs"),
    (["train", "realnvp", "--seed", "-1"], "--seed: expected an integer in [0, 2147483647]"),
    (["train", "realnvp", "--seed", "99999999999"], "--seed: expected an integer"),
    (["train", "realnvp", "--dataset", "moons", "--critic-lr", "1e-3"],
     "--critic-lr sets a critic's learning rate, but model 'realnvp' trains no critic"),
    (["train", "gmmn", "--dataset", "moons", "--critic-lr", "1e-3"],
     "--critic-lr sets a critic's learning rate, but model 'gmmn' trains no critic"),
    (["sample", "{tmp}/missing"], "no run folder"),
    (["evaluate", "{tmp}/missing"], "no run folder"),
    (["export", "{tmp}/missing"], "no run folder"),
    (["evaluate", "{tmp}/missing", "--features", "net.h5"], "expected a .keras file path"),
    (["compare", "digits", "--runs-dir", "{tmp}"], "no runs on 'digits' under"),
    (["compare", "nosuchdata"], "unknown dataset 'nosuchdata'"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_exit_2_with_one_line(argv, expected, tmp_path, capsys, data_dir):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), "--data-dir", data_dir]
    assert zoo(*argv) == 2
    one_error_line(capsys, expected)
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("dataset, expected", [
    ("moons", "dataset 'moons' has no class labels; a class-conditional model (num_classes=3) "
              "trains on labelled data"),
    ("digits", "dataset 'digits' has labels up to 9, but the model has num_classes=3"),
])
def test_a_conditional_model_needs_labels_that_fit(dataset, expected, tmp_path, capsys, data_dir):
    from zoo import datasets

    datasets.arrays(dataset, "train", data_dir=data_dir)  # prepared: stderr holds the error only
    capsys.readouterr()
    assert zoo("train", "sngan", "--dataset", dataset, "--set", "num_classes=3", "--out",
               tmp_path / "run", "--data-dir", data_dir) == 2
    one_error_line(capsys, expected)
    assert not os.path.exists(tmp_path / "run")


def test_out_pointing_at_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", target) == 2
    one_error_line(capsys, "is a file")
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("out", ["x.txt", "folder", "noextension"])
def test_sample_needs_a_png_path(out, moons_run, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    before = files(moons_run)
    assert zoo("sample", moons_run, "--out", tmp_path / out) == 2
    one_error_line(capsys, "expected a .png")  # (or .txt, for a model of text)
    assert files(moons_run) == before
    assert sorted(os.listdir(tmp_path)) == ["folder"]


@pytest.mark.parametrize("content", ["{}", "[]", '{"model": "realnvp"}', "not json"])
def test_damaged_run_json_is_one_line(content, moons_run, tmp_path, capsys):
    run = copy_run(moons_run, tmp_path, "damaged")
    (run / "run.json").write_text(content)
    before = files(run)
    for argv in (["sample", run], ["evaluate", run], ["export", run, "--base", tmp_path / "b"],
                 ["train", "realnvp", "--out", run, "--resume"]):
        assert zoo(*argv) == 2, argv
        one_error_line(capsys, "run.json")
    assert files(run) == before


def test_run_json_jit_compile_is_a_bool_or_auto(moons_run, tmp_path, capsys):
    # Without --jit a run stores "auto": the model chooses (GenerativeModel.compile).
    settings = json.loads((moons_run / "run.json").read_text())
    assert settings["training"]["jit_compile"] == "auto"
    run = copy_run(moons_run, tmp_path, "fast")
    settings["training"]["jit_compile"] = "fast"
    (run / "run.json").write_text(json.dumps(settings))
    assert zoo("evaluate", run) == 2
    one_error_line(capsys, "training.jit_compile='fast'")
    settings["training"].update(jit_compile="auto", validate_every=-1)
    (run / "run.json").write_text(json.dumps(settings))
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2) == 2
    one_error_line(capsys, "training.validate_every=-1")
    settings["training"].update(validate_every=1, sample_every=0.5)
    (run / "run.json").write_text(json.dumps(settings))
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2) == 2
    one_error_line(capsys, "training.sample_every=0.5")


def test_damaged_index_and_history_are_one_line(moons_run, tmp_path, capsys):
    run = copy_run(moons_run, tmp_path, "index")
    (run / "checkpoints" / "latest.json").write_text('{"epoch": "three", "file": "x"}')
    before = files(run)
    for argv in (["sample", run], ["evaluate", run],
                 ["train", "realnvp", "--out", run, "--resume", "--epochs", 2]):
        assert zoo(*argv) == 2, argv
        one_error_line(capsys, "latest.json is damaged")
    assert files(run) == before

    run = copy_run(moons_run, tmp_path, "history")
    (run / "history.json").write_text("null")
    before = files(run)
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2) == 2
    one_error_line(capsys, "history.json is damaged")
    assert files(run) == before


def test_every_json_file_is_strict(moons_run):
    for name in ("run.json", "history.json", "metrics.json", "checkpoints/latest.json"):
        path = moons_run / name
        if path.exists():
            json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{name}: {c}"))
    with pytest.raises(ValueError):
        runs.write_json(str(moons_run / "nan.json"), {"x": float("nan")})
    assert not (moons_run / "nan.json").exists()


# ------------------------------------------------------------------ messages and parameters
@pytest.mark.parametrize("argv, expected", [
    (["train", "sngan", "--dataset", "digits", "--set", "num_classes=10.7"],
     "SNGAN: expected num_classes to be an integer, got 10.7"),
    (["train", "sngan", "--dataset", "digits", "--set", "num_classes=2.5"],
     "SNGAN: expected num_classes to be an integer, got 2.5"),
    (["train", "realnvp", "--dataset", "mons"],
     "model 'realnvp' has no preset for dataset 'mons'; presets: ['8gaussians', "),
    (["train", "realnvp", "--dataset", "mons"], "]. Did you mean 'moons'?"),
    (["compare", "mons"], "unknown dataset 'mons'; built-in datasets: "),
    (["compare", "mons"], "]. Did you mean 'moons'?"),
    (["train", "realnpv"], "]. Did you mean 'realnvp'?"),
])
def test_messages_name_the_value_and_suggest_a_name(argv, expected, tmp_path, capsys, data_dir):
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), "--data-dir", data_dir]
    assert zoo(*argv) == 2
    line = one_error_line(capsys, expected)
    assert "dataset=" not in line  # the Python API's hint, not the command's
    assert not os.path.exists(tmp_path / "run")


def test_zoo_get_refuses_a_fraction_for_an_integer_parameter():
    import zoo as package

    with pytest.raises(ValueError, match="expected num_classes to be an integer, got 2.5"):
        package.get("sngan", dataset="digits", num_classes=2.5)
    assert package.get("sngan", dataset="digits", num_classes=10.0).num_classes == 10
    with pytest.raises(ValueError, match=r"no preset for dataset 'mons'.*Did you mean 'moons'"):
        package.get("realnvp", dataset="mons")


def test_resume_of_another_model_says_which_command_resumes_it(moons_run, capsys):
    before = files(moons_run)
    assert zoo("train", "nice", "--out", moons_run, "--resume") == 2
    line = one_error_line(capsys, f"is a run of model 'realnvp', not 'nice'; resume it with "
                                  f"`zoo train realnvp --out {moons_run} --resume`")
    assert "without it" not in line
    assert files(moons_run) == before


def test_serve_of_a_run_folder_or_an_empty_base_says_to_export(moons_run, tmp_path, capsys):
    before = files(moons_run)
    assert zoo("serve", moons_run) == 2
    line = one_error_line(capsys, f"{str(moons_run)!r} is a run folder, not an export base "
                                  f"path: export it with `zoo export {moons_run}`")
    assert "zoo.savedmodels" not in line
    assert files(moons_run) == before
    assert zoo("serve", tmp_path) == 2
    line = one_error_line(capsys, f"export a run with `zoo export RUN --base {tmp_path}`")
    assert "zoo.savedmodels" not in line and os.listdir(tmp_path) == []


@pytest.mark.parametrize("which", ["checkpoint", "text"])
def test_features_that_are_no_feature_network(which, digits_run, tmp_path, capsys):
    if which == "checkpoint":  # a zoo model: no symbolic outputs
        features, expected = digits_run / "checkpoints" / "epoch_0001.keras", \
            "is a NICE, not a functional Keras model of images -> features"
    else:
        features, expected = tmp_path / "net.keras", "is not a .keras archive (a zip file"
        features.write_text("not a model")
    before = files(digits_run)
    assert zoo("evaluate", digits_run, "--features", features) == 2
    one_error_line(capsys, expected)
    assert files(digits_run) == before


# ------------------------------------------------------------------ compare
def test_compare_out_that_is_a_file_or_cannot_be_written(moons_run, tmp_path, monkeypatch,
                                                         capsys):
    runs_dir = tmp_path / "runs"
    copy_run(moons_run, runs_dir, "a")
    target = tmp_path / "afile.txt"
    target.write_text("keep me")
    before = files(runs_dir)
    assert zoo("compare", "moons", "--runs-dir", runs_dir, "--out", target) == 2
    one_error_line(capsys, f"--out {str(target)!r} is a file; expected a folder")
    assert target.read_text() == "keep me" and files(runs_dir) == before

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(os, "makedirs", read_only)
    assert zoo("compare", "moons", "--runs-dir", runs_dir, "--out", tmp_path / "ro") == 2
    one_error_line(capsys, f"cannot create the --out folder {str(tmp_path / 'ro')!r}: "
                           "Read-only file system")
    assert files(runs_dir) == before


def test_compare_shows_the_measures_the_dataset_declares(moons_run, tmp_path):
    run = copy_run(moons_run, tmp_path, "mixture")  # the moons model, on 8gaussians
    settings = read(run / "run.json")
    settings["training"]["batch_size"] = 1000  # evaluated in few batches
    (run / "run.json").write_text(json.dumps({**settings, "dataset": "8gaussians"}))
    assert datasets.info("8gaussians").point_metrics  # (moons has none: the test below)
    assert zoo("compare", "8gaussians", run, "--num-samples", 100, "--out", tmp_path / "c") == 0
    header = (tmp_path / "c" / "table.md").read_text().splitlines()[0]
    assert "| modes |" in header and "| high quality |" in header
    assert read(run / "metrics.json")["sample_quality"]["num_modes"] == 8


def test_compare_lists_runs_it_cannot_evaluate_and_compares_the_rest(moons_run, tmp_path,
                                                                     capsys):
    runs_dir = tmp_path / "runs"
    copy_run(moons_run, runs_dir, "a")
    empty = copy_run(moons_run, runs_dir, "b-no-checkpoint")  # diverged in its first epoch
    shutil.rmtree(empty / "checkpoints")
    damaged = copy_run(moons_run, runs_dir, "c-damaged")
    (damaged / "run.json").write_text("{}")
    diverged = copy_run(moons_run, runs_dir, "d-diverged")
    diverge(diverged)
    assert zoo("compare", "moons", "--runs-dir", runs_dir, "--num-samples", 100) == 0
    with open(runs_dir / "compare-moons" / "table.csv") as f:
        assert [r["run"] for r in csv.DictReader(f)] == ["a"]
    table = (runs_dir / "compare-moons" / "table.md").read_text()
    assert not datasets.info("moons").point_metrics and "| modes |" not in table
    assert f"Not evaluated: {empty}: run {str(empty)!r} has no checkpoint yet" in table
    assert f"Not evaluated: {damaged}: run settings {damaged / 'run.json'} are damaged" in table
    assert f"Not evaluated: {diverged}: checkpoint " in table and "non-finite weights" in table
    assert (runs_dir / "compare-moons" / "samples.png").exists()
    # Named runs likewise.
    assert zoo("compare", "moons", runs_dir / "a", damaged, "--num-samples", 100,
               "--out", tmp_path / "named") == 0
    table = (tmp_path / "named" / "table.md").read_text()
    assert "| a |" in table and f"Not evaluated: {damaged}: run settings" in table


def test_compare_trusts_metrics_only_of_the_checkpoint_it_loads(moons_run, three_epochs,
                                                                tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    run = copy_run(moons_run, runs_dir, "x")
    argv = ["compare", "moons", "--runs-dir", runs_dir, "--num-samples", 100]
    assert zoo(*argv) == 0
    measured = read(run / "metrics.json")
    assert measured["checkpoint_sha256"] == hashlib.sha256(
        read_bytes(run / "checkpoints" / "epoch_0001.keras")).hexdigest()
    capsys.readouterr()

    # Another model's metrics (the folder held an nsf run once): evaluated anew.
    (run / "metrics.json").write_text(json.dumps(dict(measured, model="nsf", nll_nats=3.63)))
    assert zoo(*argv) == 0
    assert f"evaluating {run} (metrics of model 'nsf', not 'realnvp')" in \
        capsys.readouterr().err
    assert read(run / "metrics.json")["nll_nats"] == measured["nll_nats"]

    # Another checkpoint of the same name, epoch and model: evaluated anew.
    shutil.copy(three_epochs / "checkpoints" / "epoch_0003.keras",
                run / "checkpoints" / "epoch_0001.keras")
    assert zoo(*argv) == 0
    assert "(metrics of another checkpoints/epoch_0001.keras (its SHA-256 differs))" in \
        capsys.readouterr().err
    assert read(run / "metrics.json")["nll_nats"] != measured["nll_nats"]
    assert zoo(*argv) == 0
    assert "evaluating" not in capsys.readouterr().err  # current now


def test_compare_with_a_truncated_newest_checkpoint_evaluates_once(three_epochs, tmp_path,
                                                                   capsys):
    runs_dir = tmp_path / "runs"
    run = copy_run(three_epochs, runs_dir, "t")
    with open(run / "checkpoints" / "epoch_0003.keras", "r+b") as f:
        f.truncate(100)
    argv = ["compare", "moons", "--runs-dir", runs_dir, "--num-samples", 100]
    assert zoo(*argv) == 0
    err = capsys.readouterr().err
    assert f"evaluating {run} (no metrics.json)" in err
    assert err.count("epoch_0003.keras") == 1 and "truncated" in err  # one warning
    assert read(run / "metrics.json")["epoch"] == 2
    assert zoo(*argv) == 0
    err = capsys.readouterr().err
    assert "evaluating" not in err and err.count("epoch_0003.keras") == 1


# ------------------------------------------------------------------ a new user's terminal
def test_help_and_argument_errors_do_not_import_tensorflow():
    code = ("import sys, zoo_cli\n"
            "assert zoo_cli.main(['--help']) == 0\n"
            "assert zoo_cli.main(['train', 'realnvp', '--seed', '-1']) == 2\n"
            "assert zoo_cli.main(['sample', 'r', '--out', 'x.gif']) == 2\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'zoo') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_new_process_prints_no_tensorflow_noise(tmp_path):
    """In a fresh process (as a user runs `zoo`): `zoo list` prints its table and
    nothing on stderr, and an error is exactly one line, with no TensorFlow
    start-up lines before it, nor TF's native log lines written while the
    command runs (an E-line as oneDNN's int32 note, written here by hand)."""
    native = ("E0000 00:00:1796594536.202739    4105 util.cc:131] oneDNN supports DT_INT32 "
              "only on platforms with AVX-512.")
    code = ("import os, sys, zoo_cli\n"
            "sys.argv = ['zoo', 'list']\n"
            "assert zoo_cli.main() == 0\n"
            f"os.write(2, {native!r}.encode() + b'\\n')\n"
            f"assert zoo_cli.main(['train', 'nosuchmodel', '--out', {str(tmp_path)!r}]) == 2\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "zoo: error: unknown model 'nosuchmodel'; known models: "
        + str(sorted(e.name for e in __import__("zoo").list_models()
                     if e.cls.__module__.startswith("zoo."))) + "."]  # the zoo's own
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "likelihood", "losses"]
    realnvp = next(line for line in lines if line.startswith("realnvp "))
    assert " flow " in realnvp and " exact/dequantized " in realnvp
    assert "bits_per_dim" in realnvp and "digits*" in realnvp
    assert any(line.startswith("wgan_gp ") and " gan " in line and " none " in line
               for line in lines)
    assert any(line.startswith("vae ") and " bound " in line for line in lines)


def test_the_console_script_answers_help_at_once():
    script = os.path.join(os.path.dirname(sys.executable), "zoo")
    assert os.path.exists(script), "the `zoo` console script is not installed"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: zoo"), result.stderr


# ------------------------------------------------------------------ plotting
def test_image_grid_clips_scales_and_upscales(tmp_path):
    images = np.zeros((3, 8, 8, 1), np.float32)
    images[0] = 100.0  # above the top level: white
    images[1] = -5.0  # below zero: black
    images[2] = 8.0  # half of 16: mid grey
    path = plotting.image_grid(images, 17, tmp_path / "grid.png")
    pixels = np.asarray(Image.open(path))
    tile, pad = 8 * 4, plotting.PADDING
    assert pixels.shape == (2 * (tile + pad) + pad, 2 * (tile + pad) + pad)
    assert pixels[pad, pad] == 255 and pixels[pad, 2 * pad + tile] == 0
    assert pixels[2 * pad + tile, pad] == 128
    assert pixels[-pad - 1, -pad - 1] == plotting.PAD_VALUE  # the empty fourth cell
    rgb = plotting.image_grid(np.full((2, 28, 28, 3), 255.0), 256, tmp_path / "rgb.png", cols=2)
    assert Image.open(rgb).size == (2 * (28 + pad) + pad, 28 + 2 * pad)
    with pytest.raises(ValueError, match="expected images of shape"):
        plotting.image_grid(np.zeros((2, 8)), 17, tmp_path / "bad.png")


def test_scatter_uses_the_reference_view(tmp_path):
    reference = np.random.default_rng(0).normal(size=(500, 2))
    far = np.array([[100.0, 100.0], [np.nan, 0.0]])  # outside the view / not finite
    path = plotting.scatter(far, tmp_path / "far.png", reference=reference)
    colours = {c for _, c in Image.open(path).getcolors(1 << 16)}
    assert plotting.SAMPLE_COLOUR not in colours and plotting.REFERENCE_COLOUR in colours
    path = plotting.scatter(reference, tmp_path / "near.png")
    assert plotting.SAMPLE_COLOUR in {c for _, c in Image.open(path).getcolors(1 << 16)}
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plotting.scatter(np.zeros((3, 3)), tmp_path / "bad.png")


def test_density_beside_data_puts_mass_where_the_data_is(tmp_path):
    rng = np.random.default_rng(0)
    spread = rng.uniform(-3, 3, size=(2000, 2))
    cluster = rng.normal([2.0, 1.0], 0.1, size=(8000, 2))  # right of centre, above it
    data = np.concatenate([spread, cluster])

    def log_prob(x):
        return -np.sum((x - [2.0, 1.0]) ** 2, axis=1) / (2 * 0.1**2)

    size = 100
    path = plotting.density_beside_data(log_prob, data, tmp_path / "d.png", size=size, bins=50)
    image = np.asarray(Image.open(path).convert("L"), np.float64)
    assert image.shape == (size, 2 * size + 4 * plotting.PADDING)
    x0, y0, side = plotting._view(data)
    expected = np.array([(1 - (1.0 - y0) / side) * size, (2.0 - x0) / side * size])
    for panel in (image[:, :size], image[:, -size:]):  # data, then model
        darkest = np.argwhere(panel == panel.min()).mean(0)  # (row, column)
        np.testing.assert_allclose(darkest, expected, atol=size * 0.05)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plotting.density_beside_data(log_prob, np.zeros((3, 3)), tmp_path / "bad.png")


@pytest.mark.slow
def test_demo(tmp_path, capsys, data_dir):
    out, base = tmp_path / "demo", tmp_path / "savedmodels"
    assert zoo("demo", "--out", out, "--base", base, "--epochs", 1) == 0
    printed = capsys.readouterr().out
    assert str(base / "realnvp" / "1") in printed and "bits/dim" in printed
    assert math.isfinite(read(out / "metrics.json")["bits_per_dim"])
    assert zoo("demo", "--out", out, "--base", base, "--epochs", 1) == 0  # resumes: finished
    assert "finished" in capsys.readouterr().out
