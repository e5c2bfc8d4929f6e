"""The VAE family's bounds against closed forms, and its variants: beta warm-up, IWAE,
mixture and VampPrior priors, planar and IAF posteriors, Gaussian observations."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import zoo
from zoo.vae.base import VariationalAutoencoder
from zoo.vae.priors import draw_mixture, mixture_log_prob

tfd = tfp.distributions
TINY = dict(latent_dim=3, filters=4, hidden_units=16)


def tiny(name, **overrides):
    keras.utils.set_random_seed(0)
    model = zoo.get(name, dataset="digits", **{**TINY, **overrides})
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype("float32"))
    return model


def levels(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1)).astype("float32")


# ------------------------------------------- the bounds of a linear-Gaussian model
class LinearGaussianVAE(VariationalAutoencoder):
    """Probabilistic PCA as a VAE: z ~ N(0, I), x ~ N(W z + mu, s^2 I), with W's
    columns orthogonal so that the exact posterior is a diagonal Gaussian; the
    "encoder" is that posterior, scaled by `posterior_scale` (1: exact)."""

    W = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, -1.0]], "float32")
    mu = np.array([0.5, -1.0, 0.0, 2.0], "float32")
    s = 0.7

    def __init__(self, posterior_scale=1.0, **kwargs):
        self.posterior_scale = float(posterior_scale)
        super().__init__(data_shape=(2, 2, 1), num_levels=256, latent_dim=2, **kwargs)

    def make_networks(self):
        W, s = self.W, self.s
        cov = np.linalg.inv(np.eye(2) + W.T @ W / s**2)  # diagonal
        gain = (cov @ W.T / s**2).astype("float32")
        log_scale = (0.5 * np.log(np.diag(cov)) + math.log(self.posterior_scale)).astype(
            "float32")
        mu = self.mu

        def encoder(x):
            flat = tf.reshape(x, [-1, 4]) - mu
            mean = tf.matmul(flat, gain, transpose_b=True)
            return tf.concat([mean, tf.broadcast_to(log_scale, tf.shape(mean))], -1)

        self.encoder = encoder

    def build_weights(self):
        pass

    def encoder_input(self, observed):
        return observed

    def decoder_log_prob(self, observed, z):
        mean = tf.einsum("...l,dl->...d", z, self.W) + self.mu
        flat = tf.reshape(observed, [-1, 4])
        return tfd.MultivariateNormalDiag(mean, tf.fill([4], self.s)).log_prob(flat)

    def log_marginal(self, x):
        cov = self.W @ self.W.T + self.s**2 * np.eye(4)
        return tfd.MultivariateNormalTriL(self.mu, np.linalg.cholesky(cov).astype(
            "float32")).log_prob(tf.reshape(x, [-1, 4])).numpy()


def linear_gaussian_bounds(posterior_scale, k, draws, x):
    """`draws` independent bounds of each example (draws, n), and log p(x) (n,)."""
    model = LinearGaussianVAE(posterior_scale)
    observed = tf.constant(np.tile(x, (draws, 1, 1, 1)))  # every example `draws` times
    bounds = model.bound_from_observed(observed, tf.constant([k, 1]), k).numpy()
    return bounds.reshape(draws, len(x)), model.log_marginal(x)


def test_bounds_are_exact_when_the_posterior_family_holds_the_true_posterior():
    x = np.random.default_rng(0).normal(size=(5, 2, 2, 1)).astype("float32") * 2
    for k in (1, 100):  # every draw's weight is p(x): no variance, no gap
        bounds, log_p = linear_gaussian_bounds(1.0, k, 3, x)
        np.testing.assert_allclose(bounds, np.broadcast_to(log_p, bounds.shape), atol=1e-4)


def test_importance_weighted_bound_rises_with_k_towards_log_p():
    x = np.random.default_rng(0).normal(size=(4, 2, 2, 1)).astype("float32") * 2
    means = {}
    for k in (1, 8, 200):
        bounds, log_p = linear_gaussian_bounds(3.0, k, 400, x)
        means[k] = (bounds.mean(0), bounds.std(0) / math.sqrt(len(bounds)))
    # An expected bound above the next smaller k's (by over 4 standard errors of the
    # difference), below log p, and close to it at k = 200.
    for small, large in ((1, 8), (8, 200)):
        stderr = np.hypot(means[small][1], means[large][1])
        assert np.all(means[small][0] + 4 * stderr < means[large][0]), (small, large)
    assert np.all(means[200][0] < log_p + 4 * means[200][1])
    np.testing.assert_allclose(means[200][0], log_p, atol=0.05)
    # k = 1 is the ELBO: E_q[log p(x|z)] - KL, here in closed form.
    model = LinearGaussianVAE(3.0)
    mean, log_scale = model.posterior(tf.constant(x))
    var = np.exp(2 * log_scale.numpy())
    W, mu, s = model.W, model.mu, model.s
    resid = x.reshape(-1, 4) - mean.numpy() @ W.T - mu
    expected_log_lik = -0.5 * ((resid**2).sum(1) + (var @ (W**2).sum(0))) / s**2 \
        - 4 * math.log(s) - 2 * math.log(2 * math.pi)
    elbo = expected_log_lik - model.kl_divergence(mean, log_scale).numpy()
    assert np.all(np.abs(means[1][0] - elbo) < 4 * means[1][1] + 1e-4)


def test_importance_weighted_bound_refuses_k_below_one():
    model = tiny("vae")
    for k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="expected num_samples k >= 1"):
            model.importance_weighted_bound(levels(), num_samples=k)


# --------------------------------------------------------------- beta and IWAE
def test_kl_warmup_ramps_the_weight_from_zero_to_beta():
    model = tiny("beta_vae", beta=4.0, kl_warmup_steps=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    weights = []
    for step in (0, 4, 9, 50):
        model.optimizer.iterations.assign(step)
        weights.append(float(model.kl_weight(training=True)))
    np.testing.assert_allclose(weights, [0.4, 2.0, 4.0, 4.0], rtol=1e-6)
    assert float(model.kl_weight(training=False)) == 4.0  # evaluation: beta
    model.optimizer.iterations.assign(0)
    x = tf.constant(levels(8))
    tf.random.set_seed(0)
    terms = {k: float(v) for k, v in model.compute_losses(x, training=True).items()}
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 0.4 * terms["kl"],
                               rtol=1e-6)
    np.testing.assert_allclose(terms["bits_per_dim"],
                               (terms["reconstruction"] + terms["kl"]) / (64 * math.log(2)),
                               rtol=1e-6)


def test_iwae_trains_on_the_importance_weighted_bound():
    model = tiny("iwae", num_importance_samples=6)
    x = tf.constant(levels(4))
    stream = model.rng.state.numpy()
    terms = model.compute_losses(x, training=True)
    # The same draws through the base's pieces give the same bound.
    model.rng.state.assign(stream)
    data_seed, z_seed = model.split_seed(None, 2)
    observed = model.observed(x, seed=data_seed)
    log_w = model.log_weights(observed, z_seed, 6)
    bound = tf.reduce_logsumexp(log_w, 0) - math.log(6)
    np.testing.assert_allclose(float(terms["loss"]), -float(tf.reduce_mean(bound)), rtol=1e-5)
    assert float(terms["negative_iwae_bound"]) == float(terms["loss"])
    with pytest.raises(ValueError, match="expected num_importance_samples k >= 1"):
        tiny("iwae", num_importance_samples=0)
    with pytest.raises(ValueError, match="has no KL weight"):
        tiny("iwae", beta=2.0)


# ------------------------------------------------------------------- priors
def test_mixture_prior_is_the_mixture_density_and_draws_from_it():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=3).astype("float32")
    means = rng.normal(size=(3, 2)).astype("float32") * 3
    log_scales = rng.uniform(-1, 0.5, size=(3, 2)).astype("float32")
    reference = tfd.MixtureSameFamily(tfd.Categorical(logits=logits),
                                      tfd.MultivariateNormalDiag(means, np.exp(log_scales)))
    z = rng.normal(size=(7, 5, 2)).astype("float32") * 3
    np.testing.assert_allclose(mixture_log_prob(z, logits, means, log_scales).numpy(),
                               reference.log_prob(z).numpy(), rtol=1e-5, atol=1e-5)
    draws = draw_mixture(20000, tf.constant([1, 2]), logits, means, log_scales).numpy()
    mean = reference.mean().numpy()
    stderr = np.sqrt(np.diag(reference.covariance().numpy()) / len(draws))
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * stderr)


def test_vamp_prior_is_the_average_posterior_of_its_pseudo_inputs():
    model = tiny("vamp_vae", num_components=4)
    z = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    means, log_scales = model.posterior_of_pseudo_inputs()
    expected = np.log(np.mean([
        tfd.MultivariateNormalDiag(means[c], tf.exp(log_scales[c])).prob(z).numpy()
        for c in range(4)], axis=0))
    np.testing.assert_allclose(model.log_prior(tf.constant(z)).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["mixture_vae", "vamp_vae", "planar_vae", "iaf_vae"])
def test_monte_carlo_kl_is_log_q_minus_log_prior(name):
    model = tiny(name)
    observed = tf.constant(levels())
    latents = model.infer(observed, tf.constant([3, 4]), 2)
    np.testing.assert_allclose(latents["kl"].numpy(),
                               (latents["log_q"] - model.log_prior(latents["z"])).numpy(),
                               rtol=1e-6)
    # The Gaussian VAE's analytic KL is the expectation of that estimate.
    gaussian = tiny("vae")
    latents = gaussian.infer(observed[:1], tf.constant([5, 6]), 20000)
    mc = (latents["log_q"] - latents["log_prior"]).numpy()
    assert abs(mc.mean() - latents["kl"].numpy()[0, 0]) < 4 * mc.std() / math.sqrt(len(mc))


# ------------------------------------------------------------ flow posteriors
@pytest.mark.parametrize("name", ["planar_vae", "iaf_vae"])
def test_flow_posterior_log_det_matches_the_autodiff_jacobian(name):
    model = tiny(name, num_flows=3)
    observed = tf.constant(levels(2))
    context = model.encoder(model.encoder_input(observed))
    z0 = tf.constant(np.random.default_rng(2).normal(size=(2, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z, log_det = model.transform_posterior(z0[None], observed, context)
        z = z[0]
    jacobian = tape.batch_jacobian(z, z0).numpy()  # (B, 3, 3)
    assert not np.allclose(jacobian, np.eye(3)), "the flow should not be the identity"
    _, expected = np.linalg.slogdet(jacobian.astype("float64"))
    np.testing.assert_allclose(log_det.numpy()[0], expected, rtol=1e-4, atol=1e-4)


def test_iaf_posterior_steps_are_autoregressive():
    model = tiny("iaf_vae", num_flows=1)
    observed = tf.constant(levels(1))
    context = model.encoder(model.encoder_input(observed))
    z0 = tf.constant([[0.3, -0.2, 1.1]])
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z, _ = model.transform_posterior(z0[None], observed, context)
        z = z[0]
    jacobian = tape.batch_jacobian(z, z0).numpy()[0]
    np.testing.assert_allclose(np.triu(jacobian, 1), 0.0, atol=1e-7)  # left-to-right order


# ---------------------------------------------------------- observation models
def test_gaussian_observation_counts_the_scaling_jacobian():
    model = tiny("vae", observation="gaussian_fixed", observation_scale=0.2)
    x = levels(2)
    observed = model.observed(tf.constant(x), seed=tf.constant([1, 1]))
    y = observed.numpy()
    assert np.all((y * 17 >= x) & (y * 17 < x + 1))  # dequantized, scaled by 1/L
    z = tf.zeros([2, 3])
    loc = model.decoder(z).numpy()
    expected = (-0.5 * ((y - loc) / 0.2) ** 2 - math.log(0.2) - 0.5 * math.log(2 * math.pi)
                - math.log(17)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(model.decoder_log_prob(observed, z).numpy(), expected,
                               rtol=1e-5)
    for observation in ("gaussian", "gaussian_fixed"):
        samples = tiny("vae", observation=observation).sample(8, seed=0).numpy()
        assert np.array_equal(samples, np.round(samples))
        assert samples.min() >= 0 and samples.max() <= 16


# ------------------------------------------------------------- evaluation
def test_latent_metrics_over_a_dataset():
    from zoo.metrics import latent

    model = tiny("planar_vae", num_flows=2)
    x = levels(10, seed=3)
    data = tf.data.Dataset.from_tensor_slices(x).batch(4)
    result = latent.evaluate_importance_weighted(model, data, num_samples=7, max_examples=6,
                                                 batch_size=4, seed=2)
    expected = -np.concatenate([
        model.importance_weighted_bound(x[:4], 7, seed=tf.constant([2, 0])).numpy(),
        model.importance_weighted_bound(x[4:6], 7, seed=tf.constant([2, 1])).numpy()]).mean()
    assert result["num_examples"] == 6 and result["num_samples"] == 7
    np.testing.assert_allclose(result["nll_nats"], expected, rtol=1e-5)
    np.testing.assert_allclose(result["bits_per_dim"], expected / (64 * math.log(2)), rtol=1e-5)
    units = latent.active_units(model, data, threshold=0.01)
    variances = np.asarray(model.latent_mean(tf.constant(x))).var(axis=0)
    assert units["dimensions"] == 3 and units["active"] == int(np.sum(variances > 0.01))
    np.testing.assert_allclose(units["variances"], variances, atol=1e-5)
    pictures = latent.traversals(model, x, steps=5)
    assert pictures.shape == (15, 8, 8, 1)  # 3 dimensions x 5 steps


BASE_DEFAULTS = {"nll_examples": None, "num_samples": 10_000, "sample_options": {}}


def test_a_vae_declares_its_bound_and_reports_it_with_active_units_and_pictures(tmp_path):
    from zoo.metrics import latent

    model = tiny("vae")
    defaults = model.evaluation_defaults()
    assert defaults == {**BASE_DEFAULTS, "iwae_samples": 1000, "iwae_examples": 1000}
    data = tf.data.Dataset.from_tensor_slices(levels(10, seed=3)).batch(4)
    settings = {**defaults, "iwae_samples": 7, "iwae_examples": 6}
    metrics = model.extra_metrics(data, settings, seed=2, batch_size=4, run_dir=tmp_path)
    assert list(metrics) == ["importance_weighted", "active_units", "pictures"]
    assert metrics["importance_weighted"] == latent.evaluate_importance_weighted(
        model, data, num_samples=7, max_examples=6, batch_size=4, seed=2)
    assert metrics["active_units"] == latent.active_units(model, data)
    assert metrics["pictures"] == {"reconstructions": "evaluation/reconstructions.png",
                                   "traversals": "evaluation/traversals.png"}
    assert all((tmp_path / path).is_file() for path in metrics["pictures"].values())


def test_vae_gan_reports_units_and_pictures_but_no_bound(tmp_path):
    model = tiny("vae_gan")
    assert model.evaluation_defaults() == BASE_DEFAULTS
    data = tf.data.Dataset.from_tensor_slices(levels(10, seed=3)).batch(4)
    metrics = model.extra_metrics(data, BASE_DEFAULTS, run_dir=tmp_path)
    assert list(metrics) == ["active_units", "pictures"]
    assert metrics["active_units"]["dimensions"] == 3
    assert list(model.extra_metrics(data, BASE_DEFAULTS)) == ["active_units"]  # no folder


def test_models_without_latents_report_nothing_of_their_own():
    for name, dataset in [("realnvp", "moons"), ("wgan_gp", "moons")]:
        model = zoo.get(name, dataset=dataset)
        assert model.evaluation_defaults() == BASE_DEFAULTS
        assert model.extra_metrics(None, BASE_DEFAULTS) == {}


def test_evaluation_pictures(tmp_path):
    from PIL import Image

    model = tiny("vae")
    data = tf.data.Dataset.from_tensor_slices(levels(12)).batch(5)
    paths = model.evaluation_pictures(data, tmp_path, count=12)
    assert paths == {"reconstructions": "evaluation/reconstructions.png",
                     "traversals": "evaluation/traversals.png"}
    tile = 8 * 4 + 2  # 8x8 digits at x4, and a border (plotting.PADDING)
    with Image.open(tmp_path / paths["reconstructions"]) as image:
        assert image.size == (8 * tile + 2, 2 * tile + 2)  # 12 examples: one whole row of 8
    with Image.open(tmp_path / paths["traversals"]) as image:
        assert image.size == (9 * tile + 2, 3 * tile + 2)  # 3 dimensions x 9 steps


def test_vae_gan_feature_distance_is_scale_free():
    """VAE-GAN's L_llike standardizes the critic's features over the batch, so
    it does not depend on their scale (raw features a few nats apart let the KL
    collapse the posterior): scaling the critic's last convolution by 10, then
    by 10 again, scales the raw features (LeakyReLU is positively homogeneous),
    and leaves the loss as it was (the tiny critic's features are small enough
    at initialization for the epsilon in the variance to count, so the test starts
    from scale 10); the standardized features have mean 0 and variance 1."""
    from zoo.vae.vae_gan import VAEGAN

    model = tiny("vae_gan", critic_filters=4)
    x = tf.constant(levels(8))
    stream = model.rng.state.numpy()
    last = model.discriminator_network.convs[-1]
    losses = []
    for _ in range(2):
        for v in last.trainable_variables:
            v.assign(10.0 * v)
        model.rng.state.assign(stream)
        losses.append(model.compute_losses(x)["feature_reconstruction"].numpy())
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    features = np.random.default_rng(0).normal(3.0, 5.0, (24, 6)).astype(np.float32)
    standardized = VAEGAN.standardized(tf.constant(features)).numpy()
    np.testing.assert_allclose(standardized.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(standardized.std(0), 1.0, rtol=1e-4)


# ------------------------------------------------------ adversarial autoencoder
@pytest.mark.parametrize("name, overrides", [("aae", dict(discriminator_units=8)),
                                             ("vae_gan", dict(critic_filters=4))])
def test_each_network_is_updated_by_its_own_term(name, overrides):
    """The adversarial autoencoder and VAE-GAN: one step of SGD moves each network
    by minus the learning rate times the gradient of its own loss term."""
    model = tiny(name, **overrides)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x = tf.constant(levels(8))
    stream = model.rng.state.numpy()
    networks = {n: model.network(n).trainable_variables for n in model.optimizer_terms}
    before = {n: [v.numpy() for v in vs] for n, vs in networks.items()}
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_losses(x, training=True)
    expected = {n: [b - 0.1 * g.numpy() for b, g in zip(
        before[n], tape.gradient(terms[model.optimizer_terms[n]], networks[n]))]
        for n in networks}
    model.rng.state.assign(stream)  # the step draws what compute_losses drew
    model.train_step(x)
    for n, values in expected.items():
        for v, value in zip(networks[n], values):
            np.testing.assert_allclose(v.numpy(), value, rtol=1e-5, atol=1e-6, err_msg=n)
    assert {n: len(v) for n, v in networks.items()} == {
        "encoder": 8, "decoder": 8, "discriminator": 6}
    if name == "aae":
        np.testing.assert_allclose(
            float(terms["loss"]), float(terms["reconstruction"] + terms["generator_loss"]),
            rtol=1e-6)
        with pytest.raises(ValueError, match="no KL term is trained"):
            tiny("aae", beta=2.0)
    else:
        np.testing.assert_allclose(float(terms["encoder_loss"]),
                                   float(terms["kl"] + terms["feature_reconstruction"]), rtol=1e-6)
        with pytest.raises(TypeError, match="has no likelihood"):
            model.nll(levels())
        with pytest.raises(ValueError, match="cannot be set"):
            tiny("vae_gan", observation="bernoulli")
