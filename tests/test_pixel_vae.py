"""PixelVAE: a VAE whose decoder is a Gated PixelCNN given z: its decoder is causal,
its bound is a bound (the IWAE bound above it), sampling is one loop given z, and
bad arguments are refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import zoo

TINY = dict(latent_dim=2, filters=4, hidden_units=8, decoder_filters=4, decoder_layers=2,
            decoder_units=8)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = zoo.get("pixel_vae", dataset="digits", **TINY)
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.2 * rng.standard_normal(v.shape).astype("float32"))
    return model


def digits_batch(n=8):
    return load_digits().images[:n, :, :, None].astype("float32")


def test_a_value_changes_no_conditional_before_it(model):
    x = digits_batch(1)
    z = tf.constant([[0.3, -0.7]])

    def conditionals(x):
        observed = model.deterministic_observed(tf.constant(x))
        return tf.reshape(model.observation_model.log_prob(
            observed, model.pixel_params(observed, z)), [-1]).numpy()

    base = conditionals(x)
    for j in range(0, 64, 5):
        changed = x.copy().reshape(1, 64)
        changed[0, j] = (changed[0, j] + 7) % 17
        other = conditionals(changed.reshape(1, 8, 8, 1))
        np.testing.assert_array_equal(other[:j], base[:j], err_msg=f"value {j}")


def test_the_bound_is_below_the_importance_weighted_one(model):
    x = digits_batch()
    elbo = np.mean([model.elbo(x, seed=s).numpy() for s in range(4)], axis=0)
    iwae = np.mean([model.importance_weighted_bound(x, num_samples=8, seed=s).numpy()
                    for s in range(4)], axis=0)
    assert np.all(np.isfinite(elbo)) and np.mean(iwae) >= np.mean(elbo)


def test_samples_are_drawn_one_value_at_a_time_given_z(model):
    z = tf.constant([[0.5, 0.1], [-1.0, 2.0]])
    seed = tf.constant([1, 2])
    drawn = model.generate(z, seed).numpy()
    noise = tf.random.stateless_uniform([2, 8, 8, 1, 1], seed)  # drawn before the loop
    step = tf.function(lambda x, i: model.observation_model.sample_from_noise(
        model.pixel_params(model.deterministic_observed(x), z), noise))
    flat = np.zeros((2, 64), np.float32)
    for i in range(64):
        values = step(tf.constant(flat.reshape(2, 8, 8, 1)), tf.constant(i))
        flat[:, i] = tf.reshape(values, [2, 64])[:, i]
    np.testing.assert_array_equal(drawn, flat.reshape(2, 8, 8, 1))
    samples = model.sample(3, seed=4).numpy()
    assert samples.shape == (3, 8, 8, 1) and np.all(samples == np.round(samples))
    assert samples.min() >= 0 and samples.max() <= 16
    assert model.reconstruct(digits_batch(2)).shape == (2, 8, 8, 1)


@pytest.mark.slow  # 7 s of XLA compile; vq_vae_prior's loop runs under XLA by default
def test_the_xla_loop_draws_what_the_plain_graph_loop_draws(model):
    """With ``xla_sampling`` on (off by default: XLA lost at zoo sample's 64
    images, bench/autoregressive_sampling.py), the decoder's loop runs under XLA,
    draws the plain graph's levels for the same seed (the same uniforms,
    parameters equal to float rounding) and decodes the same means to rounding."""
    z = tf.constant([[0.5, 0.1], [-1.0, 2.0]])
    seed = tf.constant([1, 2])
    plain, means = model.generate(z, seed).numpy(), model.generate(z).numpy()
    model.xla_sampling = True
    try:
        np.testing.assert_array_equal(model.generate(z, seed).numpy(), plain)
        np.testing.assert_allclose(model.generate(z).numpy(), means, rtol=1e-5, atol=1e-4)
        assert {"generate", "decode"} <= set(model._xla.functions)
    finally:
        del model.xla_sampling  # the class's again


@pytest.mark.parametrize("overrides, expected", [
    (dict(decoder_layers=0), "expected decoder_filters, decoder_layers and decoder_units >= 1"),
    (dict(decoder_kernel=2), "expected an odd decoder_kernel >= 1, got 2"),
    (dict(observation="gaussian"), "expected an observation model of the discrete levels"),
])
def test_bad_arguments_are_refused(overrides, expected):
    with pytest.raises(ValueError, match=expected):
        zoo.get("pixel_vae", dataset="digits", **{**TINY, **overrides})
