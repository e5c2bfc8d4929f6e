"""GANs as distances (zoo.gan.distances, losses, regularizers, nn.spectral_norm):
each piece against its definition. The contract over every distance is in
test_contract*.py (the model "gan", one case per distance)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

import zoo
from zoo.gan import losses, regularizers
from zoo.gan.distances import DISTANCES
from zoo.nn.random_stream import RandomStream
from zoo.nn.spectral_norm import SpectralNorm

F64 = tf.float64
# Where each f is defined: the density ratio u = p/q >= 0, or the real line where
# the paper's conjugate is that of f on R (Pearson, total variation).
ON_THE_LINE = {"pearson", "total_variation"}


def fenchel(f, t, whole_line):
    """sup_u (t u - f(u)) for each t, maximised on grids refined three times."""
    lo, hi = (-60.0, 60.0) if whole_line else (1e-9, 60.0)
    best = []
    for ti in t:
        left, right = lo, hi
        for _ in range(3):
            grid = np.linspace(left, right, 4001)
            values = ti * grid - np.asarray(f(tf.constant(grid, F64)))
            i, step = int(np.argmax(values)), grid[1] - grid[0]
            left, right = max(lo, grid[i] - step), min(hi, grid[i] + step)
        best.append(values[i])
    return np.array(best)


@pytest.mark.parametrize("name", sorted(losses.F_DIVERGENCES))
def test_each_conjugate_is_the_fenchel_conjugate_of_its_f(name):
    d = losses.F_DIVERGENCES[name]
    # Points of the conjugate's domain: the output activation's range.
    v = tf.constant(np.linspace(-2.0, 2.0, 9), F64)
    t = d.activation(v)
    ours = np.asarray(d.conjugate(tf.constant(t, F64)))
    numeric = fenchel(d.f, np.asarray(t), name in ON_THE_LINE)
    np.testing.assert_allclose(ours, numeric, rtol=1e-6, atol=1e-6)


def divergence_by_quadrature(name, p, q, x):
    """D_f(P || Q) = E_Q[f(p/q)] and the f-GAN objective at T* = f'(p/q)."""
    d = losses.F_DIVERGENCES[name]
    dx = x[1] - x[0]
    ratio = tf.constant(p / q, F64)
    exact = np.sum(q * np.asarray(d.f(ratio))) * dx
    best = np.asarray(d.derivative(ratio))
    objective = np.sum(p * best) * dx - np.sum(q * np.asarray(d.conjugate(tf.constant(best, F64)))) * dx
    return exact, objective


@pytest.mark.parametrize("name", sorted(losses.F_DIVERGENCES))
def test_the_objective_at_the_optimal_critic_is_the_divergence(name):
    x = np.linspace(-12.0, 12.0, 200_001)
    p, q = norm.pdf(x, 0.0, 1.0), norm.pdf(x, 0.7, 1.3)
    exact, objective = divergence_by_quadrature(name, p, q, x)
    np.testing.assert_allclose(objective, exact, rtol=1e-6)
    closed_form = {  # of N(0, 1) against N(0.7, 1.3^2)
        "kl": np.log(1.3) + (1.0 + 0.49) / (2 * 1.69) - 0.5,
        "reverse_kl": -np.log(1.3) + (1.69 + 0.49) / 2.0 - 0.5,
        "squared_hellinger": 2.0 * (1.0 - np.sqrt(2 * 1.3 / (1 + 1.69))
                                    * np.exp(-0.49 / (4 * (1 + 1.69)))),
    }
    if name in closed_form:
        np.testing.assert_allclose(exact, closed_form[name], rtol=1e-6)


def test_the_f_gan_loss_estimates_the_objective_on_scores():
    loss = losses.get("f_divergence", divergence="pearson")
    real, fake = tf.constant([0.5, 1.0]), tf.constant([-1.0, 2.0])
    expected = np.mean([0.5, 1.0]) - np.mean([0.25 - 1.0, 1.0 + 2.0])
    np.testing.assert_allclose(loss.report(real, fake)["divergence"], expected, rtol=1e-6)
    np.testing.assert_allclose(loss.critic_loss(real, fake), -expected, rtol=1e-6)
    np.testing.assert_allclose(loss.generator_loss(fake), -np.mean([-0.75, 3.0]), rtol=1e-6)


@pytest.mark.parametrize("norm_w, gp, lp", [(1.0, 0.0, 0.0), (2.0, 1.0, 1.0), (0.5, 0.25, 0.0)])
def test_penalties_of_linear_critics(norm_w, gp, lp):
    # D(x) = w.x has gradient w everywhere: the two-sided penalty is (|w| - 1)^2,
    # the one-sided one only penalises |w| > 1.
    w = tf.constant([0.6, 0.8]) * norm_w
    real = tf.random.stateless_normal([64, 2], seed=[1, 2])
    fake = tf.random.stateless_normal([64, 2], seed=[3, 4])
    def linear(x):
        return tf.linalg.matvec(x, w)
    eps = tf.linspace(0.0, 1.0, 64)
    np.testing.assert_allclose(regularizers.GradientPenalty()(linear, real, fake, None, eps=eps),
                               gp, atol=1e-6)
    np.testing.assert_allclose(regularizers.LipschitzPenalty()(linear, real, fake, None,
                                                               eps=eps), lp, atol=1e-6)


def test_spectral_norm_converges_to_the_largest_singular_value():
    rng = np.random.RandomState(0)
    left, _ = np.linalg.qr(rng.randn(6, 6))
    right, _ = np.linalg.qr(rng.randn(4, 4))
    singular = np.array([3.0, 1.0, 0.5, 0.1])
    matrix = (left[:, :4] * singular) @ right.T
    layer = SpectralNorm(keras.layers.Dense(4, use_bias=False))
    x = tf.constant(rng.randn(5, 6), tf.float32)
    layer(x)
    layer.layer.kernel.assign(matrix.astype(np.float32))
    estimates = []
    for _ in range(30):
        layer(x, training=True)
        estimates.append(float(layer.sigma()))
    np.testing.assert_allclose(estimates[-1], 3.0, rtol=1e-5)
    assert estimates[0] < estimates[-1]  # it converges from below, as power iteration does
    # The layer applies W / sigma, with the kernel variable itself unchanged.
    np.testing.assert_allclose(layer(x), x.numpy() @ matrix / 3.0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.layer.kernel.numpy(), matrix, rtol=1e-6)
    assert np.linalg.norm(np.asarray(layer.layer.kernel) / estimates[-1], 2) == \
        pytest.approx(1.0, rel=1e-5)


def test_spectral_norm_passes_the_gradient_through_sigma():
    layer = SpectralNorm(keras.layers.Dense(3, use_bias=False))
    x = tf.constant(np.random.RandomState(1).randn(4, 5), tf.float32)
    layer(x)
    for _ in range(50):
        layer(x, training=True)  # u converged: sigma(W) is then smooth in W
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    grad = tape.gradient(y, layer.layer.kernel)
    u = layer.vector_u.numpy()
    w = layer.layer.kernel.numpy()
    v = u @ w.T
    v /= np.linalg.norm(v)
    sigma = (v @ w @ u.T).item()
    # d/dW sum(x W / sigma) = (X^T 1) / sigma - sum(x W) / sigma^2 * v^T u (Eq. 12)
    ones = np.ones((4, 3))
    expected = x.numpy().T @ ones / sigma - np.sum(x.numpy() @ w) / sigma**2 * np.outer(v, u)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)


def test_weight_clipping_bounds_every_critic_weight():
    model = zoo.get("wgan", dataset="moons", hidden_units=8, num_hidden=1)
    model.compile(optimizer=model.default_optimizer(1e-2))
    x = zoo.datasets.toy.generate("moons", 64, 0).astype("float32")
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    weights = np.concatenate([w.numpy().ravel() for w in model.critic_network.trainable_weights])
    assert np.max(np.abs(weights)) <= 0.01 + 1e-7
    assert np.max(np.abs(weights)) == pytest.approx(0.01)  # lr 1e-2 pushes some to the bound


def test_every_distance_is_selectable_by_name_and_says_its_recipe():
    for name, (recipe, _, summary) in DISTANCES.items():
        model = zoo.get("gan", dataset="moons", distance=name, hidden_units=4, num_hidden=1)
        assert model.distance == name and summary
        assert {k: getattr(model, k) for k in recipe} == recipe
        assert model.get_config()["distance"] == name
    assert zoo.get("wgan", dataset="moons").weight_clip == 0.01
    assert zoo.get("sngan", dataset="digits").critic_network.spectral_norm
    assert zoo.get("fgan", dataset="moons", distance="f_jensen_shannon").divergence == \
        "jensen_shannon"


@pytest.mark.parametrize("model, kwargs, match", [
    ("gan", dict(distance="nope"), r"unknown distance 'nope'; known: \['f_jensen_shannon'"),
    ("gan", dict(distance="f_kl", regularizer="none"), "regularizer comes with the distance"),
    ("gan", dict(distance="non_saturating", weight_clip=0.01),
     "weight_clip .* bounds a learned critic under adversarial_loss='wasserstein' or 'mmd'"),
    ("gan", dict(n_critic=0), "n_critic >= 1"),
    ("wgan", dict(distance="f_kl"), r"expected a distance in \['wasserstein_clip'\]"),
    ("fgan", dict(distance="hinge_sn"), "expected a distance in .*'f_kl'"),
])
def test_bad_distances_are_named(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.get(model, dataset="moons", **kwargs)


def test_unknown_losses_and_divergences_are_named():
    with pytest.raises(ValueError, match="unknown f-divergence 'chi'; known: "):
        losses.get("f_divergence", divergence="chi")
    with pytest.raises(ValueError, match="divergence goes with adversarial_loss='f_divergence'"):
        zoo.gan.base.AdversarialModel(adversarial_loss="hinge", divergence="kl")


# ------------------------------------------------ distances between batches
def gaussian_rbf_mean(mean_gap2, var_sum, bandwidths, dim):
    """E k(X, Y) for X ~ N(m1, v1 I), Y ~ N(m2, v2 I) and the RBF mixture:
    sum_s (s^2 / (s^2 + v1 + v2))^(d/2) exp(-|m1 - m2|^2 / (2 (s^2 + v1 + v2)))."""
    return sum((s**2 / (s**2 + var_sum)) ** (dim / 2) * np.exp(-mean_gap2 / (2 * (s**2 + var_sum)))
               for s in bandwidths)


def test_mmd_estimator_is_unbiased_for_two_gaussians():
    bandwidths, dim, n, draws = (0.5, 1.0, 2.0), 2, 32, 400
    shift, sd_p, sd_q = np.array([0.5, 0.0]), 1.0, 1.2
    population = (gaussian_rbf_mean(0.0, 2 * sd_p**2, bandwidths, dim)
                  + gaussian_rbf_mean(0.0, 2 * sd_q**2, bandwidths, dim)
                  - 2 * gaussian_rbf_mean(shift @ shift, sd_p**2 + sd_q**2, bandwidths, dim))
    rng = np.random.RandomState(0)
    estimate = tf.function(lambda x, y: losses.mmd_squared(x, y, bandwidths))
    values = np.array([float(estimate(tf.constant(rng.randn(n, dim) * sd_p, tf.float32),
                                      tf.constant(rng.randn(n, dim) * sd_q + shift, tf.float32)))
                       for _ in range(draws)])
    standard_error = values.std() / np.sqrt(draws)
    assert abs(values.mean() - population) < 4 * standard_error
    # The test can tell: the biased (V-statistic) estimate is off by about
    # 2 (k(x, x) - E k(x, x')) / n, many standard errors here.
    assert standard_error < 0.1 * 2 * (len(bandwidths) - population) / n


def test_mmd_of_a_sample_with_itself_is_about_zero():
    x = tf.random.stateless_normal([200, 3], seed=[5, 6])
    bandwidths = (0.5, 1.0, 2.0)
    # Exactly -2 K / n + (a positive term at most 2 K / n): |.| <= 2 K / n.
    value = float(losses.mmd_squared(x, x, bandwidths))
    assert abs(value) <= 2 * len(bandwidths) / 200
    other = tf.random.stateless_normal([200, 3], seed=[7, 8]) + 1.0
    assert float(losses.mmd_squared(x, other, bandwidths)) > 10 * abs(value)


def test_sliced_wasserstein_of_shifted_gaussians_matches_its_closed_form():
    # Along a unit w, N(0, I) and N(delta, I) project to N(0, 1) and N(w.delta, 1),
    # whose W2^2 is (w.delta)^2; over w uniform on the sphere, |delta|^2 / d.
    # (With 2000 directions the estimate's standard error is 1.6% here.)
    dim, n = 2, 5000
    delta = np.array([3.0, 0.0], np.float32)
    real = tf.random.stateless_normal([n, dim], seed=[1, 1])
    fake = tf.random.stateless_normal([n, dim], seed=[2, 2]) + delta
    rng = RandomStream(seed=3)
    rng.initialize()
    loss = losses.get("sliced_wasserstein", num_projections=2000)
    np.testing.assert_allclose(float(loss.distance(real, fake, rng)), 9.0 / dim, rtol=0.05)
    # One column is one direction already: the 1-D distance between the sorted
    # samples (the optimal coupling), near (w.delta)^2 = 9.
    one = float(loss.distance(real[:, :1], fake[:, :1], rng))
    sorted_gap = np.sort(real.numpy()[:, 0]) - np.sort(fake.numpy()[:, 0])
    np.testing.assert_allclose(one, np.mean(sorted_gap**2), rtol=1e-5)
    np.testing.assert_allclose(one, 9.0, rtol=0.05)


def test_max_sliced_critic_learns_the_direction_of_largest_distance():
    model = zoo.get("gan", dataset="moons", distance="max_sliced_wasserstein", num_hidden=0)
    real = tf.random.stateless_normal([512, 2], seed=[1, 2])
    fake = tf.random.stateless_normal([512, 2], seed=[3, 4]) + [1.2, -1.6]  # |delta| = 2
    optimizer = keras.optimizers.Adam(0.05)
    weights = model.critic_network.trainable_weights
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = model.critic_terms(real, fake, training=True)["critic_loss"]
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))

    for _ in range(100):
        step()
    (kernel,) = weights
    direction = kernel.numpy()[:, 0] / np.linalg.norm(kernel.numpy())
    assert abs(direction @ np.array([0.6, -0.8])) > 0.99
    # At the learned unit direction, the distance is the max-sliced W2^2, |delta|^2.
    distance = model.critic_terms(real, fake, training=True)["sliced_wasserstein_squared"]
    np.testing.assert_allclose(float(distance), 4.0, rtol=0.1)


def test_a_critic_free_distance_has_no_critic_and_trains_its_generator_only():
    model = zoo.get("gmmn", dataset="moons", hidden_units=8, num_hidden=1)
    assert model.critic_network is None and model.loss_names == ("generator_loss", "mmd_squared")
    assert "critic" not in model.serving_signatures()
    with pytest.raises(ValueError, match="has no critic"):
        model.critic(np.zeros((2, 2), np.float32))
    model.compile(optimizer=model.default_optimizer(1e-2))
    x = zoo.datasets.toy.generate("moons", 256, 0).astype("float32")
    before = [w.numpy() for w in model.generator_network.trainable_weights]
    history = model.fit(x, batch_size=128, epochs=1, verbose=0).history
    assert set(history) == {"generator_loss", "mmd_squared"}
    assert int(model.optimizer.iterations) == 2  # one generator update per batch
    assert all(np.any(w.numpy() != b) for w, b in
               zip(model.generator_network.trainable_weights, before))


# ------------------------------------------------------------ Sobolev constraints
@pytest.mark.parametrize("distance, constraint", [
    ("sobolev", lambda n2: n2 - 1.0),  # E_mu |grad|^2 - 1
    ("sobolev_wasserstein", lambda n2: max(n2 - 1.0, 0.0) ** 2),  # mean relu(Omega - 1)^2
])
@pytest.mark.parametrize("norm_w", [0.5, 2.0])
def test_sobolev_constraints_and_multiplier_on_a_linear_critic(distance, constraint, norm_w):
    # D(x) = w.x has |grad D|^2 = |w|^2 everywhere.
    model = zoo.get("gan", dataset="moons", distance=distance, num_hidden=0, n_critic=1,
                    hidden_units=4)
    model.critic_network.score.kernel.assign(np.array([[0.6], [0.8]], np.float32) * norm_w)
    model.compile(optimizer=keras.optimizers.SGD(0.0), critic_optimizer=keras.optimizers.SGD(0.0))
    x = zoo.datasets.toy.generate("moons", 16, 0).astype("float32")
    real = model.to_model_space(tf.constant(x))
    fake = real + 1.0
    h = constraint(norm_w**2)
    rho = model.regularizer_weight
    model.lagrange_multiplier.assign(0.3)
    terms = model.critic_terms(real, fake)
    np.testing.assert_allclose(terms[model.penalty.name], h, rtol=1e-5, atol=1e-6)
    ipm = -terms["wasserstein"]
    np.testing.assert_allclose(terms["critic_loss"], ipm + 0.3 * h + 0.5 * rho * h**2,
                               rtol=1e-5, atol=1e-6)
    # A critic step moves the multiplier by rho h (the weights stay: lr 0).
    model.critic_step(tf.constant(x))
    np.testing.assert_allclose(float(model.lagrange_multiplier), 0.3 + rho * h, rtol=1e-6)


# ------------------------------------------------------ class-conditional GANs
def test_projection_discriminator_adds_the_class_embedding_times_the_features():
    model = zoo.get("gan", dataset="moons", hidden_units=3, num_hidden=1, num_classes=4)
    critic = model.critic_network
    x = tf.random.stateless_normal([5, 2], seed=[1, 2])
    labels = tf.constant([0, 1, 2, 3, 1])
    perturb = np.random.RandomState(0)
    for w in critic.trainable_weights:
        w.assign(perturb.randn(*w.shape).astype("float32"))
    dense, score, projection = critic.hidden[0], critic.score, critic.projection
    h = np.maximum(x.numpy() @ dense.kernel.numpy() + dense.bias.numpy(), 0.0)
    v = projection.kernel.numpy()[labels.numpy()]  # V one_hot(y)
    expected = h @ score.kernel.numpy()[:, 0] + score.bias.numpy()[0] + np.sum(v * h, axis=1)
    np.testing.assert_allclose(model.scores(x, labels=labels), expected, rtol=1e-5, atol=1e-6)


def test_conditional_gan_trains_on_labels_and_samples_each_class(tmp_path):
    model = zoo.get("sngan", dataset="digits", latent_dim=4, filters=4, num_classes=10)
    model.compile()
    x, y = zoo.datasets.arrays("digits", "train")
    history = model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values())
    z = tf.random.stateless_normal([10, 4], seed=[3, 4])
    by_label = [model.generate(z[:1], [k]).numpy() for k in range(10)]
    assert len({b.tobytes() for b in by_label}) == 10  # the label changes the sample
    # The same seed and label give the same samples; another label, others.
    sevens = model.sample(3, seed=5, label=7)
    np.testing.assert_array_equal(sevens, model.sample(3, seed=5, label=7))
    assert not np.array_equal(sevens, model.sample(3, seed=5, label=2))
    assert model.sample(3, seed=5).shape == (3, 8, 8, 1)  # classes at random
    # The epoch's sample grid: a row per class, 64 // 10 = 6 samples each.
    from PIL import Image
    from zoo import plotting

    grid = np.asarray(Image.open(plotting.save_samples(model, str(tmp_path / "g.png"), 64, 0)))
    tile = 32 + plotting.PADDING  # 8x8 digits are drawn x4
    assert grid.shape[:2] == (10 * tile + plotting.PADDING, 6 * tile + plotting.PADDING)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, u: m.generate(np.zeros((2, 4), "float32")), ValueError,
     r"sngan.generate: a class-conditional model needs labels: integers of shape \(batch,\) "
     r"in \[0, 10\), got none"),
    (lambda m, u: m.generate(np.zeros((2, 4), "float32"), [1, 10]), ValueError,
     r"expected labels: .* got int64 of shape \(2,\) with values in \[1, 10\]"),
    (lambda m, u: m.critic(np.zeros((2, 8, 8, 1), "float32"), [1]), ValueError,
     r"expected labels: integers of shape \(batch,\) in \[0, 10\) \(one per example\), got "
     r"int64 of shape \(1,\)"),
    (lambda m, u: m.sample(2, seed=0, label=10), ValueError,
     "expected label > -2 and label < 10, got 10"),
    (lambda m, u: m.fit(np.zeros((4, 8, 8, 1), "float32"), batch_size=4, verbose=0),
     ValueError, r"trains on \(x, label\) batches, got no labels"),
    (lambda m, u: u.generate(np.zeros((2, 4), "float32"), [1, 2]), ValueError,
     r"unconditional \(num_classes=0\) and takes no labels"),
    (lambda m, u: zoo.get("gan", dataset="digits", distance="mmd", num_classes=10),
     ValueError, "class-conditional generation needs a projection critic .* not 'mmd'"),
    (lambda m, u: zoo.get("gan", dataset="digits", num_classes=-1), ValueError,
     "expected num_classes >= 0"),
])
def test_labels_where_none_are_taken_and_none_where_they_are_needed(call, error, match):
    conditional = zoo.get("sngan", dataset="digits", latent_dim=4, filters=4, num_classes=10)
    unconditional = zoo.get("sngan", dataset="digits", latent_dim=4, filters=4)
    if "fit" in call.__code__.co_names:
        conditional.compile()
    with pytest.raises(error, match=match):
        call(conditional, unconditional)


@pytest.mark.parametrize("name", sorted(losses.ADVERSARIAL_LOSSES))
def test_a_loss_says_what_it_needs_of_the_critic(name):
    """The model reads the critic's score bias, whether weights may be clipped and
    the loss's options from the loss class, never from its name."""
    loss = losses.ADVERSARIAL_LOSSES[name]
    options = {"divergence": "pearson"} if "divergence" in loss.options else {}
    kwargs = dict(data_shape=(2,), adversarial_loss=name, hidden_units=8, num_hidden=1,
                  critic_outputs=4 if loss.pairwise else 1, **options)
    model = zoo.gan.base.AdversarialModel(**kwargs)
    assert model.critic_network.score_bias == loss.score_bias
    assert set(options) <= set(loss.options)
    if loss.weight_clipping:
        assert zoo.gan.base.AdversarialModel(weight_clip=0.1, **kwargs).weight_clip == 0.1
    else:
        with pytest.raises(ValueError, match="weight_clip"):
            zoo.gan.base.AdversarialModel(weight_clip=0.1, **kwargs)
    for option in {"divergence", "bandwidths", "num_projections"} - set(loss.options):
        value = {"divergence": "kl", "bandwidths": [1.0], "num_projections": 4}[option]
        with pytest.raises(ValueError, match=f"{option} goes with adversarial_loss="):
            zoo.gan.base.AdversarialModel(**{**kwargs, option: value})
