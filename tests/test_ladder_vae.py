"""The Ladder VAE: its precision-weighted merge, its KL terms, and its bounds against
exact integrals over a one-dimensional z1 and z2."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import zoo
from zoo.vae.ladder_vae import LadderVAE, gaussian_kl, precision_weighted

LOG_2PI = math.log(2.0 * math.pi)


def normal_log_pdf(z, mean, scale):
    """log N(z; mean, scale^2), elementwise, float64."""
    return -0.5 * (((z - mean) / scale) ** 2 + LOG_2PI) - np.log(scale)


def tiny_ladder(**overrides):
    """A ladder VAE with 1-D z1 and z2 (so its integrals can be done on a grid),
    weights moved off their initial values."""
    config = dict(latent_dim=1, top_latent_dim=1, filters=4, hidden_units=16)
    config.update(overrides)
    keras.utils.set_random_seed(0)
    model = zoo.get("ladder_vae", dataset="digits", **config)
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype("float32"))
    return model


def digits_batch(n=3):
    """The first `n` of scikit-learn's digits, as raw levels (n, 8, 8, 1)."""
    return load_digits().images[:n, :, :, None].astype("float32")


# ------------------------------------------------------------ the merge, the KL
def test_precision_weighted_merge_is_the_normalised_product_of_the_gaussians():
    rng = np.random.default_rng(0)
    mean_hat, mean_p = rng.normal(0, 2, 6), rng.normal(0, 2, 6)
    scale_hat = np.array([1.0, 0.3, 2.0, 1e-3, 5.0, 0.7])
    scale_p = np.array([1.0, 1.5, 0.1, 3.0, 5.0, 1e-3])
    mean_q, scale_q = (t.numpy().astype("float64") for t in precision_weighted(
        *(tf.constant(a, tf.float32) for a in (mean_hat, scale_hat, mean_p, scale_p))))
    # The paper's form, with precisions.
    var = 1.0 / (scale_hat**-2 + scale_p**-2)
    np.testing.assert_allclose(scale_q, np.sqrt(var), rtol=1e-5)
    np.testing.assert_allclose(mean_q, (mean_hat / scale_hat**2 + mean_p / scale_p**2) * var,
                               rtol=1e-5, atol=1e-6)
    # The product of the two densities on a grid around the narrower one, normalised
    # by quadrature: its density, mean and scale.
    for i in range(len(mean_hat)):
        narrow = min((scale_hat[i], mean_hat[i]), (scale_p[i], mean_p[i]))
        grid = np.linspace(narrow[1] - 12 * narrow[0], narrow[1] + 12 * narrow[0], 40001)
        dz = grid[1] - grid[0]
        log_product = normal_log_pdf(grid, mean_hat[i], scale_hat[i]) + \
            normal_log_pdf(grid, mean_p[i], scale_p[i])
        density = np.exp(log_product - np.logaddexp.reduce(log_product) - math.log(dz))
        mean = np.sum(grid * density) * dz
        std = math.sqrt(np.sum((grid - mean) ** 2 * density) * dz)
        np.testing.assert_allclose([mean_q[i], scale_q[i]], [mean, std], rtol=1e-4,
                                   atol=1e-4 * narrow[0])
        peak = density > 1e-3 * density.max()
        np.testing.assert_allclose(normal_log_pdf(grid, mean_q[i], scale_q[i])[peak],
                                   np.log(density[peak]), atol=1e-3)


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mean_q, mean_p = rng.normal(0, 1, (2, 3)), rng.normal(0, 1, (2, 3))
    scale_q, scale_p = rng.uniform(0.2, 2, (2, 3)), rng.uniform(0.2, 2, (2, 3))
    kl = gaussian_kl(*(tf.constant(a, tf.float32)
                       for a in (mean_q, scale_q, mean_p, scale_p))).numpy()
    z = mean_q + scale_q * rng.standard_normal((200000, 2, 3))
    ratio = (normal_log_pdf(z, mean_q, scale_q) - normal_log_pdf(z, mean_p, scale_p)).sum(-1)
    stderr = ratio.std(0) / math.sqrt(len(ratio))
    assert np.all(np.abs(ratio.mean(0) - kl) < 4 * stderr), (ratio.mean(0), kl, stderr)


def test_each_layers_kl_matches_monte_carlo_over_the_models_samples():
    """kl_z2 = E log q(z2|x) / p(z2) and E kl_z1 = E log q(z1|x, z2) / p(z1|z2), with the
    log densities of ``infer`` (its log_q and log_prior) at its own samples."""
    model = tiny_ladder(latent_dim=3, top_latent_dim=2)
    x = tf.constant(digits_batch())
    latents = {k: v.numpy().astype("float64")
               for k, v in model.infer(x, tf.constant([4, 2]), 20000).items()}
    (_, _), (mean_2, scale_2) = (tuple(t.numpy().astype("float64") for t in pair)
                                 for pair in model.bottom_up(x))
    z2 = latents["z2"]
    layer_2 = (normal_log_pdf(z2, mean_2, scale_2) - normal_log_pdf(z2, 0.0, 1.0)).sum(-1)
    layer_1 = latents["log_q"] - latents["log_prior"] - layer_2
    n = len(z2)
    # kl_z2 is the same for every sample; kl_z1 is at each sample's z2 (paired).
    np.testing.assert_allclose(latents["kl_z2"], latents["kl_z2"][:1].repeat(n, 0))
    assert np.all(np.abs(layer_2.mean(0) - latents["kl_z2"][0])
                  < 4 * layer_2.std(0) / math.sqrt(n) + 1e-4)
    difference = layer_1 - latents["kl_z1"]
    assert np.all(np.abs(difference.mean(0)) < 4 * difference.std(0) / math.sqrt(n) + 1e-4)
    assert np.all(latents["kl_z1"] >= 0) and np.all(latents["kl_z2"] >= 0)
    assert np.all(latents["kl_z1"].std(0) > 0)  # it does depend on z2


# ------------------------------------------------------- bounds by quadrature
def exact_bounds(model, x):
    """log p(x) and the exact ELBO per example, by quadrature (float64) over the 1-D
    z1 and z2, from the model's networks and numpy densities."""
    grid = np.linspace(-10.0, 10.0, 1201)
    dz = grid[1] - grid[0]
    (mean_1, scale_1), (mean_2, scale_2) = (
        tuple(t.numpy()[:, 0].astype("float64") for t in pair)
        for pair in model.bottom_up(tf.constant(x)))
    mean_p, scale_p = (t.numpy()[:, 0].astype("float64")
                       for t in model.top_down(tf.constant(grid[:, None], tf.float32)))
    # log p(z1 = grid[j] | z2 = grid[i]) and log p(z2)
    log_p1 = normal_log_pdf(grid[None, :], mean_p[:, None], scale_p[:, None])
    log_p2 = normal_log_pdf(grid, 0.0, 1.0)
    log_marginal_1 = np.logaddexp.reduce(log_p1 + log_p2[:, None], axis=0) + math.log(dz)
    log_p, elbo = [], []
    for b in range(len(x)):
        repeated = tf.constant(np.repeat(x[b : b + 1], len(grid), axis=0))
        log_lik = model.decoder_log_prob(repeated, tf.constant(grid[:, None], tf.float32))
        log_lik = log_lik.numpy().astype("float64")
        log_p.append(np.logaddexp.reduce(log_lik + log_marginal_1) + math.log(dz))
        # q(z2|x) q(z1|x, z2) on the grid, the merge done here in numpy
        precision = scale_1[b] ** -2 + scale_p**-2
        mean_q = (mean_1[b] * scale_1[b] ** -2 + mean_p * scale_p**-2) / precision
        log_q1 = normal_log_pdf(grid[None, :], mean_q[:, None], precision[:, None] ** -0.5)
        log_q2 = normal_log_pdf(grid, mean_2[b], scale_2[b])
        weight = np.exp(log_q2[:, None] + log_q1) * dz * dz
        integrand = log_lik[None, :] + log_p1 + log_p2[:, None] - log_q1 - log_q2[:, None]
        elbo.append(np.sum(weight * integrand))
    return np.array(log_p), np.array(elbo)


@pytest.fixture(scope="module")
def bounded():
    model = tiny_ladder()
    x = digits_batch()
    return model, x, *exact_bounds(model, x)


def test_elbo_and_its_terms_against_quadrature(bounded):
    model, x, log_p, exact_elbo = bounded
    assert np.all(exact_elbo < log_p - 0.05)  # a real gap, KL(q || p(z|x))
    # Each ELBO sample is -(reconstruction + kl_z1 + kl_z2), and they average to the
    # exact ELBO.
    observed = tf.constant(x)
    latents = model.infer(observed, tf.constant([1, 2]), 4000)
    draws = (model.decoder_log_prob(observed, latents["z"]) - latents["kl_z1"]
             - latents["kl_z2"]).numpy().astype("float64")
    stderr = draws.std(0) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - exact_elbo) < 4 * stderr + 1e-3), \
        (draws.mean(0), exact_elbo, stderr)
    # The public evidence: its terms add up, and it is one such draw.
    terms = {k: v.numpy().astype("float64") for k, v in model.evidence(x, seed=3).items()}
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl_z1"]
                                                + terms["kl_z2"]), rtol=1e-6)
    np.testing.assert_array_equal(model.nll(x, seed=3).numpy(), -terms["elbo"].astype("float32"))
    assert np.all(np.abs(terms["elbo"] - exact_elbo) < 6 * draws.std(0) + 1e-3)


def test_importance_weighted_bound_is_the_elbo_at_k1_and_tightens_to_log_p(bounded):
    model, x, log_p, exact_elbo = bounded
    # k = 1: a log weight log p(x|z1) p(z1|z2) p(z2) / q(z2|x) q(z1|x, z2) averages to
    # the ELBO (a different estimator from the one with the KLs in closed form).
    log_w = np.concatenate([model.log_weights(tf.constant(x), tf.constant([5, i]), 4096).numpy()
                            for i in range(16)]).astype("float64")
    stderr = log_w.std(0) / math.sqrt(len(log_w))
    assert np.all(np.abs(log_w.mean(0) - exact_elbo) < 4 * stderr + 1e-3)
    single = np.array([model.importance_weighted_bound(x, num_samples=1, seed=s).numpy()
                       for s in range(16)])
    assert np.all(np.abs(single.mean(0) - exact_elbo) < 4 * single.std(0) / 4 + 1e-3)
    # E L_k grows with k (Burda et al., Theorem 1): from the same log weights in groups
    # of k, each mean more than 4 standard errors of the difference (as if independent,
    # which overstates it) above the last.
    means = []
    for k in (1, 8, 64):
        groups = log_w.reshape(len(log_w) // k, k, -1)
        means.append(np.logaddexp.reduce(groups, axis=1) - math.log(k))
    for low, high in zip(means, means[1:]):
        assert np.all(high.mean(0) > low.mean(0)), (low.mean(0), high.mean(0))
        gap = high.mean(0) - low.mean(0)
        assert np.all(gap > 4 * math.sqrt(high.var(0).max() / len(high)
                                          + low.var(0).max() / len(low)))
    # and towards log p(x): all the log weights as one bound, k = 65536
    pooled = np.logaddexp.reduce(log_w, axis=0) - math.log(len(log_w))
    np.testing.assert_allclose(pooled, log_p, atol=0.03)
    # The public bound draws L_2048 like the groups of 2048 of these weights do.
    groups = np.logaddexp.reduce(log_w.reshape(-1, 2048, log_w.shape[1]), axis=1) \
        - math.log(2048)
    assert np.all(groups.mean(0) < log_p + 4 * groups.std(0) / math.sqrt(len(groups)))
    iwae_2048 = model.importance_weighted_bound(x, num_samples=2048, seed=0).numpy()
    assert np.all(np.abs(iwae_2048 - groups.mean(0)) < 4 * groups.std(0))
    assert np.all(exact_elbo < iwae_2048)


def test_prior_draws_follow_the_hierarchical_prior(bounded):
    """z1 of ``draw_prior``: z2 ~ N(0, I), z1 ~ p(z1|z2); its mean and variance are
    those of the marginal p(z1) = E_z2 p(z1|z2) (from quadrature over z2)."""
    model = bounded[0]
    grid = np.linspace(-10.0, 10.0, 4001)
    weight = np.exp(normal_log_pdf(grid, 0.0, 1.0)) * (grid[1] - grid[0])
    mean_p, scale_p = (t.numpy()[:, 0].astype("float64")
                       for t in model.top_down(tf.constant(grid[:, None], tf.float32)))
    mean = np.sum(weight * mean_p)
    # the central moments of the mixture of N(mean_p, scale_p^2) over z2
    var = np.sum(weight * (scale_p**2 + (mean_p - mean) ** 2))
    fourth = np.sum(weight * ((mean_p - mean) ** 4 + 6 * (mean_p - mean) ** 2 * scale_p**2
                              + 3 * scale_p**4))
    z1 = model.draw_prior(40000, tf.constant([3, 4])).numpy()[:, 0].astype("float64")
    n = len(z1)
    assert abs(z1.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(z1.var() - var) < 4 * math.sqrt((fourth - var**2) / n)


# ------------------------------------------------------------ public methods
def test_losses_add_up_and_the_warm_up_weights_only_the_kl():
    model = tiny_ladder(latent_dim=2, top_latent_dim=2, kl_warmup_steps=10)
    x = tf.constant(digits_batch(8))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.iterations.assign(4)  # step 5 of 10: beta_t = 0.5
    stream = model.rng.state.numpy()
    for training, weight in ((False, 1.0), (True, 0.5)):
        model.rng.state.assign(stream)
        t = {k: float(v) for k, v in model.compute_losses(x, training=training).items()}
        assert set(t) == {"loss", "reconstruction", "kl_z1", "kl_z2", "bits_per_dim"}
        np.testing.assert_allclose(t["loss"], t["reconstruction"]
                                   + weight * (t["kl_z1"] + t["kl_z2"]), rtol=1e-6)
        np.testing.assert_allclose(t["bits_per_dim"], (t["reconstruction"] + t["kl_z1"]
                                                       + t["kl_z2"]) / (64 * math.log(2)),
                                   rtol=1e-6)


def test_encode_reconstruct_and_decode_agree():
    model = tiny_ladder(latent_dim=3, top_latent_dim=2)
    x = digits_batch(4)
    mean_1, log_scale_1, mean_2, log_scale_2 = (t.numpy() for t in model.encode(x))
    assert mean_1.shape == log_scale_1.shape == (4, 3)
    assert mean_2.shape == log_scale_2.shape == (4, 2)
    # z1's posterior is the merge at z2 = mean_z2 (the merge done here in numpy)
    (m1, s1), (m2, s2) = (tuple(t.numpy() for t in pair)
                          for pair in model.bottom_up(tf.constant(x)))
    mp, sp = (t.numpy() for t in model.top_down(tf.constant(mean_2)))
    np.testing.assert_allclose(mean_2, m2, rtol=1e-6)
    np.testing.assert_allclose(np.exp(log_scale_2), s2, rtol=1e-5)
    precision = s1**-2.0 + sp**-2.0
    np.testing.assert_allclose(mean_1, (m1 / s1**2 + mp / sp**2) / precision,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(log_scale_1, -0.5 * np.log(precision), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.reconstruct(x).numpy(), model.decode(mean_1).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_samples_are_levels_of_the_data():
    model = tiny_ladder()
    samples = model.sample(16, seed=0).numpy()
    assert samples.shape == (16, 8, 8, 1)
    assert np.array_equal(samples, np.round(samples))
    assert samples.min() >= 0 and samples.max() <= 16
    np.testing.assert_array_equal(samples, model.sample(16, seed=0).numpy())
    bits = tiny_ladder(observation="bernoulli").sample(16, seed=0).numpy()
    assert set(np.unique(bits)) <= {0.0, 16.0}
    fashion = zoo.get("ladder_vae", dataset="fashion_mnist", latent_dim=2, top_latent_dim=2,
                      filters=4, hidden_units=8)
    images = fashion.sample(2, seed=0).numpy()
    assert images.shape == (2, 28, 28, 1) and np.array_equal(images, np.round(images))
    assert images.min() >= 0 and images.max() <= 255


def test_bad_inputs_give_clear_errors():
    model = tiny_ladder(latent_dim=3, top_latent_dim=2)
    x = digits_batch(2)
    with pytest.raises(ValueError, match=r"expected z1 of shape \(batch, 3\), got \(2, 2\)"):
        model.decode(np.zeros((2, 2), "float32"))  # a z2 is not what decode takes
    for k in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match="expected num_samples k >= 1"):
            model.importance_weighted_bound(x, num_samples=k)
    with pytest.raises(ValueError, match="expected integer pixel levels"):
        model.elbo(np.full((2, 8, 8, 1), 3.5, "float32"))
    with pytest.raises(ValueError, match="expected top_latent_dim >= 1, got 0"):
        LadderVAE(top_latent_dim=0)
    with pytest.raises(ValueError, match="expected latent_dim >= 1, got 0"):
        LadderVAE(latent_dim=0)
    with pytest.raises(NotImplementedError, match="marginal p\\(z1\\)"):
        model.log_prior(tf.zeros((2, 3)))


def test_a_few_training_steps_lower_the_loss(data_dir):
    model = zoo.get("ladder_vae", dataset="digits", latent_dim=4, top_latent_dim=2, filters=8,
                    hidden_units=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = digits_batch(64)
    before = model.evidence(x, seed=0)
    history = model.fit(zoo.datasets.load("digits", "train", batch_size=64, data_dir=data_dir)
                        .take(15), epochs=2, verbose=0).history
    after = model.evidence(x, seed=0)
    for values in history.values():
        assert np.all(np.isfinite(values))
    assert history["loss"][-1] < history["loss"][0]
    assert np.mean(after["elbo"]) > np.mean(before["elbo"]) + 5
    for key in ("kl_z1", "kl_z2"):
        assert np.all(np.isfinite(after[key])) and np.all(after[key].numpy() >= 0)
