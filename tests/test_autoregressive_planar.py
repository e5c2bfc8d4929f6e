"""MADE, MAF, IAF, planar and radial flows: autoregressive masks, invertibility,
log|det J| against a brute-force Jacobian, normalisation, cost per direction, fit.

Round trips convert to numpy between the two directions: TFP caches a bijector's
outputs by input tensor (also across equal bijectors), so feeding ``encode``'s
tensor straight to ``decode`` would return the cached input without inverting.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import zoo
from zoo.flows.iaf import IAF
from zoo.flows.maf import MAF
from zoo.flows.planar import PlanarFlow
from zoo.flows.radial import RadialFlow
from zoo.flows.steps.autoregressive_affine import AutoregressiveAffine
from zoo.flows.steps.batch_norm import BatchNormBijectorLayer
from zoo.flows.steps.spline_autoregressive import SplineAutoregressive
from zoo.nn.made import MADE
from zoo.flows.steps.planar import PlanarBijector
from zoo.flows.steps.radial import RadialBijector

# The planar inverse is iterative (40 bisection steps + 1 Newton step per layer):
# it is exact up to float32 round-off, amplified by the conditioning of each step.
PLANAR_INVERSE_ATOL = 1e-4
TINY = {
    "maf": dict(num_layers=2, hidden_units=8, num_hidden=1),
    "iaf": dict(num_layers=2, hidden_units=8, num_hidden=1),
    "planar": dict(num_layers=4),
    "radial": dict(num_layers=4),
}
MODELS_2D = [("maf", "moons"), ("iaf", "moons"), ("planar", "moons"), ("radial", "moons")]
MODELS = MODELS_2D + [("maf", "digits"), ("iaf", "digits")]


def perturb(model, scale=0.1, seed=0):
    """Moves every weight off its (often zero or identity) initialisation."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))
    return model


def brute_force_log_det(fn, x):
    """log|det d fn(x) / dx| per example, from the autodiff Jacobian and slogdet.

    One batch Jacobian for all examples: flows treat examples independently.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    d = int(np.prod(x.shape[1:]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = fn(x)
    jac = tape.batch_jacobian(y, x, experimental_use_pfor=d > 8)  # pfor pays off when big
    sign, logdet = np.linalg.slogdet(jac.numpy().reshape(-1, d, d).astype("float64"))
    assert np.all(sign != 0), "the Jacobian is singular"
    return logdet


def build(name, dataset, seed=0, **overrides):
    keras.utils.set_random_seed(seed)  # initial weights are random: keep the tests fixed
    scale = 0.5 if name in ("planar", "radial") else 0.1  # tiny raw parameters do little
    return perturb(zoo.get(name, dataset=dataset, **{**TINY[name], **overrides}), scale)


def data_batch(model, n=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return rng.standard_normal(shape).astype("float32")
    return (rng.integers(0, model.num_levels, shape) + rng.uniform(size=shape)).astype("float32")


# IAF on digits (its density takes 64 sequential passes) in the slow suite.
@pytest.fixture(scope="module", ids=[f"{n}-{d}" for n, d in MODELS], params=[
    pytest.param(m, marks=pytest.mark.slow) if m == ("iaf", "digits") else m for m in MODELS])
def model(request):
    return build(*request.param)


# ------------------------------------------------------------------------ MADE
@pytest.mark.parametrize("order,num_hidden", [([3, 1, 5, 2, 4], 2), ("right-to-left", 1),
                                              ("random", 2), ([2, 5, 4, 1, 3], 0)])
def test_made_is_autoregressive(order, num_hidden):
    made = MADE(5, hidden_units=8, num_hidden=num_hidden, params=3, input_order=order, seed=3,
                activation="tanh", zero_init=False)
    degrees = made.degrees[0]
    assert sorted(degrees) == [1, 2, 3, 4, 5]
    if order != "random":
        assert list(degrees) == ([5, 4, 3, 2, 1] if order == "right-to-left" else order)
    rng = np.random.default_rng(1)
    for v in made.trainable_weights:
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    x = tf.constant(rng.standard_normal((1, 5)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = made(x)
    assert y.shape == (1, 5, 3)
    jac = tape.jacobian(y, x, experimental_use_pfor=False).numpy()[0, :, :, 0, :]  # [i, p, j]
    allowed = degrees[:, None] > degrees[None, :]  # output i may see input j
    for p in range(3):
        assert np.all(jac[:, p, :][~allowed] == 0.0), f"slot {p} sees inputs it must not"
        # ... and it does see the others (tanh has no dead units).
        assert np.all(jac[:, p, :][allowed] != 0.0), f"slot {p} misses allowed inputs"
    # The masks connect exactly the allowed pairs (for every parameter slot).
    paths = np.linalg.multi_dot([np.eye(5)] + list(made.masks))
    np.testing.assert_array_equal(paths.reshape(5, 5, 3).transpose(1, 2, 0) > 0,
                                  np.repeat(allowed[:, None, :], 3, 1))


def test_made_config_round_trip_and_errors():
    made = MADE(4, hidden_units=6, num_hidden=2, input_order="random", hidden_degrees="random",
                seed=7, zero_init=False)
    clone = MADE.from_config(made.get_config())
    for a, b in zip(made.masks, clone.masks):
        np.testing.assert_array_equal(a, b)
    clone.set_weights(made.get_weights())
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_array_equal(made(x), clone(x))
    with pytest.raises(ValueError, match="permutation of 1..3"):
        MADE(3, 4, input_order=[1, 1, 2])
    with pytest.raises(ValueError, match="hidden_degrees must be"):
        MADE(3, 4, hidden_degrees="clever")
    with pytest.raises(ValueError, match="needs an integer seed"):
        MADE(3, 4, input_order="random")


# ------------------------------------------------------------- single layers
# (Round trips and brute-force log-dets of every bijector layer: tests/test_steps.py.)
def set_moving_statistics(obj, seed=0):
    """Moves batch norms' moving averages off zero mean and unit variance."""
    rng = np.random.default_rng(seed)
    for v in obj.non_trainable_weights:
        if v.name == "moving_mean":
            v.assign(rng.normal(size=v.shape).astype("float32"))
        elif v.name == "moving_variance":
            v.assign(rng.uniform(0.3, 3.0, size=v.shape).astype("float32"))
    return obj


def test_planar_constraint_keeps_invertibility():
    w = np.array([1.0, 0.0], "float32")
    u = np.array([-5.0, 1.0], "float32")  # w^T u = -5: unconstrained, the map folds
    a = np.linspace(-3, 3, 2001).astype("float32")
    assert np.min(1.0 + w @ u * (1 - np.tanh(a) ** 2)) < 0  # det of the raw map < 0 at a=0
    bij = PlanarBijector(w, u, 0.0)
    u_hat, c, _ = bij.constrained()
    np.testing.assert_allclose(float(c), -1.0 + np.log1p(np.exp(-5.0)), rtol=1e-5)
    np.testing.assert_allclose(float(w @ u_hat.numpy()), float(c), rtol=1e-5)
    # Along w the map is strictly increasing, so one-to-one.
    line = np.stack([a, np.zeros_like(a)], 1)
    assert np.all(np.diff(bij.forward(line).numpy()[:, 0]) > 0)
    x = np.random.default_rng(3).standard_normal((64, 2)).astype("float32")
    fldj = bij.forward_log_det_jacobian(x, event_ndims=1).numpy()
    assert np.all(np.isfinite(fldj))
    np.testing.assert_allclose(fldj[:4], brute_force_log_det(bij.forward, x[:4]), rtol=1e-4,
                               atol=1e-4)
    y = bij.forward(x).numpy()
    np.testing.assert_allclose(bij.inverse(y), x, atol=PLANAR_INVERSE_ATOL)
    # Even w^T u = -40 (w^T u_hat rounds to -1) keeps a positive, finite det.
    steep = PlanarBijector(w, np.array([-40.0, 1.0], "float32"), 0.0)
    assert np.all(np.isfinite(steep.forward_log_det_jacobian(line, event_ndims=1)))
    assert np.all(np.diff(steep.forward(line).numpy()[:, 0]) >= 0)


def test_radial_constraint_keeps_invertibility():
    z0 = np.array([0.5, -0.5, 0.0], "float32")
    bij = RadialBijector(z0, 2.0, -20.0)  # beta = -alpha + 2e-9: as contracting as allowed
    _, alpha, beta, _ = bij.constrained()
    assert float(beta) >= -float(alpha) and float(beta) < -0.99 * float(alpha)
    rng = np.random.default_rng(4)
    x = (z0 + rng.standard_normal((64, 3)) * np.logspace(-3, 1, 64)[:, None]).astype("float32")
    fldj = bij.forward_log_det_jacobian(x, event_ndims=1).numpy()
    assert np.all(np.isfinite(fldj))
    np.testing.assert_allclose(fldj[::16], brute_force_log_det(bij.forward, x[::16]),
                               rtol=1e-4, atol=1e-4)
    # The radius is strictly increasing in r, so the map is one-to-one.
    r = np.linspace(0, 5, 1001).astype("float32")
    y = bij.forward(z0 + r[:, None] * np.array([[1.0, 0.0, 0.0]], "float32")).numpy()
    assert np.all(np.diff(np.linalg.norm(y - z0, axis=1)) > 0)
    y = bij.forward(x).numpy()
    np.testing.assert_allclose(bij.inverse(y), x, rtol=1e-4, atol=1e-5)


def test_batch_norm_uses_batch_statistics_while_training():
    layer = perturb(BatchNormBijectorLayer(3, momentum=0.9), 0.3)
    log_gamma, beta = layer.log_gamma.numpy(), layer.beta.numpy()
    x = np.random.default_rng(4).normal([1.0, -2.0, 3.0], [2.0, 0.5, 1.0], (512, 3))
    x = x.astype("float32")
    mean, var = x.astype("float64").mean(0), x.astype("float64").var(0)
    layer.batch_statistics = True
    bij = layer.bijector()
    u = bij.inverse(x).numpy()
    np.testing.assert_allclose(u.mean(0), beta, atol=1e-4)  # the batch's own moments
    np.testing.assert_allclose(u.std(0), np.exp(log_gamma) * np.sqrt(var / (var + 1e-5)),
                               rtol=1e-4)
    np.testing.assert_allclose(bij.inverse_log_det_jacobian(x, event_ndims=1),
                               np.sum(log_gamma - 0.5 * np.log(var + 1e-5)), rtol=1e-5)
    # One normalizing pass moved the averages once (the log-det did not).
    np.testing.assert_allclose(layer.moving_mean, 0.1 * mean, rtol=1e-4)
    np.testing.assert_allclose(layer.moving_variance, 0.9 + 0.1 * var, rtol=1e-4)
    layer.batch_statistics = False  # evaluation: the moving averages, no update
    moving = layer.moving_mean.numpy().copy()
    u = layer.bijector().inverse(x).numpy()
    np.testing.assert_allclose(
        u, (x - moving) / np.sqrt(layer.moving_variance.numpy() + 1e-5) * np.exp(log_gamma) + beta,
        rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean, moving)
    with pytest.raises(ValueError, match="0 <= momentum < 1"):
        BatchNormBijectorLayer(3, momentum=1.0)


def test_maf_with_batch_norm():
    """MAF with BN: exact change of variables in evaluation (moving averages),
    normalised density, and only the training step moves the averages."""
    model = set_moving_statistics(build("maf", "moons", batch_norm=True), seed=1)
    assert len(model.batch_norms) == TINY["maf"]["num_layers"]
    x = data_batch(model, 4, seed=3)
    z = model.encode(x).numpy()
    np.testing.assert_allclose(model.decode(z).numpy(), x, atol=1e-4)
    ildj = model.bijector.inverse_log_det_jacobian(tf.constant(x), event_ndims=1).numpy()
    np.testing.assert_allclose(ildj, brute_force_log_det(model.bijector.inverse, x), rtol=1e-4,
                               atol=1e-3)
    log_normal = -0.5 * np.sum(z**2, 1) - np.log(2 * np.pi)
    np.testing.assert_allclose(model.log_prob(x), log_normal + ildj, rtol=1e-5, atol=1e-3)
    edge = np.linspace(-10, 10, 401)
    grid = np.stack([g.ravel() for g in np.meshgrid(edge, edge)], 1).astype("float32")
    assert abs(np.exp(model.log_prob(grid).numpy()).sum() * (edge[1] - edge[0]) ** 2 - 1) < 0.02

    def moving():
        return [v.numpy().copy() for v in model.non_trainable_weights]

    data = tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(0).normal(size=(64, 2)).astype("float32")).batch(32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = moving()
    model.evaluate(data, verbose=0)
    model.log_prob(x)
    for a, b in zip(before, moving()):
        np.testing.assert_array_equal(a, b)
    model.fit(data, epochs=1, verbose=0)
    assert all(np.all(a != b) for a, b in zip(before, moving()))


# -------------------------------------------------------------- whole models
def test_model_round_trips(model):
    x = data_batch(model, 4, seed=1)
    atol = PLANAR_INVERSE_ATOL if model.num_levels is None else 1e-3
    np.testing.assert_allclose(model.decode(model.encode(x).numpy()), x, atol=atol)
    z = np.random.default_rng(2).standard_normal((4,) + model.data_shape).astype("float32")
    np.testing.assert_allclose(model.encode(model.decode(z).numpy()), z, atol=atol)


def test_whole_flow_log_det_matches_brute_force(model):
    """Forward and inverse log-dets cancel; each matches slogdet of the autodiff
    Jacobian (for digits, D = 64, in the fast direction only: MAF's inverse, IAF's
    forward, the other taking D sequential passes to differentiate through)."""
    x = data_batch(model, 4 if model.event_size == 2 else 2, seed=3)
    bij = model.bijector  # preprocessing (scaling + logit) included for digits
    ndims = len(model.data_shape)
    x_tensor = tf.constant(x)
    z = bij.inverse(x_tensor).numpy()
    ildj = bij.inverse_log_det_jacobian(x_tensor, event_ndims=ndims).numpy()
    fldj = model.bijector.forward_log_det_jacobian(z, event_ndims=ndims).numpy()
    np.testing.assert_allclose(fldj, -ildj, rtol=1e-4, atol=1e-3)
    assert np.max(np.abs(ildj)) > 0.05, "a volume-preserving flow tests nothing here"
    if model.event_size == 2 or not isinstance(model, IAF):
        np.testing.assert_allclose(ildj, brute_force_log_det(bij.inverse, x), rtol=1e-4,
                                   atol=1e-2)
    if model.event_size == 2 or isinstance(model, IAF):
        np.testing.assert_allclose(fldj, brute_force_log_det(bij.forward, z), rtol=1e-4,
                                   atol=1e-2)
    if isinstance(model, IAF) and model.event_size > 2:
        return  # its log_prob would take D more sequential passes
    # log_prob is the change of variables.
    z = z.reshape(len(x), -1)
    log_normal = -0.5 * np.sum(z**2, 1) - 0.5 * model.event_size * np.log(2 * np.pi)
    np.testing.assert_allclose(model.log_prob(x), log_normal + ildj, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", ["maf", "iaf", "planar", "radial"])
def test_no_stale_cached_results(name):
    """TFP caches results by input tensor and shares them between equal bijectors:
    the model's bijectors must not reuse values computed with older weights or
    outside a gradient tape (eagerly, on the very same tensor)."""
    model = build(name, "moons")
    x = tf.constant(data_batch(model, 3))
    before = model.log_prob(x).numpy()
    with tf.GradientTape() as tape:
        log_prob = model.log_prob(x)
    grads = tape.gradient(log_prob, model.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    for v in model.trainable_weights:
        v.assign(v + 0.1)
    after = model.log_prob(x).numpy()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, model.log_prob(tf.identity(x)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["maf", "iaf", "planar", "radial"])
def test_density_integrates_to_one_on_2d_grid(name):
    model = build(name, "8gaussians")
    edge = np.linspace(-8, 8, 321)
    xx, yy = np.meshgrid(edge, edge)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype("float32")
    density = np.exp(model.log_prob(grid).numpy())
    mass = density.sum() * (edge[1] - edge[0]) ** 2
    assert abs(mass - 1.0) < 0.02, mass


@pytest.mark.parametrize("name,dataset,fast", [("maf", "moons", "log_prob"),
                                               ("iaf", "moons", "sample"),
                                               ("maf", "digits", "log_prob")])
def test_network_passes_per_direction(name, dataset, fast, monkeypatch):
    """The fast direction runs each MADE once; the other D times (eagerly counted),
    the first of them on a single row, and IAF's log-det comes with the last."""
    model = build(name, dataset, num_layers=2)
    rows = []
    original = MADE.call
    monkeypatch.setattr(MADE, "call", lambda self, x: rows.append(len(x)) or original(self, x))
    model.log_prob(data_batch(model, 3))
    log_prob_rows = list(rows)
    rows.clear()
    model.sample(3, seed=0)
    sample_rows = list(rows)
    one_pass = [3, 3]  # two MADEs
    sequential = ([1] + [3] * (model.event_size - 1)) * 2
    if fast == "log_prob":
        assert (log_prob_rows, sample_rows) == (one_pass, sequential)
    else:
        assert (log_prob_rows, sample_rows) == (sequential, one_pass)


@pytest.mark.parametrize("event_size,batch", [(1, (5,)), (3, (5,)), (12, (2, 3))])
@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_masked_autoregressive_matches_tfp(kind, event_size, batch):
    """Our MaskedAutoregressive (fewer forward passes; 12 dimensions take the
    tf.while_loop) gives TFP's MaskedAutoregressiveFlow's values and log-dets in
    both directions, on the same MADE, for any batch shape."""
    if kind == "affine":
        layer = AutoregressiveAffine(event_size, 16, num_hidden=2, input_order="right-to-left")
    else:
        layer = SplineAutoregressive(event_size, 16, num_hidden=2, num_bins=4, bound=2.0)
    layer.made(tf.zeros([1, event_size]))
    # Weights far enough from the identity that a missing pass shows (in 3
    # dimensions; in 12 the passes converge before the last; the pass count is
    # checked by test_network_passes_per_direction). Less for the spline, whose
    # slopes are unbounded: at 0.5 its 12-D log-dets reach -50 and float32 round
    # trips stop being exact, for TFP's as for ours.
    perturb(layer, scale=1.0 if kind == "affine" else 0.3)
    ours = layer.bijector()
    elementwise = ours._transformer
    stock = tfp.bijectors.MaskedAutoregressiveFlow(
        bijector_fn=elementwise)
    x = np.random.default_rng(1).normal(size=batch + (event_size,)).astype("float32")
    assert ours.forward(x).shape == x.shape and ours.inverse_log_det_jacobian(x, 1).shape == batch
    for a, b in [(ours.forward(x), stock.forward(x)), (ours.inverse(x), stock.inverse(x)),
                 (ours.forward_log_det_jacobian(x, 1), stock.forward_log_det_jacobian(x, 1)),
                 (ours.inverse_log_det_jacobian(x, 1), stock.inverse_log_det_jacobian(x, 1))]:
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_presets_and_errors():
    assert zoo.registry.entry("maf").config_for("fashion_mnist")["data_shape"] == (28, 28, 1)
    assert "fashion_mnist" not in zoo.registry.entry("iaf").presets
    for name in ("planar", "radial"):
        assert set(zoo.registry.entry(name).presets) == {
            "moons", "8gaussians", "checkerboard", "rings", "pinwheel", "swissroll", "circles"}
    assert isinstance(zoo.get("iaf", dataset="digits", **TINY["iaf"]), MAF)
    with pytest.raises(ValueError, match=r"expected data_shape \(D,\)"):
        PlanarFlow(data_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="num_layers >= 1"):
        RadialFlow(num_layers=0)
    with pytest.raises(ValueError, match="num_layers >= 1"):
        IAF(num_layers=0)


@pytest.mark.parametrize("name", ["maf", "planar", "radial"])
def test_fit_lowers_nll_on_moons(name):
    from sklearn.datasets import make_moons

    x = (make_moons(2048, noise=0.1, random_state=0)[0] * 2 + [-1, -0.2]).astype("float32")
    config = {"maf": dict(num_layers=3, hidden_units=16), "planar": dict(num_layers=3),
              "radial": dict(num_layers=3)}[name]
    keras.utils.set_random_seed(0)
    model = zoo.get(name, dataset="moons", **config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2 if name in ("planar", "radial") else 3e-3))
    before = -np.mean(model.log_prob(x[:1024]))
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=0).batch(256).repeat()
    model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0)
    after = -np.mean(model.log_prob(x[:1024]))
    assert after < before - 0.2, (before, after)  # about 0.7 (maf, planar), 0.37 (radial)
