"""The `zoo` command and its training loop, on tiny models (in-process where possible)."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zoo import cli, plotting, training
from zoo.savedmodels.serve import SERVER

TINY_MOONS = ["--dataset", "moons", "--set", "hidden_units=8", "--set", "num_couplings=2",
              "--steps-per-epoch", "3", "--batch-size", "32"]
TINY_DIGITS = ["--dataset", "digits", "--set", "hidden_units=4", "--set", "num_blocks=1",
               "--set", "couplings_per_scale=1", "--set", "final_couplings=2",
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


def same_state(a, b):
    """True if two models have bitwise equal weights and optimizer variables."""
    pairs = list(zip(a.weights, b.weights)) + list(zip(a.optimizer.variables,
                                                      b.optimizer.variables))
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory, data_dir):
    """A finished one-epoch run of a tiny RealNVP on moons (3 steps of 32)."""
    run = tmp_path_factory.mktemp("runs") / "moons"
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    return run


def copy_run(run, tmp_path, name="copy"):
    return shutil.copytree(run, tmp_path / name)


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
    events = [f for _, _, files in os.walk(moons_run / "logs") for f in files
              if f.startswith("events.out.tfevents")]
    assert events, "no TensorBoard event file under logs/"
    assert not [n for n in os.listdir(moons_run / "checkpoints") if n.startswith(".tmp")]


def test_resume_continues_exactly(moons_run, tmp_path, data_dir):
    resumed = copy_run(moons_run, tmp_path, "resumed")
    assert zoo("train", "realnvp", "--out", resumed, "--resume", "--epochs", 2,
               "--data-dir", data_dir) == 0
    assert read(resumed / "checkpoints" / "latest.json")["epoch"] == 2
    history = read(resumed / "history.json")
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[0] == read(moons_run / "history.json")[0]
    assert read(resumed / "run.json")["training"]["epochs"] == 2
    model, _, latest = training.load_checkpoint(resumed)
    assert latest["file"] == "epoch_0002.keras"
    assert int(model.optimizer.iterations) == 2 * 3  # two epochs of 3 steps

    # The same two epochs without interruption give the same bits (this flow's
    # step draws no random numbers, and each epoch's data order is seeded).
    straight = tmp_path / "straight"
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", 2, "--out", straight,
               "--data-dir", data_dir) == 0
    reference, _, _ = training.load_checkpoint(straight)
    assert same_state(model, reference)


def test_only_the_last_checkpoints_are_kept(moons_run, tmp_path, data_dir):
    run = copy_run(moons_run, tmp_path)
    epochs = training.KEEP_CHECKPOINTS + 1
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", epochs,
               "--data-dir", data_dir) == 0
    kept = list(range(epochs - training.KEEP_CHECKPOINTS + 1, epochs + 1))
    assert training.checkpoint_files(run) == [training.checkpoint_name(e) for e in kept]
    assert read(run / "checkpoints" / "latest.json")["epoch"] == epochs


def test_resume_refuses_conflicting_settings(moons_run, capsys):
    before = read_bytes(moons_run / "checkpoints" / "latest.json")
    assert zoo("train", "realnvp", "--out", moons_run, "--resume", "--lr", "0.5") == 2
    assert "learning_rate" in capsys.readouterr().err
    assert zoo("train", "realnvp", "--dataset", "digits", "--out", moons_run, "--resume") == 2
    assert "dataset" in capsys.readouterr().err
    assert zoo("train", "wgan_gp", "--out", moons_run, "--resume") == 2
    assert "model" in capsys.readouterr().err
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", moons_run) == 2
    assert "--resume" in capsys.readouterr().err
    assert read_bytes(moons_run / "checkpoints" / "latest.json") == before


def test_resume_of_a_finished_run_says_so(moons_run, capsys):
    assert zoo("train", "realnvp", "--out", moons_run, "--resume") == 0
    assert "finished" in capsys.readouterr().out
    assert training.checkpoint_files(moons_run) == ["epoch_0001.keras"]


# ------------------------------------------------------------------ NaN / Inf
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        moons_run, tmp_path, monkeypatch, capsys, data_dir):
    from zoo.flows.realnvp import RealNVP

    run = copy_run(moons_run, tmp_path, "diverging")
    good = run / "checkpoints" / "epoch_0001.keras"
    checkpoint, index = read_bytes(good), read_bytes(run / "checkpoints" / "latest.json")
    original = RealNVP.compute_losses

    def nan_losses(self, x, training=False):
        return {k: v * float("nan") for k, v in original(self, x, training).items()}

    monkeypatch.setattr(RealNVP, "compute_losses", nan_losses)
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 3,
               "--data-dir", data_dir) == 3
    err = capsys.readouterr().err
    assert err.startswith("zoo: error:") and "non-finite" in err and "epoch 2" in err
    assert str(good) in err
    assert read_bytes(good) == checkpoint
    assert read_bytes(run / "checkpoints" / "latest.json") == index
    assert training.checkpoint_files(run) == ["epoch_0001.keras"]
    assert len(read(run / "history.json")) == 1

    # Diverging in the first epoch leaves no checkpoint at all, and says so.
    fresh = tmp_path / "fresh"
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", fresh, "--data-dir", data_dir) == 3
    assert "no checkpoint was written" in capsys.readouterr().err
    assert training.checkpoint_files(fresh) == []


def test_finite_guard_checks_every_logged_value():
    class Model:
        stop_training = False

    guard = training.FiniteGuard()
    guard.set_model(Model())
    guard.on_epoch_begin(4)
    guard.on_train_batch_end(0, {"critic_loss": np.float32(1.0), "wasserstein": 2.0})
    assert guard.failure is None and not guard.model.stop_training
    guard.on_train_batch_end(1, {"critic_loss": 1.0, "wasserstein": np.array(float("inf"))})
    assert guard.model.stop_training
    assert guard.failure == {"epoch": 5, "batch": 1, "values": {"wasserstein": float("inf")}}


# ------------------------------------------------------------------ sample / evaluate / export
def test_sample_writes_a_png(moons_run, tmp_path, capsys):
    out = tmp_path / "points.png"
    assert zoo("sample", moons_run, "-n", 50, "--seed", 3, "--out", out) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as image:
        assert image.size == (plotting.SCATTER_SIZE, plotting.SCATTER_SIZE)
        assert len(image.getcolors(1 << 16)) > 1  # something was drawn


def test_evaluate_writes_metrics(moons_run, capsys):
    assert zoo("evaluate", moons_run) == 0
    metrics = read(moons_run / "metrics.json")
    assert json.loads(capsys.readouterr().out.rsplit("metrics:", 1)[0]) == metrics
    assert metrics["epoch"] == 1 and metrics["split"] == "test"
    assert math.isfinite(metrics["bits_per_dim"]) and metrics["num_examples"] == 10_000
    assert "exact" in metrics["bound"]
    assert set(metrics["loss_terms"]) == {"loss", "bits_per_dim"}


def test_export_and_serve(moons_run, tmp_path, capsys):
    base = tmp_path / "savedmodels"
    assert zoo("export", moons_run, "--base", base) == 0
    folder = capsys.readouterr().out.strip()
    assert folder == str(base / "realnvp" / "1")
    assert os.path.isfile(os.path.join(folder, "saved_model.pb"))

    code = zoo("serve", base, "--dry-run")
    err = capsys.readouterr().err
    if shutil.which(SERVER):
        assert code == 0 and "would run" in err
    else:
        assert code == 127 and "apt-get install tensorflow-model-server" in err
    assert zoo("serve", tmp_path / "nothing-here") == 2
    assert "zoo: error:" in capsys.readouterr().err


def test_digits_run(tmp_path, capsys, data_dir):
    run = tmp_path / "digits"
    assert zoo("train", "realnvp", *TINY_DIGITS, "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    side = 8 * (8 * 4 + plotting.PADDING) + plotting.PADDING  # 8x8 grid of 8x8 digits, x4
    with Image.open(run / "samples" / "epoch_0001.png") as image:
        assert image.size == (side, side) and image.mode == "L"
    assert zoo("evaluate", run, "--batch-size", 100) == 0
    metrics = read(run / "metrics.json")
    assert math.isfinite(metrics["bits_per_dim"]) and metrics["num_examples"] == 297
    assert "upper bound" in metrics["bound"]


def test_gan_run(tmp_path, data_dir):
    run = tmp_path / "wgan"
    assert zoo("train", "wgan_gp", *TINY_WGAN, "--epochs", 1, "--out", run,
               "--data-dir", data_dir) == 0
    assert {"critic_loss", "wasserstein"} <= set(read(run / "history.json")[0])
    model, _, _ = training.load_checkpoint(run)
    assert int(model.critic_optimizer.iterations) == 3
    assert zoo("evaluate", run) == 0
    metrics = read(run / "metrics.json")
    assert "bits_per_dim" not in metrics and "bound" not in metrics
    assert all(math.isfinite(v) for v in metrics["loss_terms"].values())
    assert "gradient_penalty" in metrics["loss_terms"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv, expected", [
    (["train", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["train", "realnvp", "--dataset", "nosuchdata"], "no preset for dataset 'nosuchdata'"),
    (["train", "realnvp", "--dataset", "moons", "--set", "hidden_units"],
     "--set expects key=value"),
    (["train", "realnvp", "--dataset", "moons", "--set", "no_such=1"], "no parameter 'no_such'"),
    (["train", "realnvp", "--epochs", "0"], "--epochs"),
    (["sample", "{tmp}/missing"], "no run folder"),
    (["evaluate", "{tmp}/missing"], "no run folder"),
    (["export", "{tmp}/missing"], "no run folder"),
    (["frobnicate"], "invalid choice"),
])
def test_errors_exit_2_with_one_line(argv, expected, tmp_path, capsys, data_dir):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    assert zoo(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error:") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_python_m_zoo_list():
    result = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "family", "losses"]
    realnvp = next(line for line in lines if line.startswith("realnvp "))
    assert " flow " in realnvp and "bits_per_dim" in realnvp and "digits*" in realnvp
    assert any(line.startswith("wgan_gp ") and " gan " in line for line in lines)


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
