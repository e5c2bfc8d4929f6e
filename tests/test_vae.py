"""The Gaussian VAE: its likelihoods, its KL, and its bounds against exact integrals."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from sklearn.datasets import load_digits

import zoo
from zoo.vae.gaussian_vae import GaussianVAE

tfd = tfp.distributions


def test_kl_matches_tfp():
    rng = np.random.default_rng(1)
    mean = rng.standard_normal((4, 3)).astype("float32")
    log_scale = rng.uniform(-2, 1, (4, 3)).astype("float32")
    expected = tf.reduce_sum(tfd.kl_divergence(
        tfd.Normal(mean, np.exp(log_scale)), tfd.Normal(0.0, 1.0)), axis=-1)
    np.testing.assert_allclose(GaussianVAE.kl_divergence(mean, log_scale).numpy(),
                               expected.numpy(), rtol=1e-5, atol=1e-6)


def tiny_vae(**overrides):
    config = dict(latent_dim=1, filters=4, hidden_units=16)
    config.update(overrides)
    keras.utils.set_random_seed(0)
    model = zoo.get("vae", dataset="digits", **config)
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype("float32"))
    return model


def digits_batch(n=3):
    """The first `n` of scikit-learn's digits, as raw levels (n, 8, 8, 1)."""
    return load_digits().images[:n, :, :, None].astype("float32")


def exact_bounds(model, x):
    """log p(x) and the exact ELBO, by quadrature (float64) over a 1-D latent."""
    grid = np.linspace(-12.0, 12.0, 12001)
    dz = grid[1] - grid[0]
    mean, log_scale = (t.numpy()[:, 0].astype("float64") for t in model.posterior(tf.constant(x)))
    log_prior = -0.5 * (grid**2 + math.log(2 * math.pi))
    log_p, elbo = [], []
    for i in range(len(x)):
        repeated = tf.constant(np.repeat(x[i : i + 1], len(grid), axis=0))
        log_lik = model.decoder_log_prob(repeated, tf.constant(grid[:, None], tf.float32))
        log_lik = log_lik.numpy().astype("float64")
        log_p.append(np.logaddexp.reduce(log_lik + log_prior) + math.log(dz))
        scale = math.exp(log_scale[i])
        q = np.exp(-0.5 * ((grid - mean[i]) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
        kl = 0.5 * (mean[i] ** 2 + scale**2 - 1.0 - 2.0 * log_scale[i])
        elbo.append(np.sum(q * log_lik) * dz - kl)
    return np.array(log_p), np.array(elbo)


def test_elbo_and_importance_weighted_bound_against_quadrature():
    model = tiny_vae()
    x = digits_batch()
    log_p, exact_elbo = exact_bounds(model, x)
    assert np.all(exact_elbo < log_p)  # the gap is KL(q(z|x) || p(z|x)) > 0
    # The one-sample Monte Carlo ELBO averages to the exact ELBO.
    # 400 independent draws per example, in one call: each copy gets its own noise.
    draws = model.elbo(np.tile(x, (400, 1, 1, 1)), seed=0).numpy().reshape(400, len(x))
    stderr = draws.std(axis=0) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact_elbo) < 4 * stderr + 1e-3)
    # The importance-weighted bound lies between and tightens towards log p(x).
    iwae_8 = model.importance_weighted_bound(x, num_samples=8, seed=0).numpy()
    iwae_4096 = model.importance_weighted_bound(x, num_samples=4096, seed=0).numpy()
    assert np.all(exact_elbo < iwae_4096)
    assert np.all(np.abs(iwae_4096 - log_p) < np.abs(iwae_8 - log_p) + 1e-3)
    np.testing.assert_allclose(iwae_4096, log_p, atol=0.05)


def test_losses_name_their_terms_and_beta_weights_only_the_loss():
    x = tf.constant(digits_batch(8))
    terms = {}
    for beta in (1.0, 4.0):
        model = tiny_vae(beta=beta)
        tf.random.set_seed(3)
        terms[beta] = {k: float(v) for k, v in model.compute_losses(x).items()}
    for beta, t in terms.items():
        np.testing.assert_allclose(t["loss"], t["reconstruction"] + beta * t["kl"], rtol=1e-6)
        np.testing.assert_allclose(t["bits_per_dim"],
                                   (t["reconstruction"] + t["kl"]) / (64 * math.log(2)),
                                   rtol=1e-6)
    np.testing.assert_allclose(terms[4.0]["bits_per_dim"], terms[1.0]["bits_per_dim"], rtol=1e-6)
    assert terms[4.0]["loss"] > terms[1.0]["loss"]


def test_samples_are_levels_of_the_data():
    logistic = tiny_vae().sample(16, seed=0).numpy()
    assert logistic.shape == (16, 8, 8, 1)
    assert np.array_equal(logistic, np.round(logistic))
    assert logistic.min() >= 0 and logistic.max() <= 16
    bits = tiny_vae(observation="bernoulli").sample(16, seed=0).numpy()
    assert set(np.unique(bits)) <= {0.0, 16.0}


def test_rejects_non_integer_levels_and_bad_settings():
    model = tiny_vae()
    with pytest.raises(ValueError, match="expected integer pixel levels"):
        model.elbo(np.full((2, 8, 8, 1), 3.5, "float32"))
    with pytest.raises(ValueError, match="expected observation in"):
        zoo.get("vae", observation="poisson")
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 1\)"):
        model.decode(np.zeros((2, 3), "float32"))


def test_training_lowers_the_negative_elbo(data_dir):
    model = zoo.get("vae", dataset="digits", latent_dim=4, filters=8, hidden_units=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    test = zoo.datasets.load("digits", "test", batch_size=100, data_dir=data_dir)
    before = zoo.metrics.evaluate_likelihood(model, test, seed=0)
    again = zoo.metrics.evaluate_likelihood(model, test, seed=0)
    assert before == again  # reproducible from its seed
    model.fit(zoo.datasets.load("digits", "train", batch_size=64, data_dir=data_dir),
              epochs=3, verbose=0)
    after = zoo.metrics.evaluate_likelihood(model, test, seed=0)
    assert after["bits_per_dim"] < before["bits_per_dim"] - 0.5
