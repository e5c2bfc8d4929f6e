"""Super-resolution by diffusion: the low-resolution input's checks (in Python and in
a traced signature), the conditioning image, the bank of training images that
``sample`` super-resolves, and ``zoo train sr_diffusion`` end to end."""

import os

import numpy as np
import pytest
import tensorflow as tf

import zoo
from test_cli import read, zoo as run_zoo
from zoo import runs

TINY = dict(timesteps=4, channels=4, channel_mults=(1,), num_res_blocks=1, bank_size=4)


def levels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return zoo.get("sr_diffusion", dataset="digits", **TINY)


def test_low_resolution_input_is_checked(model):
    assert model.low_shape == (4, 4, 1)
    low = np.asarray(model.downsample(levels(2)))
    assert model.super_resolve(low, seed=0, num_steps=2).shape == (2, 8, 8, 1)
    assert model.super_resolve(low[:0], seed=0).shape == (0, 8, 8, 1)
    shape = r"sr_diffusion.super_resolve: expected low-resolution raw pixel values of shape " \
            r"\(batch, 4, 4, 1\)"
    for wrong in (levels(2), low[0], np.zeros((2, 4, 4, 2), np.float32)):
        with pytest.raises(ValueError, match=shape):
            model.super_resolve(wrong)
    with pytest.raises(ValueError, match=r"expected low-resolution raw pixel values in "
                                         r"\[0, 17\], got \["):
        model.super_resolve(low + 20)
    with pytest.raises(ValueError, match="num_steps"):
        model.super_resolve(low, num_steps=5)
    # Traced, as in the exported signature: a shape known only at run time is
    # checked when traced, values by a graph assertion.
    with pytest.raises(ValueError, match=shape):
        tf.function(lambda x: model.super_resolve(x, seed=0)).get_concrete_function(
            tf.TensorSpec((None, 8, 8, 1), tf.float32))
    traced = tf.function(lambda x: model.super_resolve(x, seed=0, num_steps=2),
                         input_signature=[tf.TensorSpec((None, 4, 4, 1), tf.float32)])
    assert traced(low).shape == (2, 8, 8, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected low-resolution raw "
                                                             "pixel values"):
        traced(low - 20.0)


def test_conditioning_and_the_bank_of_sample(model):
    x = levels(3)
    low = np.asarray(model.downsample(x))
    np.testing.assert_allclose(low[:, 0, 0, 0], x[:, :2, :2, 0].mean(axis=(1, 2)), rtol=1e-6)
    condition = np.asarray(model.condition(low))
    assert condition.shape == (3, 8, 8, 1)
    fresh = zoo.get("sr_diffusion", dataset="digits", **TINY)
    assert not np.any(np.asarray(fresh.low_res_bank))  # blank before training
    fresh.compute_losses(x, training=True)
    bank = np.asarray(fresh.low_res_bank)
    np.testing.assert_array_equal(bank, low[[0, 1, 2, 0]])  # the first batch, repeated
    fresh.compute_losses(levels(3, seed=1), training=True)
    np.testing.assert_array_equal(np.asarray(fresh.low_res_bank), bank)  # kept
    samples = np.asarray(fresh.sample(5, seed=1, num_steps=2))
    assert samples.shape == (5, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 16
    with pytest.raises(TypeError, match="no likelihood"):
        fresh.nll(x)
    assert np.all(np.isfinite(np.asarray(fresh.conditional_nll(x, seed=0))))
    assert not fresh.can_complete


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"expected factor to be an int >= 2 that divides the "
                                         r"height and width \(8, 8\), got 3"):
        zoo.get("sr_diffusion", dataset="digits", **{**TINY, "factor": 3})
    with pytest.raises(ValueError, match="expected bank_size to be an int >= 1, got 0"):
        zoo.get("sr_diffusion", dataset="digits", **{**TINY, "bank_size": 0})


@pytest.mark.slow
def test_train_sample_evaluate_export(tmp_path, capsys, data_dir):
    run = tmp_path / "sr"
    assert run_zoo("train", "sr_diffusion", "--dataset", "digits", "--set", "timesteps=4",
                   "--set", "channels=4", "--set", "channel_mults=[1]", "--set",
                   "bank_size=4", "--steps-per-epoch", "2", "--batch-size", "32",
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    model, _, _ = runs.load_checkpoint(run)
    assert np.any(np.asarray(model.low_res_bank))  # filled by the first step, and saved
    assert run_zoo("sample", run, "-n", 8) == 0
    assert run_zoo("evaluate", run, "--num-samples", 100) == 0
    metrics = read(run / "metrics.json")
    assert "nll_nats" not in metrics and np.isfinite(metrics["sample_quality"]["fid"])
    assert "super-resolutions of 4 low-resolution" in metrics["samples"]
    assert run_zoo("export", run, "--base", tmp_path / "exports") == 0
    assert os.path.isfile(tmp_path / "exports" / "sr_diffusion" / "1" / "saved_model.pb")
    capsys.readouterr()
