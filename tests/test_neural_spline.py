"""Neural spline flows: the spline, both layers and both model variants.

Round trips convert to numpy between the two directions: TFP caches a bijector's
outputs by input tensor, so feeding ``encode``'s tensor straight to ``decode``
would return the cached input without inverting.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import brute_force_log_det, perturb_weights
from zoo.flows.neural_spline import NeuralSplineFlow
from zoo.flows.steps.spline_autoregressive import SplineAutoregressive
from zoo.flows.steps.spline_coupling import SplineCoupling, rational_quadratic_spline
from zoo.registry import entry

BOUND = 2.0
TINY = dict(num_layers=2, hidden_units=8, num_hidden=1, num_bins=4)
TOY = ("moons", "8gaussians", "checkerboard", "rings", "pinwheel", "swissroll", "circles")


def points(n, d, seed, scale=1.5):
    """Normal points, with the first ones pushed outside [-BOUND, BOUND] (the tails)."""
    x = scale * np.random.default_rng(seed).standard_normal((n, d))
    x[0] = 3.0 * BOUND * np.sign(x[0] + 1e-3)
    x[1, ::2] = -2.5 * BOUND
    return x.astype("float32")


def build(variant, dataset, seed=0, scale=0.1, **overrides):
    keras.utils.set_random_seed(seed)  # initial weights are random: keep the tests fixed
    config = {**entry("nsf").config_for(dataset), **TINY, "variant": variant, **overrides}
    return perturb_weights(NeuralSplineFlow(**config), scale, seed)


def data_batch(model, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return points(n, model.event_size, seed).reshape(shape)
    return (rng.integers(0, model.num_levels, shape) + rng.uniform(size=shape)).astype("float32")


# ----------------------------------------------------------------- the spline
def test_spline_matches_tfp_rational_quadratic_spline():
    """The hand-written spline is TFP's transform: both directions and log-dets, on
    points inside the interval and in both tails, at random parameters."""
    import tensorflow_probability as tfp

    k, bound = 6, 3.0
    rng = np.random.default_rng(1)
    raw = tf.constant(rng.standard_normal((400, 3, 3 * k - 1)), tf.float32)
    ours = rational_quadratic_spline(raw, k, bound)
    stock = tfp.bijectors.RationalQuadraticSpline(
        ours.bin_widths, ours.bin_heights, ours.knot_slopes, range_min=-bound)
    v = rng.uniform(-1.5 * bound, 1.5 * bound, (400, 3)).astype("float32")
    for method, atol in (("forward", 1e-5), ("inverse", 1e-5),
                         ("forward_log_det_jacobian", 1e-4), ("inverse_log_det_jacobian", 1e-4)):
        options = {"event_ndims": 0} if "log_det" in method else {}
        ours_value = getattr(ours, method)(tf.constant(v), **options).numpy()
        stock_value = getattr(stock, method)(tf.constant(v), **options).numpy()
        np.testing.assert_allclose(ours_value, stock_value, atol=atol, err_msg=method)
    assert np.mean(np.abs(v) < bound) > 0.5  # most points are inside the interval


def test_spline_is_identity_at_zero_monotonic_with_identity_tails():
    k, bound = 5, 2.0
    x = np.linspace(-3 * bound, 3 * bound, 2001).astype("float32")
    identity = rational_quadratic_spline(tf.zeros([3 * k - 1]), k, bound)
    np.testing.assert_allclose(identity.forward(x), x, atol=1e-5)
    raw = tf.constant(np.random.default_rng(0).standard_normal((1, 3 * k - 1)), tf.float32)
    spline = rational_quadratic_spline(raw, k, bound)
    y = spline.forward(x[:, None]).numpy()[:, 0]
    assert np.all(np.diff(y) > 0), "not strictly increasing"
    outside = np.abs(x) > bound + 1e-3
    np.testing.assert_allclose(y[outside], x[outside], atol=1e-5)  # linear (identity) tails
    inside = ~outside
    assert np.max(np.abs(y[inside] - x[inside])) > 0.05, "the spline does (almost) nothing"
    np.testing.assert_allclose([y[inside][0], y[inside][-1]], [-bound, bound], atol=2e-3)
    # Slopes: 1 at the boundary knots (C^1 tails), positive and finite everywhere.
    log_slope = spline.forward_log_det_jacobian(x[:, None], event_ndims=0).numpy()[:, 0]
    assert np.all(np.isfinite(log_slope))
    edges = np.array([[-bound + 1e-4], [bound - 1e-4]], "float32")
    np.testing.assert_allclose(spline.forward_log_det_jacobian(edges, event_ndims=0), 0.0,
                               atol=0.01)
    assert np.max(np.abs(log_slope[inside])) > 0.1
    # Minimum bin sizes: widths and heights sum to 2B and are never below the minimum.
    big = rational_quadratic_spline(tf.constant([[40.0] + [0.0] * (3 * k - 2)]), k, bound)
    for sizes in (big.bin_widths, big.bin_heights):
        np.testing.assert_allclose(np.sum(sizes), 2 * bound, rtol=1e-5)
        assert np.min(sizes) >= 1e-3 * (1 - 1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        rational_quadratic_spline(tf.zeros([3 * 8 - 1]), 8, 0.003)


# ----------------------------------------------------------------- the layers
def coupling_layer(d=5, parity=1):
    keras.utils.set_random_seed(0)
    layer = SplineCoupling(d, parity, hidden_units=8, num_hidden=1, num_bins=4, bound=BOUND)
    return perturb_weights(layer, 0.3, seed=1)


def autoregressive_layer(d=4, order=(3, 1, 4, 2)):
    keras.utils.set_random_seed(0)
    layer = SplineAutoregressive(d, hidden_units=8, num_hidden=1, num_bins=4, bound=BOUND,
                                 input_order=list(order))
    return perturb_weights(layer, 0.3, seed=1)


LAYERS = {"coupling": (coupling_layer, 5), "autoregressive": (autoregressive_layer, 4)}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_round_trips_and_log_dets(name):
    make, d = LAYERS[name]
    layer = make()
    bij = layer.bijector()
    x = points(6, d, seed=2)
    y = bij.forward(x).numpy()
    assert np.max(np.abs(y - x)) > 0.05, "the layer does (almost) nothing"
    np.testing.assert_allclose(bij.inverse(y.copy()), x, atol=1e-4)
    z = points(6, d, seed=3)
    np.testing.assert_allclose(bij.forward(bij.inverse(z).numpy()), z, atol=1e-4)
    fldj = bij.forward_log_det_jacobian(x, event_ndims=1).numpy()
    assert np.max(np.abs(fldj)) > 0.05, "volume preserving: the log-det tests nothing"
    np.testing.assert_allclose(fldj[:3], brute_force_log_det(bij.forward, x[:3]), rtol=1e-4,
                               atol=1e-4)
    ildj = bij.inverse_log_det_jacobian(y.copy(), event_ndims=1).numpy()
    np.testing.assert_allclose(ildj, -fldj, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ildj[:3], brute_force_log_det(bij.inverse, y[:3]), rtol=1e-4,
                               atol=1e-4)
    # A fresh layer is the identity (zero-initialised last layer).
    keras.utils.set_random_seed(0)
    fresh = type(layer).from_config(layer.get_config()).bijector()
    np.testing.assert_allclose(fresh.forward(x), x, atol=1e-5)


def test_coupling_keeps_its_half_and_tails_are_identity():
    layer = coupling_layer(d=5, parity=1)
    np.testing.assert_array_equal(layer.conditioner, [1, 3])
    np.testing.assert_array_equal(layer.transformed, [0, 2, 4])
    bij = layer.bijector()
    x = points(8, 5, seed=4)
    x[:, 0] = np.linspace(-4, 4, 8) * BOUND  # the transformed dim 0 runs through both tails
    y = bij.forward(x).numpy()
    np.testing.assert_array_equal(y[:, [1, 3]], x[:, [1, 3]])
    tails = np.abs(x[:, 0]) > BOUND
    np.testing.assert_allclose(y[tails, 0], x[tails, 0], atol=1e-5)
    assert np.max(np.abs(y[~tails][:, [0, 2, 4]] - x[~tails][:, [0, 2, 4]])) > 0.05
    # Each transformed dimension depends on the kept half and on itself only.
    xt = tf.constant(x[2:3])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = bij.forward(xt)
    jac = tape.jacobian(out, xt).numpy()[0, :, 0, :]
    allowed = np.eye(5, dtype=bool)
    allowed[np.ix_([0, 2, 4], [1, 3])] = True
    assert np.all(jac[~allowed] == 0.0)
    assert np.any(jac[np.ix_([0, 2, 4], [1, 3])] != 0.0)


@pytest.mark.parametrize("direction", ["inverse", "forward"])
def test_autoregressive_jacobian_is_triangular_in_made_order(direction):
    order = np.array([3, 1, 4, 2])  # input i is the order[i]-th
    layer = autoregressive_layer(order=order)
    bij = layer.bijector()
    x = tf.constant([[0.3, -0.8, 1.1, 0.2]], tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out = getattr(bij, direction)(x)
    jac = tape.jacobian(out, x, experimental_use_pfor=False).numpy()[0, :, 0, :]
    earlier = order[None, :] < order[:, None]  # [i, j]: j comes before i
    assert np.all(jac[~(earlier | np.eye(4, dtype=bool))] == 0.0), jac
    assert np.all(np.diag(jac) > 0), "a spline must be increasing"
    assert np.any(jac[earlier] != 0.0), "no dependence on earlier dimensions"
    # Permuted into the MADE order, the Jacobian is lower triangular.
    perm = np.argsort(order)
    ordered = jac[np.ix_(perm, perm)]
    np.testing.assert_array_equal(np.triu(ordered, 1), 0.0)


# ----------------------------------------------------------------- the models
# Digits with 4x4 images: the digits preset's preprocessing and reshapes, with a
# Jacobian small enough to brute-force quickly.
MODELS = [("coupling", "moons", {}), ("autoregressive", "moons", {}),
          ("coupling", "digits", dict(data_shape=(4, 4, 1))),
          ("autoregressive", "digits", dict(data_shape=(4, 4, 1)))]


# The autoregressive variant on digits in the slow suite (the coupling one checks
# the image preprocessing by default).
@pytest.fixture(scope="module", ids=[f"{v}-{d}" for v, d, _ in MODELS], params=[
    pytest.param(m, marks=pytest.mark.slow) if m[:2] == ("autoregressive", "digits") else m
    for m in MODELS])
def model(request):
    variant, dataset, overrides = request.param
    return build(variant, dataset, **overrides)


def test_model_round_trips(model):
    x = data_batch(model, 4, seed=1)
    atol = 1e-4 if model.num_levels is None else 1e-3
    z = model.encode(x).numpy()
    assert np.max(np.abs(z - x)) > 0.05
    np.testing.assert_allclose(model.decode(z), x, atol=atol)
    z = np.random.default_rng(2).standard_normal((4,) + model.data_shape).astype("float32")
    np.testing.assert_allclose(model.encode(model.decode(z).numpy()), z, atol=atol)
    # The flow alone (before the logit preprocessing saturates) through the tails.
    # (Far larger inputs to the tiny perturbed networks make extreme, ill-conditioned
    # splines: a bin 400 times wider than high loses the inverse's precision.)
    flow = model.flow_bijector()
    z.reshape(4, -1)[0, ::3] = 1.5 * model.bound
    z.reshape(4, -1)[1, 1::3] = -1.25 * model.bound
    u = flow.forward(z).numpy()
    assert np.max(np.abs(u)) > 1.2 * model.bound
    np.testing.assert_allclose(flow.inverse(u), z, atol=1e-4)
    np.testing.assert_allclose(flow.forward(flow.inverse(z).numpy()), z, atol=1e-4)


def test_whole_flow_log_det_matches_brute_force(model):
    """Forward and inverse log-dets cancel; each matches slogdet of the autodiff
    Jacobian (for images in the density direction only, to keep the test short:
    the autoregressive variant's forward is D sequential passes to differentiate
    through; the layer tests check both directions); log_prob is the change of
    variables."""
    x = data_batch(model, 3 if model.event_size == 2 else 2, seed=3)
    bij = model.bijector  # the logit preprocessing included for digits
    ndims = len(model.data_shape)
    x_tensor = tf.constant(x)
    z = bij.inverse(x_tensor).numpy()
    ildj = bij.inverse_log_det_jacobian(x_tensor, event_ndims=ndims).numpy()
    fldj = model.bijector.forward_log_det_jacobian(z, event_ndims=ndims).numpy()
    np.testing.assert_allclose(fldj, -ildj, rtol=1e-4, atol=1e-3)
    # The flow alone (without the logit preprocessing) changes volume.
    flow_ildj = model.flow_bijector().inverse_log_det_jacobian(
        model.bijector.bijectors[0].inverse(x) if model.num_levels else x, event_ndims=ndims)
    assert np.max(np.abs(flow_ildj)) > 0.05, "a volume-preserving flow tests nothing here"
    np.testing.assert_allclose(ildj, brute_force_log_det(bij.inverse, x), rtol=1e-4, atol=1e-2)
    if model.event_size == 2:
        np.testing.assert_allclose(fldj, brute_force_log_det(bij.forward, z), rtol=1e-4,
                                   atol=1e-2)
    z = z.reshape(len(x), -1)
    log_normal = -0.5 * np.sum(z**2, 1) - 0.5 * model.event_size * np.log(2 * np.pi)
    np.testing.assert_allclose(model.log_prob(x), log_normal + ildj, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("variant", ["coupling", "autoregressive"])
def test_density_integrates_to_one_on_2d_grid(variant):
    model = build(variant, "8gaussians", seed=1, scale=0.3)  # a sign error: mass 0.78
    edge = np.linspace(-9, 9, 301)
    xx, yy = np.meshgrid(edge, edge)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype("float32")
    log_prob = model.log_prob(grid).numpy()
    initial = -0.5 * np.sum(grid**2, 1) - np.log(2 * np.pi)
    assert np.max(np.abs(log_prob - initial)) > 0.5, "too close to the base density"
    mass = np.exp(log_prob).sum() * (edge[1] - edge[0]) ** 2
    assert abs(mass - 1.0) < 0.01, mass


@pytest.mark.parametrize("variant", ["coupling", "autoregressive"])
def test_no_stale_cached_results(variant):
    """The bijectors must not reuse values computed with older weights (TFP caches
    results by input tensor and shares them between equal bijectors)."""
    model = build(variant, "moons")
    x = tf.constant(data_batch(model, 3))
    before = model.log_prob(x).numpy()
    with tf.GradientTape() as tape:
        log_prob = model.log_prob(x)
    grads = tape.gradient(log_prob, model.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    for v in model.trainable_weights:
        v.assign(v + 0.05)
    after = model.log_prob(x).numpy()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, model.log_prob(tf.identity(x)).numpy(), rtol=1e-6)


def test_coupling_halves_alternate_in_latent_coordinates():
    """With a reversal between layers, consecutive couplings keep complementary
    halves of the latent (for even and odd D)."""
    for d in (2, 3, 6):
        model = NeuralSplineFlow(data_shape=(d,), **{**TINY, "num_layers": 3})
        kept = []
        for i, layer in enumerate(model.transforms):
            index = np.asarray(layer.conditioner)
            kept.append(set((d - 1 - index) if i % 2 else index))  # latent coordinates
        for a, b in zip(kept, kept[1:]):
            assert not a & b and len(a | b) == d, (d, kept)


def test_presets_config_and_errors():
    e = entry("nsf")
    assert set(TOY) | {"digits"} == set(e.presets)
    assert e.config_for("digits")["data_shape"] == (8, 8, 1)
    assert all(e.presets[name]["num_bins"] == 8 for name in e.presets)
    model = build("autoregressive", "digits")
    clone = NeuralSplineFlow.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = data_batch(model, 2)
    np.testing.assert_allclose(clone.log_prob(x), model.log_prob(x), rtol=1e-6)
    with pytest.raises(ValueError, match="variant must be one of"):
        NeuralSplineFlow(variant="affine")
    with pytest.raises(ValueError, match="num_layers >= 1"):
        NeuralSplineFlow(num_layers=0)
    with pytest.raises(ValueError, match="coupling needs >= 2 dimensions"):
        NeuralSplineFlow(data_shape=(1,))
    with pytest.raises(ValueError, match="num_bins >= 2"):
        NeuralSplineFlow(num_bins=1)


@pytest.mark.parametrize("variant", ["coupling",
                                     pytest.param("autoregressive", marks=pytest.mark.slow)])
def test_fit_lowers_nll_on_moons(variant):
    """Tracing TFP's spline (and its gradient) takes seconds per layer: one layer,
    no XLA (the contract test covers a jit-compiled step)."""
    from sklearn.datasets import make_moons

    x = (make_moons(2048, noise=0.1, random_state=0)[0] * 2 + [-1, -0.2]).astype("float32")
    keras.utils.set_random_seed(0)
    model = NeuralSplineFlow(data_shape=(2,), variant=variant, num_layers=1, hidden_units=16,
                             num_hidden=1, num_bins=4, bound=4.0)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), jit_compile=False)
    before = -np.mean(model.log_prob(x[:1024]))
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=0).batch(256).repeat()
    model.fit(ds, steps_per_epoch=50, epochs=1, verbose=0)
    after = -np.mean(model.log_prob(x[:1024]))
    assert after < before - 0.2, (before, after)  # 3.89 -> 3.55 (coupling), 3.06 (AR)
