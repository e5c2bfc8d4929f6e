"""The learned prior over a VQ-VAE's codes (vq_vae_prior): a distribution over the
code maps (all of them enumerated), causal, sampled by one compiled loop and
decoded to images; its bound beside the VQ-VAE's; the first stages it refuses;
``zoo train vq_vae_prior --first-stage RUN`` end to end."""

import itertools
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import zoo
from zoo.distributions import Categorical
from test_cli import one_error_line, read, zoo as run_zoo

VQ = dict(latent_dim=2, num_embeddings=3, filters=4, hidden_units=4, num_residual_blocks=1)
PRIOR = dict(filters=8, num_layers=2, output_units=8)


def tiny_prior(num_downsamplings=2, **overrides):
    """A prior (weights moved off their initial values) over a tiny VQ-VAE's
    (8 / 2**n)-square code maps of 3 codes."""
    keras.utils.set_random_seed(0)
    vq = zoo.get("vq_vae", dataset="digits", num_downsamplings=num_downsamplings, **VQ)
    model = zoo.get("vq_vae_prior", dataset="digits", first_stage=vq, **{**PRIOR, **overrides})
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def prior():
    """A tiny prior over 4x4 code maps, shared by the tests that only read it."""
    return tiny_prior(1)


def digits_batch(n=6):
    return load_digits().images[:n, :, :, None].astype("float32")


def test_the_probabilities_of_every_code_map_sum_to_one():
    model = tiny_prior(2)  # 2x2 maps of 3 codes: 81 of them
    grid, k = model.latent_shape, model.num_embeddings
    every = np.array(list(itertools.product(range(k), repeat=int(np.prod(grid)))),
                     np.int32).reshape((-1,) + grid)
    log_p = model.code_log_prob(every).numpy()
    assert len(every) == k ** int(np.prod(grid)) and np.all(log_p < 0)
    np.testing.assert_allclose(np.exp(log_p.astype("float64")).sum(), 1.0, rtol=1e-5)


def test_a_code_changes_no_conditional_before_it(prior):
    model = prior  # 4x4 codes
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, (1, 4, 4)).astype("int32")
    base = model.conditional_log_probs(codes).numpy()[0]
    for j in range(16):
        changed = codes.copy().reshape(1, 16)
        changed[0, j] = (changed[0, j] + 1) % 3
        other = model.conditional_log_probs(changed.reshape(1, 4, 4)).numpy()[0]
        np.testing.assert_array_equal(other[:j], base[:j], err_msg=f"code {j}")
        assert j == 15 or np.any(other[j + 1:] != base[j + 1:])  # the later ones see it


def test_the_compiled_sampler_draws_what_a_python_loop_draws(prior):
    model = prior
    seed = tf.constant([3, 4])
    codes = model.draw_codes(5, seed, 0.7).numpy()
    flat = np.zeros((5, 16), np.int32)
    noise = tf.random.stateless_uniform([5, 16, 1], seed)  # drawn before the loop
    for i in range(16):
        logits = model.logits(tf.constant(flat.reshape(5, 4, 4)))[:, i] / 0.7
        flat[:, i] = Categorical(model.num_embeddings).sample_from_noise(logits, noise[:, i:i + 1])[:, 0]
    np.testing.assert_array_equal(codes, flat.reshape(5, 4, 4))
    samples = model.sample(5, seed=2, temperature=0.7).numpy()
    assert samples.shape == (5, 8, 8, 1)
    assert np.all(samples == np.round(samples)) and samples.min() >= 0 and samples.max() <= 16
    assert model.decode(codes).shape == (5, 8, 8, 1)


def test_the_xla_loop_draws_what_the_plain_graph_loop_draws(prior):
    """With ``xla_sampling`` on (off by default: XLA lost at zoo sample's 64
    images, bench/autoregressive_sampling.py), the code loop runs under XLA and
    draws the plain graph's codes for the same seed (the same uniforms, logits
    equal to float rounding)."""
    seed = tf.constant([3, 4])
    plain = prior.draw_codes(5, seed, 0.7).numpy()
    prior.xla_sampling = True
    try:
        np.testing.assert_array_equal(prior.draw_codes(5, seed, 0.7).numpy(), plain)
        assert {"codes/graph", "codes"} <= set(prior._xla.functions)  # plain, then XLA
    finally:
        del prior.xla_sampling  # the class's again


def test_the_bound_is_the_vq_vaes_with_the_prior_in_place_of_the_uniform_one(prior):
    model = prior
    x = digits_batch()
    terms = model.evidence(x, seed=5)
    first = model.first_stage_model
    # The uniform bound is the VQ-VAE's own; the learned one swaps its KL, N log K,
    # for -log p(codes).
    np.testing.assert_allclose(terms["uniform_elbo"], first.elbo(x, seed=5), rtol=1e-6)
    np.testing.assert_allclose(terms["uniform_kl"], 16 * np.log(3), rtol=1e-6)
    np.testing.assert_allclose(terms["kl"], -model.code_log_prob(first.encode(x)), rtol=1e-6)
    np.testing.assert_allclose(terms["elbo"], -terms["reconstruction"] - terms["kl"], rtol=1e-6)
    np.testing.assert_allclose(model.nll(x, seed=5), -terms["elbo"], rtol=1e-6)


def test_the_first_stage_is_copied_and_checked():
    vq = zoo.get("vq_vae", dataset="digits", **VQ)
    model = zoo.get("vq_vae_prior", dataset="digits", first_stage=vq, **PRIOR)
    assert model.first_stage_model is not vq and vq.trainable
    assert not model.first_stage_model.trainable_weights
    assert model.get_config()["first_stage"] == {"model": "vq_vae", "config": vq.get_config()}
    assert model.get_config()["num_embeddings"] == 3
    with pytest.raises(ValueError, match="expected a first stage of model 'vq_vae', got 'vae'"):
        zoo.get("vq_vae_prior", dataset="digits", first_stage=zoo.get("vae", "digits"))
    with pytest.raises(ValueError, match=r"expected a first stage of data_shape \(28, 28, 1\) "
                                         r"and num_levels 256 \(the same dataset\), got "
                                         r"\(8, 8, 1\) and 17"):
        zoo.get("vq_vae_prior", dataset="fashion_mnist", first_stage=vq)
    with pytest.raises(ValueError, match="expected a first stage with a codebook of "
                                         "num_embeddings=5 codes, got one of 3"):
        zoo.get("vq_vae_prior", dataset="digits", first_stage=vq, num_embeddings=5)
    with pytest.raises(ValueError, match="expected first_stage to be a trained model"):
        zoo.get("vq_vae_prior", dataset="digits")


@pytest.mark.parametrize("method, value, error, expected", [
    ("code_log_prob", np.full((2, 4, 4), 3, np.int32), ValueError, "in [0, 3)"),
    ("code_log_prob", np.zeros((2, 4, 4), np.float32), TypeError, "an integer dtype"),
    ("conditional_log_probs", np.zeros((2, 2, 2), np.int32), ValueError,
     "expected codes of shape (batch, 4, 4), got shape (2, 2, 2)"),
    ("decode", np.full((1, 4, 4), -1, np.int32), ValueError, "in [0, 3)"),
    ("nll", np.full((1, 8, 8, 1), 0.5, np.float32), ValueError, "integer"),
    ("encode", np.full((1, 8, 8, 1), 17.0, np.float32), ValueError, "[0, 16]"),
], ids=["code-range", "code-dtype", "code-shape", "decode-range", "levels", "level-range"])
def test_bad_input_is_an_error_naming_what_was_expected(method, value, error, expected, prior):
    model = prior
    with pytest.raises(error) as raised:
        getattr(model, method)(value)
    assert f"vq_vae_prior.{method}" in str(raised.value) and expected in str(raised.value)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, seed=0, temperature=0.0)


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory, data_dir):
    """A finished one-epoch run of a tiny VQ-VAE on digits (2 steps of 32)."""
    run = tmp_path_factory.mktemp("runs") / "vq-digits"
    assert run_zoo("train", "vq_vae", "--dataset", "digits", "--set", "latent_dim=2",
                   "--set", "num_embeddings=4", "--set", "filters=4", "--set", "hidden_units=4",
                   "--set", "num_residual_blocks=1", "--steps-per-epoch", 2, "--batch-size", 32,
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    return run


TINY_PRIOR = ["--set", "filters=4", "--set", "num_layers=2", "--set", "output_units=8",
              "--steps-per-epoch", "2", "--batch-size", "32"]


@pytest.mark.slow  # train, evaluate (FID of 100 samples) and export: a minute or more
def test_zoo_train_vq_vae_prior_end_to_end(vq_run, tmp_path, capsys, data_dir):
    run = tmp_path / "prior"
    assert run_zoo("train", "vq_vae_prior", "--first-stage", vq_run, *TINY_PRIOR,
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    assert os.path.isfile(run / "samples" / "epoch_0001.png")
    assert run_zoo("evaluate", run, "--num-samples", 100) == 0
    metrics = read(run / "metrics.json")
    uniform = metrics["uniform_prior"]
    assert metrics["likelihood"] == "bound" and np.isfinite(metrics["nll_nats"])
    assert uniform["num_examples"] == metrics["num_examples"]
    # Same reconstructions: the bounds differ by the KL terms alone.
    np.testing.assert_allclose(uniform["nll_nats"] - metrics["nll_nats"],
                               uniform["kl_nats"] - uniform["learned_kl_nats"], rtol=1e-4)
    assert np.isfinite(metrics["sample_quality"]["fid"])
    assert run_zoo("export", run, "--base", tmp_path / "exports") == 0
    assert os.path.isfile(tmp_path / "exports" / "vq_vae_prior" / "1" / "saved_model.pb")
    capsys.readouterr()


@pytest.mark.parametrize("argv, expected", [
    (["--set", "num_embeddings=5"], "expected a first stage with a codebook of "
                                    "num_embeddings=5 codes, got one of 4"),
    (["--dataset", "fashion_mnist"],
     "first stage '{first}' was trained on 'digits', not on 'fashion_mnist'"),
], ids=["codebook", "dataset"])
def test_a_first_stage_of_another_codebook_or_dataset_is_one_error_line(
        argv, expected, vq_run, tmp_path, capsys, data_dir):
    out = tmp_path / "prior"
    capsys.readouterr()
    assert run_zoo("train", "vq_vae_prior", "--first-stage", vq_run, *TINY_PRIOR, *argv,
                   "--out", out, "--data-dir", data_dir) == 2
    one_error_line(capsys, expected.format(first=vq_run))
    assert not os.path.exists(out)
