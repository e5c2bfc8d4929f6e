"""Latent diffusion: the latent scale fixed from the first training batch, samples
decoded to the data's shape, the bound through a VAE first stage and none through a
VQ-VAE, a first stage of another dataset refused (in Python and on the command line),
and ``zoo train latent_diffusion --first-stage RUN`` end to end on a tiny VAE run."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import zoo
from test_cli import one_error_line, read, zoo as run_zoo
from test_two_stage_vae import TINY_VAE, edit_run, vae_run  # noqa: F401 (a fixture)
from zoo import runs

TINY = dict(timesteps=4, hidden_units=8, num_hidden=1, channels=4, num_res_blocks=1)
TINY_LATENT = ["--set", "timesteps=4", "--set", "hidden_units=8", "--set", "num_hidden=1",
               "--steps-per-epoch", "2", "--batch-size", "32"]


def first_stage(model, dataset="digits"):
    """A tiny untrained first stage of `model` ("vae" or "vq_vae") on `dataset`."""
    config = {**zoo.registry.entry(model).config_for(dataset), "latent_dim": 2, "filters": 4,
              "hidden_units": 8}
    if model == "vq_vae":
        config.update(num_embeddings=4, num_residual_blocks=1)
    return zoo.registry.entry(model).cls.from_config(config)


def latent_model(kind, **overrides):
    return zoo.get("latent_diffusion", dataset="digits", first_stage=first_stage(kind),
                   **{**TINY, **overrides})


def levels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1)).astype(np.float32)


def test_latent_scale_is_fixed_from_the_first_training_batch():
    model = latent_model("vq_vae")
    assert float(model.latent_scale) == 0.0 and float(model.scale_factor()) == 1.0
    x = levels(16)
    first = model.first_stage_model
    z_e = first.encoder_output(first.deterministic_observed(x))  # a VQ-VAE's latents
    model.compute_losses(x, training=True)
    expected = 1.0 / np.std(np.asarray(z_e, np.float64))
    np.testing.assert_allclose(float(model.latent_scale), expected, rtol=1e-4)
    model.compute_losses(levels(16, seed=1), training=True)  # fixed once
    np.testing.assert_allclose(float(model.latent_scale), expected, rtol=1e-4)
    model.compute_losses(levels(16, seed=2), training=False)
    np.testing.assert_allclose(float(model.latent_scale), expected, rtol=1e-4)
    assert "latent_scale" not in [w.name for w in model.trainable_weights]
    # The scale maps the latents to the diffusion's space and back.
    np.testing.assert_allclose(np.asarray(model.scale(x)), np.asarray(z_e) * expected,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind, latent_shape", [("vae", (2,)), ("vq_vae", (4, 4, 2))])
def test_samples_and_decoded_latents_have_the_data_shape(kind, latent_shape):
    model = latent_model(kind)
    assert model.latent_shape == latent_shape
    samples = np.asarray(model.sample(3, seed=1, num_steps=2, eta=0.0))
    assert samples.shape == (3, 8, 8, 1)
    assert samples.min() >= 0.0 and samples.max() <= 16.0
    z = model.encode(levels(3), num_steps=2)
    assert z.shape == (3,) + latent_shape
    assert model.decode(z, num_steps=2).shape == (3, 8, 8, 1)
    # Sampling with eta = 0 is decoding x_T: the same deterministic map.
    x_t = tf.random.stateless_normal((2,) + latent_shape,
                                     tf.random.experimental.stateless_fold_in([1, 2], 0))
    np.testing.assert_allclose(np.asarray(model.decode(x_t, num_steps=2)),
                               np.asarray(model.sample(2, seed=[1, 2], num_steps=2, eta=0.0)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"latent_diffusion.decode: expected z of shape"):
        model.decode(np.zeros((2, 8, 8, 1), np.float32))


def test_nll_is_a_bound_through_a_vae_and_none_through_a_vq_vae():
    model = latent_model("vae")
    model.compute_losses(levels(16), training=True)
    assert model.likelihood == "bound"
    x = levels(4)
    nll = np.asarray(model.nll(x, seed=3))
    assert nll.shape == (4,) and np.all(np.isfinite(nll))
    np.testing.assert_array_equal(nll, np.asarray(model.nll(x, seed=3)))
    assert "nll" in model.serving_signatures()

    vq = latent_model("vq_vae")
    assert vq.likelihood == "none"
    with pytest.raises(TypeError, match="has no likelihood"):
        vq.nll(x)
    assert "nll" not in vq.serving_signatures()
    assert not vq.can_complete and not model.can_complete


def test_a_first_stage_of_another_dataset_or_model_is_an_error():
    fashion = first_stage("vae", "fashion_mnist")
    with pytest.raises(ValueError, match=r"LatentDiffusion: expected a first stage of "
                                         r"data_shape \(8, 8, 1\) and num_levels 17 \(the same "
                                         r"dataset\), got \(28, 28, 1\) and 256"):
        zoo.get("latent_diffusion", dataset="digits", first_stage=fashion, **TINY)
    with pytest.raises(ValueError, match="expected a first stage of model 'vae' or 'vq_vae', "
                                         "got 'realnvp'"):
        zoo.get("latent_diffusion", dataset="digits", **TINY,
                first_stage=zoo.get("realnvp", dataset="digits"))
    with pytest.raises(ValueError, match="expected first_stage to be a trained model"):
        zoo.get("latent_diffusion", dataset="digits", **TINY)


def test_a_first_stage_run_of_another_dataset_is_one_error_line(vae_run, tmp_path, capsys,
                                                                  data_dir):
    first = shutil.copytree(vae_run, tmp_path / "vae")
    edit_run("dataset", "fashion_mnist")(first)
    out = tmp_path / "latent"
    capsys.readouterr()
    assert run_zoo("train", "latent_diffusion", "--first-stage", first, *TINY_LATENT,
                   "--out", out, "--data-dir", data_dir) == 2
    one_error_line(capsys, f"first stage '{first}' was trained on 'fashion_mnist', not on "
                           f"'digits'; pass a run of 'vae' or 'vq_vae' on 'digits'")
    assert not os.path.exists(out)


@pytest.mark.slow
def test_train_sample_evaluate_export(vae_run, tmp_path, capsys, data_dir):
    run = tmp_path / "latent"
    assert run_zoo("train", "latent_diffusion", "--first-stage", vae_run, *TINY_LATENT,
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    model, _, _ = runs.load_checkpoint(run)
    assert float(model.latent_scale) > 0  # fixed by the first step, and saved
    assert not model.first_stage_model.trainable_weights
    assert run_zoo("sample", run, "-n", 8) == 0
    assert run_zoo("evaluate", run, "--num-samples", 100) == 0
    metrics = read(run / "metrics.json")
    assert metrics["likelihood"] == "bound" and np.isfinite(metrics["bits_per_dim"])
    assert metrics["latent_scale"] == pytest.approx(float(model.latent_scale))
    assert np.isfinite(metrics["sample_quality"]["fid"])
    assert run_zoo("export", run, "--base", tmp_path / "exports") == 0
    assert os.path.isfile(tmp_path / "exports" / "latent_diffusion" / "1" / "saved_model.pb")
    capsys.readouterr()
