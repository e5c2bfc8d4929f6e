"""The Gumbel-softmax VAE: the relaxation, its KL, its schedule, and its bounds
against enumeration of every latent value."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import zoo
from zoo.vae.gumbel_vae import gumbel_noise, gumbel_softmax


def tiny_model(**overrides):
    """N = 2 variables of K = 3 categories, weights moved off their initialisation;
    the logits' layer and the decoder's first layer more, so that q(z|x) is far
    from uniform and log p(x|z) varies with z by about a nat."""
    config = dict(num_variables=2, num_categories=3, filters=4, hidden_units=16)
    config.update(overrides)
    keras.utils.set_random_seed(0)
    model = zoo.get("gumbel_vae", dataset="digits", **config)
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        scale = 0.5 if "encoder/out" in v.path or "decoder/hidden" in v.path else 0.1
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))
    return model


def digits_batch(n=3):
    """The first `n` of scikit-learn's digits, as raw levels (n, 8, 8, 1)."""
    return load_digits().images[:n, :, :, None].astype("float32")


def test_gumbel_softmax_sums_to_one_and_hardens_as_the_temperature_falls():
    logits = tf.constant(np.log([[0.1, 0.2, 0.3, 0.4]] * 5000), tf.float32)
    max_prob = []
    for tau in (5.0, 1.0, 0.5, 0.1, 0.01):
        y = gumbel_softmax(logits, tau, tf.constant([1, 2])).numpy()
        assert np.all(y >= 0)
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)
        max_prob.append(y.max(axis=-1).mean())
    assert all(a < b for a, b in zip(max_prob, max_prob[1:])), max_prob
    assert max_prob[0] < 0.4 and max_prob[-1] > 0.99
    hard = gumbel_softmax(logits, 1.0, tf.constant([1, 2]), hard=True).numpy()
    assert set(np.unique(hard)) == {0.0, 1.0} and np.all(hard.sum(axis=-1) == 1.0)


def test_argmax_frequencies_match_the_softmax():
    """The Gumbel-max trick: argmax(logits + g) ~ Cat(softmax(logits))."""
    n, probs = 40000, np.array([0.05, 0.15, 0.3, 0.5])
    logits = tf.constant(np.broadcast_to(np.log(probs) + 1.7, (n, 4)), tf.float32)
    y = gumbel_softmax(logits, 0.01, tf.constant([3, 4])).numpy()
    assert y.max(axis=-1).mean() > 0.99  # nearly one-hot (0.996 expected)
    freq = np.bincount(y.argmax(axis=-1), minlength=4) / n
    # Four standard errors of a frequency (at most 0.01 here).
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / n)), freq


def test_analytic_kl_matches_monte_carlo():
    model = tiny_model(num_variables=3, num_categories=4)
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 1.5, (2, 3, 4))
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    analytic = model.categorical_kl(tf.constant(log_probs, tf.float32)).numpy()
    assert np.all(analytic > 0)
    n = 200000
    for i in range(2):
        # z ~ q, then log q(z) - log p(z), with log p(z) = -N log K.
        draws = np.stack([rng.choice(4, n, p=np.exp(log_probs[i, j])) for j in range(3)])
        log_ratio = log_probs[i, np.arange(3)[:, None], draws].sum(axis=0) + 3 * math.log(4)
        stderr = log_ratio.std() / math.sqrt(n)
        assert abs(log_ratio.mean() - analytic[i]) < 4 * stderr, (log_ratio.mean(), analytic[i])
    # Uniform posterior: no KL; a one-hot one: N log K.
    np.testing.assert_allclose(model.categorical_kl(tf.fill([1, 3, 4], -math.log(4))), 0.0,
                               atol=1e-6)
    one_hot = tf.constant(np.log(np.eye(4)[[0, 1, 2]] + 1e-30)[None], tf.float32)
    np.testing.assert_allclose(model.categorical_kl(one_hot), 3 * math.log(4), rtol=1e-6)


def enumerate_latents(model, x):
    """Every one of the K^N latent values: (log p(x|z) (B, M), log q(z|x) (B, M))."""
    n, k = model.latent_shape
    values = np.array(list(itertools.product(range(k), repeat=n)))  # (M, N)
    z = np.eye(k, dtype="float32")[values]  # (M, N, K)
    observed = tf.constant(x)
    log_lik = model.decoder_log_prob(observed, tf.constant(np.repeat(z[:, None], len(x), 1)))
    log_probs = model.posterior_log_probs(observed).numpy().astype("float64")  # (B, N, K)
    log_q = log_probs[:, np.arange(n), values].sum(axis=-1)  # (B, M)
    return log_lik.numpy().T.astype("float64"), log_q


def test_bounds_against_enumeration_of_every_latent():
    model = tiny_model()
    x = digits_batch()
    log_lik, log_q = enumerate_latents(model, x)
    log_prior = -2 * math.log(3)
    q = np.exp(log_q)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-6)
    log_p = np.logaddexp.reduce(log_lik + log_prior, axis=1)
    log_w = log_lik + log_prior - log_q  # (B, M)
    exact_elbo = np.sum(q * log_w, axis=1)
    # E L_2 = sum_{z, z'} q(z) q(z') log((w + w') / 2), over all K^N x K^N pairs.
    pairs = np.logaddexp(log_w[:, :, None], log_w[:, None, :]) - math.log(2)
    exact_iwae_2 = np.einsum("bi,bj,bij->b", q, q, pairs)
    # Jensen's gaps: strict for a posterior that is not the exact one (here 0.3 to
    # 0.8 nats between the ELBO and log p(x)).
    assert np.all(exact_elbo < exact_iwae_2 - 0.05) and np.all(exact_iwae_2 < log_p - 0.05)
    # Each example repeated: independent posterior draws in one call.
    repeated = np.repeat(x, 1000, axis=0)
    # The model's one-sample ELBO (hard samples, analytic KL) averages to the exact ELBO.
    draws = model.elbo(repeated, seed=0).numpy().reshape(len(x), -1)
    stderr = draws.std(axis=1) / math.sqrt(draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - exact_elbo) < 4 * stderr + 1e-4)
    # Its two-sample importance-weighted bound averages to the exact E L_2.
    draws = model.importance_weighted_bound(repeated, num_samples=2, seed=0).numpy()
    draws = draws.reshape(len(x), -1)
    stderr = draws.std(axis=1) / math.sqrt(draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - exact_iwae_2) < 4 * stderr + 1e-4)
    # Many samples: near log p(x), within 4 standard deviations of the estimate,
    # sqrt(chi^2(p(z|x) || q(z|x)) / k) (the delta method; chi^2 exactly, from the
    # enumeration), and its bias chi^2 / 2k.
    k = 16384
    chi2 = np.sum(np.exp(2 * (log_w - log_p[:, None]) + log_q), axis=1) - 1.0
    tolerance = 4 * np.sqrt(chi2 / k) + chi2 / (2 * k)
    assert np.all(tolerance < 0.2 * (log_p - exact_elbo)), tolerance
    bound = tf.function(lambda x: model.importance_weighted_bound(x, num_samples=k, seed=0))
    iwae = bound(tf.constant(x)).numpy()  # in a graph: its chunks' loop runs faster
    assert np.all(np.abs(iwae - log_p) < tolerance), (iwae, log_p, tolerance)


def test_training_relaxes_the_sample_the_bounds_draw():
    model = tiny_model(temperature=2.0, min_temperature=0.3, anneal_rate=0.01)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.iterations.assign(30)
    tau = 2.0 * math.exp(-0.3)
    observed = tf.constant(digits_batch())
    seed = tf.constant([5, 6])
    hard = model.infer(observed, seed, 4)["z"].numpy()
    relaxed = model.infer(observed, seed, 4, training=True)["z"].numpy()
    log_probs = model.posterior_log_probs(observed).numpy()
    g = gumbel_noise(tf.constant([4, 3, 2, 3]), seed).numpy()
    expected = tf.nn.softmax((log_probs + g) / tau, axis=-1).numpy()
    np.testing.assert_allclose(relaxed, expected, rtol=1e-5, atol=1e-6)
    # The same noise: the relaxed sample's argmax is the categorical sample.
    assert set(np.unique(hard)) == {0.0, 1.0}
    np.testing.assert_array_equal(relaxed.argmax(-1), hard.argmax(-1))
    # Straight-through: one-hot forward, the relaxed sample's gradient backward.
    st = tiny_model(temperature=2.0, min_temperature=0.3, anneal_rate=0.01,
                    straight_through=True)
    weights = tf.constant(np.random.default_rng(0).standard_normal((3, 2, 3)), tf.float32)
    with tf.GradientTape() as tape:
        z = st.infer(observed, seed, 1, training=True)["z"]
        value = tf.reduce_sum(z[0] * weights)
    np.testing.assert_array_equal(z.numpy(), hard[:1])  # tau_0 = 2 here; same argmax
    grads = tape.gradient(value, st.encoder.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_temperature_schedule():
    model = tiny_model(temperature=1.5, min_temperature=0.5, anneal_rate=0.01)
    x = tf.constant(digits_batch(4))
    assert float(model.compute_losses(x)["temperature"]) == 1.5  # no optimizer yet
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    for step in (0, 10, 50, 109, 110, 1000):
        model.optimizer.iterations.assign(step)
        expected = max(0.5, 1.5 * math.exp(-0.01 * step))  # 0.5 from step 110 on
        np.testing.assert_allclose(float(model.current_temperature()), expected, rtol=1e-6)
        np.testing.assert_allclose(float(model.compute_losses(x, training=True)["temperature"]),
                                   expected, rtol=1e-6)
    # fit reports the mean temperature of its steps (t = 0, 1, 2).
    model.optimizer.iterations.assign(0)
    history = model.fit(tf.data.Dataset.from_tensor_slices(digits_batch(6)).batch(2),
                        epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["temperature"][0],
                               np.mean([1.5 * math.exp(-0.01 * t) for t in range(3)]), rtol=1e-5)
    assert model.loss_names == ("loss", "reconstruction", "kl", "bits_per_dim", "temperature")


def test_encode_decode_and_samples():
    model = tiny_model()
    x = digits_batch(4)
    probs = model.encode(x).numpy()
    assert probs.shape == (4, 2, 3)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)
    mean = model.decode(probs).numpy()  # relaxed codes decode
    assert mean.shape == (4, 8, 8, 1) and mean.min() >= 0 and mean.max() <= 16
    mode = np.eye(3, dtype="float32")[probs.argmax(-1)]
    np.testing.assert_allclose(model.reconstruct(x).numpy(), model.decode(mode).numpy(),
                               rtol=1e-6)
    samples = model.sample(16, seed=0).numpy()
    assert samples.shape == (16, 8, 8, 1) and np.array_equal(samples, np.round(samples))
    # The prior's draws: one-hot, each category about 1/K of the time.
    prior = model.draw_prior(tf.constant(30000), tf.constant([0, 1])).numpy()
    assert np.all(prior.sum(-1) == 1.0) and set(np.unique(prior)) == {0.0, 1.0}
    np.testing.assert_allclose(prior.mean(axis=0), 1 / 3, atol=4 * math.sqrt(2 / 9 / 30000))
    np.testing.assert_allclose(model.log_prior(tf.constant(prior[:2])), -2 * math.log(3),
                               rtol=1e-6)


@pytest.mark.slow  # by default the contract's fit step trains it
def test_training_lowers_the_negative_elbo(data_dir):
    model = zoo.get("gumbel_vae", dataset="digits", num_variables=4, num_categories=4,
                    filters=8, hidden_units=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    test = zoo.datasets.load("digits", "test", batch_size=100, data_dir=data_dir)
    before = zoo.metrics.evaluate_likelihood(model, test, seed=0)
    model.fit(zoo.datasets.load("digits", "train", batch_size=64, data_dir=data_dir),
              epochs=3, verbose=0)
    after = zoo.metrics.evaluate_likelihood(model, test, seed=0)
    assert after["bits_per_dim"] < before["bits_per_dim"] - 0.5


def test_rejects_bad_settings_and_inputs():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="expected temperature > 0"):
            tiny_model(temperature=bad)
        with pytest.raises(ValueError, match="expected temperature > 0"):
            gumbel_softmax(tf.zeros([2, 3]), bad, tf.constant([0, 0]))
    with pytest.raises(ValueError, match="expected 0 < min_temperature <= temperature"):
        tiny_model(min_temperature=0.0)
    with pytest.raises(ValueError, match="expected 0 < min_temperature <= temperature"):
        tiny_model(temperature=0.4, min_temperature=0.5)
    with pytest.raises(ValueError, match="expected anneal_rate >= 0"):
        tiny_model(anneal_rate=-1e-4)
    with pytest.raises(ValueError, match="expected num_categories >= 2"):
        tiny_model(num_categories=1)
    with pytest.raises(TypeError, match="latent_dim is num_variables"):
        tiny_model(latent_dim=6)
    model = tiny_model()
    one_hot = np.eye(3, dtype="float32")[[[0, 1], [2, 2]]]
    model.decode(one_hot)  # fine
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 2, 3\)"):
        model.decode(np.zeros((2, 3, 2), "float32"))
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 2, 3\)"):
        model.decode(one_hot.reshape(2, 6))
    with pytest.raises(ValueError, match=r"expected z in \[0, 1\]"):
        model.decode(2.0 * one_hot - 0.5)
    not_a_distribution = np.full((2, 2, 3), 0.5, "float32")
    with pytest.raises(ValueError, match="summing to 1 along its 3 categories"):
        model.decode(not_a_distribution)
    with pytest.raises(ValueError, match=r"expected shape \(batch,\) \+ \(8, 8, 1\)"):
        model.encode(np.zeros((2, 28, 28, 1), "float32"))
    # The exported signature checks the same in its graph.
    decode, specs = model.serving_signatures()["decode"]
    traced = tf.function(decode, input_signature=specs)
    np.testing.assert_allclose(traced(one_hot)["x"].numpy(), model.decode(one_hot).numpy(),
                               rtol=1e-6)
    assert traced(one_hot[:0])["x"].shape[0] == 0  # an empty batch: empty
    with pytest.raises(tf.errors.InvalidArgumentError, match="summing to 1 along its 3"):
        traced(not_a_distribution)
    encoded = model.serving_signatures()["encode"][0](digits_batch(2))
    assert set(encoded) == {"probs"}
