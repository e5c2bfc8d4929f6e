"""GAN architectures (zoo/gan/dcgan.py, stylegan.py, biggan.py, diffusion_gan.py) and
controllable generation: each piece against its definition, and each bad input of
issue #32 a clear error (in Python, as one line on the command line, and in the
exported signatures). The contract over each model is in test_contract*.py."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
import zoo_cli as cli

TINY_DCGAN = dict(latent_dim=4, filters=4)


def zoo_command(*argv):
    return cli.main([str(a) for a in argv])


def one_error_line(capsys, expected):
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("zoo: warning:")]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    assert expected in lines[0], err


def files(folder):
    return sorted(os.path.relpath(os.path.join(r, n), folder)
                  for r, _, names in os.walk(folder) for n in names)


# ------------------------------------------------------------------ interpolation
def test_interpolation_endpoints_are_the_seeds_samples_and_the_path_is_linear():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    strip = np.asarray(model.interpolate(3, 9, steps=5))
    assert strip.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(strip[0], model.sample(1, seed=3)[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], model.sample(1, seed=9)[0], atol=1e-5)
    z = np.asarray(model.interpolation_latents(3, 9, steps=5))
    np.testing.assert_allclose(z[2], (z[0] + z[-1]) / 2, atol=1e-6)


def test_spherical_interpolation_keeps_to_the_great_circle():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    a, b = np.array([1.0, 0, 0, 0], np.float32), np.array([0, 2.0, 0, 0], np.float32)
    z = np.asarray(model.interpolation_latents(a, b, steps=3, spherical=True))
    np.testing.assert_allclose(z[0], a, atol=1e-6)
    np.testing.assert_allclose(z[-1], b, atol=1e-6)
    # halfway: 45 degrees between them, the norm halfway between 1 and 2
    np.testing.assert_allclose(z[1], 1.5 * np.array([1, 1, 0, 0]) / np.sqrt(2), atol=1e-6)


@pytest.mark.parametrize("a, b, expected", [
    (1.5, 2, "got shape ()"),
    ([1.0, 2.0], 2, "got shape (2,)"),
    ("one", 2, "got 'one'"),
    ([np.nan] * 4, 2, "NaN/Inf"),
])
def test_interpolation_endpoints_that_are_neither_seeds_nor_latents_are_refused(a, b, expected):
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    with pytest.raises(ValueError, match="expected an endpoint that is a seed") as e:
        model.interpolate(a, b)
    assert expected in str(e.value)


def test_interpolation_of_an_unconditional_model_refuses_a_label():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    with pytest.raises(ValueError, match="unconditional"):
        model.interpolate(1, 2, label=3)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("runs") / "dcgan-digits"
    assert zoo_command("train", "dcgan", "--dataset", "digits", "--set", "latent_dim=4",
                       "--set", "filters=4", "--steps-per-epoch", 2, "--batch-size", 16,
                       "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    return run


def test_sample_interpolate_writes_a_strip(dcgan_run, tmp_path):
    out = tmp_path / "strip.png"
    assert zoo_command("sample", dcgan_run, "--interpolate", "3,9", "--steps", 6,
                       "--spherical", "--out", out) == 0
    width, height = Image.open(out).size
    assert width > 5 * height  # one row of six tiles


@pytest.mark.parametrize("argv, expected", [
    (["--interpolate", "3"], "expected two seeds A,B"),
    (["--interpolate", "3,x"], "expected two seeds A,B"),
    (["--interpolate", "1,2,3"], "expected two seeds A,B"),
    (["--interpolate", "3,-4"], "expected two seeds A,B"),
    (["--interpolate", "3,4", "--option", "label=1"], "no sampler option 'label'"),
    (["--steps", "4"], "--steps and --spherical go with --interpolate"),
])
def test_bad_interpolation_on_the_command_line_is_one_line(dcgan_run, argv, expected, capsys):
    before = files(dcgan_run)
    assert zoo_command("sample", dcgan_run, *argv) == 2
    one_error_line(capsys, expected)
    assert files(dcgan_run) == before
