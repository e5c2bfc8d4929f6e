"""The shared observation models (zoo.distributions): each one's probabilities
over the levels sum to one, its samples follow them, its mean is its mean; the
discretized logistic against float64 CDF differences. Every model of
``OBSERVATIONS`` needs a case here (the test below fails for one without)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo.distributions import OBSERVATIONS, observation_model
from zoo.distributions.discretized_logistic import (
    discretized_logistic_log_prob,
    discretized_logistic_sample,
)

# name -> options for a case of each observation model.
CASES = {
    "logistic": {},
    "bernoulli": {},
    "gaussian": {},
    "gaussian_fixed": {"scale": 0.2},
    "logistic_mixture": {"num_components": 3},
    "categorical": {},
}


def test_every_observation_model_has_a_case():
    assert set(OBSERVATIONS) == set(CASES), set(OBSERVATIONS) ^ set(CASES)


def random_params(model, batch, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(0.0, 0.8, (batch, model.params_per_channel * channels)),
                       tf.float32)


def support(model):
    """The values the model scores (its observed space) and their levels."""
    if model.name == "bernoulli":
        return np.array([0.0, 1.0])
    return np.arange(model.num_levels, dtype=np.float64)


@pytest.mark.parametrize("name", sorted(CASES))
def test_mass_over_the_levels_sums_to_one(name):
    """Discrete models: the mass of every level sums to 1. Continuous ones
    (dequantized Gaussians): the density of y = (x + u) / L integrated over each
    level's bin, times the bin width, with the Jacobian counted, sums to 1."""
    model = observation_model(name, 17, **CASES[name])
    params = random_params(model, 6, channels=2)
    if model.discrete:
        values = support(model)
        log_p = np.stack([model.log_prob(tf.fill([6, 2], float(v)), params).numpy()
                          for v in values])
        np.testing.assert_allclose(np.exp(log_p.astype(np.float64)).sum(0), 1.0, rtol=1e-4)
    else:
        # Midpoint rule over [-20, 20] in [0, 1) units (the whole mass of these
        # params), with log_prob's -log L per value undone: the density of y itself.
        step = 0.002
        grid = np.arange(-20.0, 20.0, step) + step / 2
        log_p = model.log_prob(tf.constant(grid[:, None, None], tf.float32), params).numpy()
        density = np.exp(log_p.astype(np.float64) - model.log_det_jacobian)
        np.testing.assert_allclose(density.sum(0) * step, 1.0, rtol=1e-3)
        assert model.log_det_jacobian == pytest.approx(-math.log(17))


@pytest.mark.parametrize("name", sorted(CASES))
def test_samples_are_levels_that_follow_the_mass(name):
    model = observation_model(name, 5, **CASES[name])
    n = 20000
    params = tf.repeat(random_params(model, 1, seed=3), n, axis=0)
    draws = model.sample(params, tf.constant([4, 5])).numpy()
    assert draws.shape == (n, 1) and draws.dtype == np.float32
    assert set(np.unique(draws)) <= set(np.arange(5.0))
    freq = np.bincount(draws.astype(int).ravel(), minlength=5) / n
    if model.discrete and name != "bernoulli":
        p = np.exp([model.log_prob(tf.fill([1, 1], float(k)), params[:1]).numpy()[0, 0]
                    for k in range(5)])
        np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / n))
    elif name == "bernoulli":  # 0 or L - 1, with the logit's probability
        p1 = 1.0 / (1.0 + np.exp(-params.numpy()[0, 0]))
        assert set(np.unique(draws)) <= {0.0, 4.0}
        assert abs(freq[4] - p1) < 4 * np.sqrt(0.25 / n)
    else:  # the Gaussians: the frequency of each level is its bin's mass
        loc, log_scale = model.loc_and_log_scale(params[:1])
        loc, scale = float(np.ravel(loc)[0]), float(np.exp(np.ravel(log_scale)[0]))
        cdf = lambda y: 0.5 * (1.0 + math.erf((y - loc) / (scale * math.sqrt(2.0))))
        edges = [-np.inf, 0.2, 0.4, 0.6, 0.8, np.inf]
        p = [(cdf(b) if np.isfinite(b) else 1.0) - (cdf(a) if np.isfinite(a) else 0.0)
             for a, b in zip(edges[:-1], edges[1:])]
        np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / n))


DISCRETE = sorted(name for name in CASES if OBSERVATIONS[name].discrete)


@pytest.mark.parametrize("name", DISCRETE)
def test_a_discrete_draw_is_its_uniforms_mapped_to_a_level(name):
    """``sample(params, seed)`` is ``sample_from_noise`` of the uniforms ``noise``
    draws (uniforms_per_value per value), and the same function runs under XLA;
    with one uniform per value, the level is monotone in it: uniforms near 0 and
    near 1 give the two extremes a value can take."""
    model = observation_model(name, 5, **CASES[name])
    params = random_params(model, 6, channels=2, seed=1)
    shape = model.value_shape(params)
    assert shape.numpy().tolist() == [6, 2]
    noise = model.noise(shape, tf.constant([4, 5]))
    assert noise.shape == (6, 2, model.uniforms_per_value)
    drawn = model.sample_from_noise(params, noise).numpy()
    np.testing.assert_array_equal(model.sample(params, tf.constant([4, 5])).numpy(), drawn)
    xla = tf.function(model.sample_from_noise, jit_compile=True)(params, noise).numpy()
    np.testing.assert_array_equal(xla, drawn)
    low = model.sample_from_noise(params, tf.zeros_like(noise)).numpy()
    high = model.sample_from_noise(params, tf.fill(tf.shape(noise), 1.0 - 2 ** -24)).numpy()
    if model.uniforms_per_value == 1:
        assert np.all(np.minimum(low, high) <= drawn) and np.all(drawn <= np.maximum(low, high))
    assert set(np.unique(np.concatenate([low, high]))) <= set(np.arange(5.0))


def test_categorical_draws_by_the_inverse_cdf():
    """Uniform u draws the first level whose cumulative probability exceeds u."""
    model = observation_model("categorical", 4)
    probs = np.array([0.1, 0.0, 0.6, 0.3], np.float32)
    params = tf.constant(np.log(probs + 1e-30)[None, :])
    u = np.array([0.0, 0.05, 0.1001, 0.5, 0.69, 0.7001, 0.999], np.float32)
    drawn = model.sample_from_noise(tf.repeat(params, len(u), axis=0),
                                    tf.constant(u[:, None, None])).numpy()[:, 0]
    np.testing.assert_array_equal(drawn, [0, 0, 2, 2, 2, 3, 3])


def test_inverse_cdf_never_draws_a_zero_weight():
    """The one inverse CDF of the categorical, the mixture's component and
    RandomStream.categorical: the first index whose cumulative weight exceeds u
    times the total; a zero weight is never drawn, not even when rounding lets
    u times the total reach the total (u = 1 here), for a batch of weight
    vectors as for one vector against many uniforms."""
    from zoo.nn.random_stream import inverse_cdf

    weights = np.array([[0.0, 0.3, 0.0, 0.7, 0.0], [0.5, 0.0, 0.5, 0.0, 0.0]], np.float32)
    u = np.array([[0.0, 0.29, 0.3, 0.99, 1.0]], np.float32)
    drawn = inverse_cdf(tf.constant(weights[:, None, :]), tf.constant(np.repeat(u, 2, 0)))
    np.testing.assert_array_equal(drawn.numpy(), [[1, 1, 3, 3, 3], [0, 0, 0, 2, 2]])
    np.testing.assert_array_equal(inverse_cdf(weights[1], u[0]).numpy(), [0, 0, 0, 2, 2])


def test_categorical_mean_is_the_mean_of_its_levels():
    model = observation_model("categorical", 7)
    params = random_params(model, 4, channels=3)
    p = np.exp(np.stack([model.log_prob(tf.fill([4, 3], float(k)), params).numpy()
                         for k in range(7)]).astype(np.float64))
    np.testing.assert_allclose(model.mean(params).numpy(), (p * np.arange(7)[:, None, None]).sum(0),
                               rtol=1e-5)


def test_categorical_logits_are_the_blocks_of_levels_in_one_reshape():
    """Logit l of channel c is the value c of block l (the parameters' layout:
    L blocks of the channels), for any leading axes; computed by one reshape and
    transpose, not one slice per level (256 for bytes)."""
    model = observation_model("categorical", 256)
    params = tf.reshape(random_params(model, 6, channels=3), [2, 3, 256 * 3])
    blocks = params.numpy().reshape(2, 3, 256, 3)  # (..., level, channel)
    np.testing.assert_array_equal(model.logits(params).numpy(), blocks.swapaxes(-1, -2))
    graph = tf.function(model.logits).get_concrete_function(
        tf.TensorSpec([None, None, None], tf.float32)).graph
    sliced = [(op.type, len(op.inputs), len(op.outputs)) for op in graph.get_operations()
              if max(len(op.inputs), len(op.outputs)) > 4]
    assert not sliced, sliced


def test_a_mixture_of_one_component_is_the_discretized_logistic():
    mixture = observation_model("logistic_mixture", 17, num_components=1)
    single = observation_model("logistic", 17)
    params = random_params(mixture, 5, channels=2)
    loc_scale = tf.concat([params[:, 2:4], params[:, 4:6]], axis=-1)
    levels = tf.constant(np.random.default_rng(2).integers(0, 17, (5, 2)), tf.float32)
    np.testing.assert_allclose(mixture.log_prob(levels, params).numpy(),
                               single.log_prob(levels, loc_scale).numpy(), rtol=1e-5, atol=1e-6)


def test_unknown_observation_and_bad_options_are_errors():
    with pytest.raises(ValueError, match="expected observation in"):
        observation_model("poisson", 17)
    with pytest.raises(ValueError, match="num_components >= 1"):
        observation_model("logistic_mixture", 17, num_components=0)
    with pytest.raises(ValueError, match="scale > 0"):
        observation_model("gaussian_fixed", 17, scale=0.0)
    with pytest.raises(ValueError, match="num_levels >= 2"):
        observation_model("categorical", 1)


def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_discretized_logistic_sums_to_one_and_matches_cdf_differences(num_levels):
    rng = np.random.default_rng(0)
    loc = rng.uniform(-1.5, 1.5, size=(50, 1)).astype("float32")
    log_scale = rng.uniform(-6.0, 1.0, size=(50, 1)).astype("float32")
    levels = np.arange(num_levels, dtype="float32")[None, :]
    shape = (50, num_levels)
    log_p = discretized_logistic_log_prob(
        tf.constant(np.broadcast_to(levels, shape)), tf.constant(np.broadcast_to(loc, shape)),
        tf.constant(np.broadcast_to(log_scale, shape)), num_levels).numpy()
    np.testing.assert_allclose(np.exp(log_p.astype("float64")).sum(axis=1), 1.0, rtol=1e-4)
    # Reference in float64: differences of the logistic CDF at the bin edges (tails
    # in the first and last bins), taken on the side of the location where they
    # do not cancel (survival functions above it).
    h = 1.0 / (num_levels - 1)
    centre = 2.0 * levels.astype("float64") / (num_levels - 1) - 1.0
    scale = np.exp(log_scale.astype("float64"))
    upper = np.where(levels == num_levels - 1, np.inf, (centre + h - loc) / scale)
    lower = np.where(levels == 0, -np.inf, (centre - h - loc) / scale)
    p = np.where(centre > loc, sigmoid(-lower) - sigmoid(-upper), sigmoid(upper) - sigmoid(lower))
    ok = p > 1e-30
    np.testing.assert_allclose(log_p[ok], np.log(p[ok]), rtol=1e-4, atol=1e-4)


def test_discretized_logistic_is_finite_with_gradients_far_in_the_tails():
    levels = tf.constant([[0.0, 8.0, 16.0]] * 2)
    loc = tf.Variable([[40.0, -40.0, -40.0], [-40.0, 40.0, 40.0]])
    log_scale = tf.Variable(tf.fill([2, 3], -7.0))
    with tf.GradientTape() as tape:
        log_p = discretized_logistic_log_prob(levels, loc, log_scale, 17)
    grads = tape.gradient(log_p, [loc, log_scale])
    assert np.all(np.isfinite(log_p.numpy()))
    # Row 0: every level far from its location: very unlikely, yet finite.
    assert np.all(log_p.numpy()[0] < -100)
    # Row 1: the end bins take the whole tail beyond them.
    np.testing.assert_allclose(log_p.numpy()[1, [0, 2]], 0.0, atol=1e-6)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_discretized_logistic_is_finite_with_gradients_at_huge_scales():
    """A scale so large that a bin's width over it rounds exp(-width) to 1 (a
    PixelCNN++ at 256 levels reached it in its third step of training and went
    NaN): the mass and its gradients stay finite, the mass that of a bin
    under a nearly flat density, width / (4 s) at the centre."""
    levels = tf.constant([[0.0, 128.0, 255.0]] * 4)
    loc = tf.Variable(tf.zeros([4, 3]))
    log_scale = tf.Variable(tf.constant([[15.0] * 3, [30.0] * 3, [80.0] * 3, [120.0] * 3]))
    with tf.GradientTape() as tape:
        log_p = discretized_logistic_log_prob(levels, loc, log_scale, 256)
    grads = tape.gradient(log_p, [loc, log_scale])
    assert np.all(np.isfinite(log_p.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    expected = np.log(2.0 / 255.0 / 4.0) - 15.0
    np.testing.assert_allclose(log_p.numpy()[0, 1], expected, rtol=1e-4)


def test_discretized_logistic_sample_follows_its_probabilities():
    num_levels, n = 5, 40000
    loc = tf.fill([n, 1], 0.1)
    log_scale = tf.fill([n, 1], math.log(0.3))
    noise = tf.random.stateless_uniform([n, 1], seed=[1, 2])
    draws = discretized_logistic_sample(loc, log_scale, num_levels, noise).numpy()
    freq = np.bincount(draws.astype(int).ravel(), minlength=num_levels) / n
    levels = tf.constant(np.arange(num_levels, dtype="float32")[:, None])
    p = np.exp(discretized_logistic_log_prob(
        levels, tf.fill([num_levels, 1], 0.1), tf.fill([num_levels, 1], math.log(0.3)),
        num_levels).numpy().ravel())
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / n))
