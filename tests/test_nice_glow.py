"""NICE and Glow: their layers and flows against brute-force Jacobians, ActNorm's init."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import zoo
import zoo.flows.glow  # noqa: F401  (registers "glow")
import zoo.flows.nice  # noqa: F401  (registers "nice")
from helpers import TWO_REPLICAS, brute_force_log_det, perturb_weights
from zoo.flows.steps.act_norm import ActNorm
from zoo.flows.steps.additive_coupling import AdditiveCoupling
from zoo.flows.steps.diagonal_scaling import DiagonalScaling
from zoo.flows.steps.glow_affine_coupling import GlowAffineCoupling
from zoo.flows.steps.invertible_conv_1x1 import InvertibleConv1x1
from zoo.flows.steps.learned_prior_split import LearnedPriorSplit
from zoo.preprocessing import logit_bijector

tfb = tfp.bijectors
tfd = tfp.distributions

TINY = {
    ("nice", "moons"): dict(hidden_units=8, num_hidden=2),
    ("nice", "digits"): dict(hidden_units=8, num_hidden=1),
    ("glow", "moons"): dict(hidden_units=8, num_steps=2),
    ("glow", "digits"): dict(hidden_units=4, num_steps=1),
}
MODELS = list(TINY)
IDS = [f"{n}-{d}" for n, d in MODELS]


def tiny(name, dataset, **overrides):
    return zoo.get(name, dataset=dataset, **{**TINY[name, dataset], **overrides})


@pytest.fixture(scope="module")
def models():
    """Each tiny model with its weights moved off their initialisation."""
    return {key: perturb_weights(tiny(*key), scale=0.05, seed=i) for i, key in enumerate(MODELS)}


def data_batch(model, n=3, seed=0):
    """Dequantized pixels for images, standard normal points for vectors."""
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return rng.standard_normal(shape).astype("float32")
    return (rng.integers(0, model.num_levels, shape) + rng.uniform(size=shape)).astype("float32")


def fresh(tensor):
    """A new tensor with the same values: TFP's bijector cache cannot recognise it."""
    return tf.constant(np.asarray(tensor))


def check_bijector(make, x, atol=1e-5):
    """Round trips, log-det against slogdet, forward/inverse log-dets cancel.

    `make()` returns a new bijector (a new instance, so no cached inverse is reused).
    Returns the forward log-det.
    """
    event_ndims = len(x.shape) - 1
    x = tf.constant(x, tf.float32)
    y = make().forward(x)
    np.testing.assert_allclose(make().inverse(fresh(y)), x, atol=atol)
    np.testing.assert_allclose(make().forward(make().inverse(fresh(x))), x, atol=atol)
    fldj = make().forward_log_det_jacobian(x, event_ndims=event_ndims)
    fldj = np.broadcast_to(fldj, x.shape[:1])
    np.testing.assert_allclose(fldj, brute_force_log_det(make().forward, x), rtol=1e-4, atol=1e-4)
    ildj = make().inverse_log_det_jacobian(fresh(y), event_ndims=event_ndims)
    np.testing.assert_allclose(np.broadcast_to(ildj, fldj.shape), -fldj, rtol=1e-5, atol=1e-5)
    return fldj


# ------------------------------------------------------------------- layers
@pytest.mark.parametrize("size,parity", [(2, 0), (5, 1), (6, 0)])
def test_additive_coupling_is_volume_preserving(size, parity):
    layer = perturb_weights(AdditiveCoupling(size, parity, hidden_units=8, num_hidden=2), 0.3)
    x = np.random.default_rng(size).standard_normal((3, size)).astype("float32")
    fldj = check_bijector(layer.bijector, x)
    np.testing.assert_array_equal(fldj, 0.0)  # exactly
    y = layer.bijector().forward(x).numpy()
    fixed = np.arange(size) % 2 == parity
    np.testing.assert_array_equal(y[:, fixed], x[:, fixed])  # I1: every other coordinate
    assert np.all(y[:, ~fixed] != x[:, ~fixed]), "the coupling did nothing"
    # y_I2 - x_I2 = m(x_I1) depends on x_I1 only.
    x2 = x.copy()
    x2[:, ~fixed] += 1.0
    np.testing.assert_allclose(layer.bijector().forward(x2).numpy()[:, ~fixed] - x2[:, ~fixed],
                               y[:, ~fixed] - x[:, ~fixed], atol=1e-5)


def test_additive_coupling_starts_as_identity_and_checks_args():
    layer = AdditiveCoupling(4, 0, hidden_units=4, num_hidden=1)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(ValueError, match="event_size >= 2"):
        AdditiveCoupling(1, 0, 4, 1)
    with pytest.raises(ValueError, match="parity 0 or 1"):
        AdditiveCoupling(4, 2, 4, 1)


def test_diagonal_scaling_log_det_is_sum_of_log_scales():
    layer = perturb_weights(DiagonalScaling(3), 0.5)
    x = np.random.default_rng(1).standard_normal((3, 3)).astype("float32")
    fldj = check_bijector(layer.bijector, x)
    np.testing.assert_allclose(fldj, np.sum(layer.log_scale.numpy()), rtol=1e-6)
    np.testing.assert_allclose(layer(x), x * np.exp(layer.log_scale.numpy()), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3,), (4, 4, 3)])
def test_act_norm_data_init_normalises_the_batch(shape):
    layer = ActNorm(shape)
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((16,) + shape) * [0.5, 2.0, 7.0] + [3.0, -1.0, 10.0]).astype("float32")
    np.testing.assert_array_equal(layer(x), x)  # identity before the init
    assert not bool(layer.initialized.numpy())
    y = layer.bijector(data_init=True).forward(x).numpy()
    assert bool(layer.initialized.numpy())
    axes = tuple(range(len(shape)))
    np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axes), 1.0, atol=1e-5)
    np.testing.assert_allclose(layer(x), y, rtol=1e-5, atol=1e-5)  # the stored parameters
    np.testing.assert_allclose(layer.loc.numpy(), -x.mean(axes), rtol=1e-5)
    fldj = check_bijector(layer.bijector, x[:2])
    positions = np.prod(shape[:-1])
    np.testing.assert_allclose(fldj, positions * np.sum(layer.log_scale.numpy()), rtol=1e-5)


def test_invertible_conv_1x1_lu_form():
    layer = InvertibleConv1x1(3)
    w = layer.kernel().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-5)  # starts as a rotation
    perturb_weights(layer, 0.3)
    w = layer.kernel().numpy()
    diagonal = layer.sign.numpy() * np.exp(layer.log_scale.numpy())
    np.testing.assert_allclose(abs(np.linalg.det(w)), abs(np.prod(diagonal)), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.slogdet(w)[1], np.sum(layer.log_scale.numpy()), rtol=1e-5)
    # Only the strictly lower part of `lower` and strictly upper part of `upper` count.
    layer.lower.assign(layer.lower.numpy() + np.triu(np.ones((3, 3)), 0))
    layer.upper.assign(layer.upper.numpy() + np.tril(np.ones((3, 3)), 0))
    np.testing.assert_allclose(layer.kernel(), w, atol=1e-6)
    x = np.random.default_rng(3).standard_normal((2, 2, 2, 3)).astype("float32")
    np.testing.assert_allclose(layer(x), x @ w.T, atol=1e-5)  # y = W x at each pixel
    fldj = check_bijector(layer.bijector, x)
    np.testing.assert_allclose(fldj, 4 * np.sum(layer.log_scale.numpy()), rtol=1e-5)


@pytest.mark.parametrize("shape", [(3,), (4, 4, 4)])
def test_glow_affine_coupling(shape):
    layer = GlowAffineCoupling(shape, hidden_units=4)
    x = np.random.default_rng(4).standard_normal((3,) + shape).astype("float32")
    k = shape[-1] // 2
    # Zero-initialised network: t = 0, s = sigmoid(2) on x_b.
    y = layer(x).numpy()
    np.testing.assert_array_equal(y[..., :k], x[..., :k])
    np.testing.assert_allclose(y[..., k:], x[..., k:] / (1 + np.exp(-2.0)), rtol=1e-6)
    perturb_weights(layer, 0.3)
    check_bijector(layer.bijector, x)
    y = layer(x).numpy()
    np.testing.assert_array_equal(y[..., :k], x[..., :k])
    assert np.all(y[..., k:] != x[..., k:] / (1 + np.exp(-2.0)))


def test_learned_prior_split_is_the_conditional_gaussian():
    layer = perturb_weights(LearnedPriorSplit((2, 2, 4)), 0.3)
    x = np.random.default_rng(5).standard_normal((3, 2, 2, 4)).astype("float32")
    check_bijector(layer.bijector, x)
    eps = layer.bijector().forward(x).numpy()
    np.testing.assert_array_equal(eps[..., 2:], x[..., 2:])  # the kept half h
    # N(eps; 0, I) |d eps / d z| = N(z; mu(h), sigma(h)^2) on the factored half.
    mean, log_sigma = layer.mean_and_log_scale(x[..., 2:])
    expected = tf.reduce_sum(tfd.Normal(mean, tf.exp(log_sigma)).log_prob(x[..., :2]), [1, 2, 3])
    got = (tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(eps[..., :2]), [1, 2, 3])
           + layer.bijector().forward_log_det_jacobian(x, event_ndims=3))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # With the next scales on h: log-det of both, h transformed by `inner` only.
    inner = tfb.Chain([tfb.Scale(tf.constant([2.0, 0.5])), tfb.Shift(1.0)])
    check_bijector(lambda: layer.bijector(inner), x)
    y = layer.bijector(inner).forward(x).numpy()
    np.testing.assert_allclose(y[..., 2:], (x[..., 2:] + 1.0) * [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(y[..., :2], eps[..., :2], rtol=1e-6)
    with pytest.raises(ValueError, match="C even"):
        LearnedPriorSplit((2, 2, 3))


# ------------------------------------------------------------------- models
@pytest.mark.parametrize("key", MODELS, ids=IDS)
def test_round_trips(models, key):
    model = models[key]
    atol = 1e-5 if model.num_levels is None else 2e-3
    x = data_batch(model, 4, seed=1)
    np.testing.assert_allclose(model.decode(fresh(model.encode(x))), x, atol=atol)
    z = np.random.default_rng(2).standard_normal((4,) + model.data_shape).astype("float32")
    np.testing.assert_allclose(model.encode(fresh(model.decode(z))), z, atol=atol)


@pytest.mark.parametrize("key", MODELS, ids=IDS)
def test_whole_flow_log_det_matches_brute_force(models, key):
    model = models[key]
    n = 2 if model.num_levels is None else 1  # 64 backward passes per image
    x = data_batch(model, n, seed=3)
    rank = len(model.data_shape)
    expected = brute_force_log_det(model.bijector.inverse, x)  # preprocessing included
    got = model.bijector.inverse_log_det_jacobian(tf.constant(x), event_ndims=rank).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)
    # log p(x) = log N(z) + log|dz/dx|, and the forward log-det cancels the inverse one.
    z = model.encode(x).numpy().reshape(n, -1)
    log_normal = -0.5 * np.sum(z**2, 1) - 0.5 * z.shape[1] * np.log(2 * np.pi)
    np.testing.assert_allclose(model.log_prob(x), log_normal + expected, rtol=1e-4)
    forward = model.bijector.forward_log_det_jacobian(fresh(model.encode(x)), event_ndims=rank)
    np.testing.assert_allclose(forward, -got, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name,overrides", [("nice", {}), ("nice", dict(prior="logistic")),
                                            ("glow", {})])
def test_density_integrates_to_one_on_2d_grid(name, overrides):
    model = perturb_weights(tiny(name, "moons", **overrides), scale=0.1)
    edge = np.linspace(-10, 10, 401)
    xx, yy = np.meshgrid(edge, edge)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype("float32")
    density = np.exp(model.log_prob(grid).numpy())
    mass = density.sum() * (edge[1] - edge[0]) ** 2
    assert abs(mass - 1.0) < 0.02, mass


@pytest.mark.parametrize("dataset", ["moons", "digits"])
def test_nice_is_volume_preserving_until_the_scaling(models, dataset):
    model = models["nice", dataset]
    x = data_batch(model, 2, seed=4)
    if model.num_levels is not None:
        x = logit_bijector(model.num_levels).forward(x)
    v = tf.reshape(tf.constant(x), [2, -1])
    couplings = model.coupling_bijector()
    np.testing.assert_array_equal(
        np.broadcast_to(couplings.forward_log_det_jacobian(v, event_ndims=1), [2]), 0.0)
    np.testing.assert_allclose(brute_force_log_det(couplings.forward, v[:1]), 0.0, atol=1e-4)
    # The whole flow's log-det (without preprocessing) is sum(s) of the scaling; the
    # whole flow with preprocessing is checked against slogdet above.
    s = model.scaling.log_scale.numpy()
    assert np.all(s != 0)
    fldj = model.normalizing_bijector().forward_log_det_jacobian(
        tf.constant(x), event_ndims=len(model.data_shape))
    np.testing.assert_allclose(fldj, np.sum(s), rtol=1e-5)


def test_nice_logistic_prior_samples_and_density():
    model = tiny("nice", "moons", prior="logistic")  # starts as the identity map
    x = model.sample(4000, seed=0).numpy()
    assert abs(x.std() - np.pi / np.sqrt(3)) < 0.1  # the standard logistic's std
    np.testing.assert_array_equal(x, model.sample(4000, seed=0).numpy())
    np.testing.assert_allclose(model.log_prob(x[:5]),
                               tfd.Logistic(0.0, 1.0).log_prob(x[:5]).numpy().sum(1), rtol=1e-5)
    assert model.sample(4000, seed=0, temperature=0.5).numpy().std() < 0.6 * x.std()
    with pytest.raises(ValueError, match="prior in"):
        zoo.get("nice", dataset="moons", prior="laplace")


def test_glow_image_structure_and_errors(models):
    model = models["glow", "digits"]
    # digits: scale 0 on (4, 4, 4) then the split, scale 1 on (2, 2, 8).
    assert [a.event_shape for a in model.act_norms] == [(4, 4, 4), (2, 2, 8)]
    assert [s.event_shape for s in model.splits] == [(4, 4, 4)]
    a = model.sample(64, seed=1, temperature=1.0).numpy()
    b = model.sample(64, seed=1, temperature=0.3).numpy()
    assert b.std() < a.std()
    # Each network runs once per pass: 3 convolutions per coupling, 1 per split prior.
    graph = tf.function(model.log_prob).get_concrete_function(
        tf.TensorSpec((None, 8, 8, 1))).graph
    convs = sum(op.type == "Conv2D" for op in graph.get_operations())
    assert convs == 3 * len(model.couplings) + len(model.splits), convs
    with pytest.raises(ValueError, match="divisible by 8"):
        zoo.get("glow", dataset="digits", num_scales=3, data_shape=(12, 12, 1))
    with pytest.raises(ValueError, match="expected shape"):
        model.log_prob(np.zeros((2, 8, 8, 3), "float32"))


# ------------------------------------------------------- ActNorm's init
def act_norm_batch(seed, loc, scale, n=32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 2)) * scale + loc).astype("float32")


def test_act_norm_initialises_once_inside_a_jit_compiled_train_step():
    model = tiny("glow", "moons")
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)  # frozen weights
    first = act_norm_batch(0, [4.0, -2.0], [3.0, 0.5])
    history = model.fit(first, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert bool(model.initialized)
    norm = model.act_norms[0]
    np.testing.assert_allclose(norm.loc.numpy(), -first.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.log_scale.numpy(), -np.log(first.std(0)), rtol=1e-5)
    # The step's loss was computed after the init, in the same step.
    np.testing.assert_allclose(history["loss"][0], -np.mean(model.log_prob(first)), rtol=1e-4)
    before = [(a.loc.numpy().copy(), a.log_scale.numpy().copy()) for a in model.act_norms]
    second = act_norm_batch(1, [-5.0, 7.0], [0.1, 9.0])
    model.fit(second, batch_size=32, epochs=1, verbose=0)
    for a, (loc, log_scale) in zip(model.act_norms, before):
        np.testing.assert_array_equal(a.loc.numpy(), loc)  # not initialised again
        np.testing.assert_array_equal(a.log_scale.numpy(), log_scale)


def test_initialize_is_public_and_runs_once():
    model = tiny("glow", "digits")
    x = np.random.default_rng(0).integers(0, 17, (32, 8, 8, 1)).astype("float32")
    model.compute_losses(tf.constant(x), training=False)  # evaluation does not initialise
    assert not bool(model.initialized)
    assert bool(model.initialize(x))
    locs = [a.loc.numpy().copy() for a in model.act_norms]
    assert all(np.any(v != 0) for v in locs)
    assert not bool(model.initialize(x[:8] * 0.5))
    for a, v in zip(model.act_norms, locs):
        np.testing.assert_array_equal(a.loc.numpy(), v)
    with pytest.raises(ValueError, match="expected raw pixel values"):
        tiny("glow", "digits").initialize(x + 100)


def test_act_norm_init_in_train_step_survives_keras_save_and_reload(tmp_path):
    model = tiny("glow", "moons")
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    first = act_norm_batch(0, [4.0, -2.0], [3.0, 0.5])
    model.fit(first, batch_size=32, verbose=0)
    np.testing.assert_allclose(model.act_norms[0].loc.numpy(), -first.mean(0), rtol=1e-5)
    path = str(tmp_path / "glow.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert bool(reloaded.initialized)
    for a, b in zip(model.act_norms, reloaded.act_norms):
        assert bool(b.initialized.numpy())
        np.testing.assert_array_equal(b.loc.numpy(), a.loc.numpy())
    other = act_norm_batch(1, [-5.0, 7.0], [0.1, 9.0])
    np.testing.assert_allclose(reloaded.log_prob(other), model.log_prob(other), rtol=1e-6)
    reloaded.fit(other, batch_size=32, verbose=0)  # the optimizer came back at lr 0
    for a, b in zip(model.act_norms, reloaded.act_norms):
        np.testing.assert_array_equal(b.loc.numpy(), a.loc.numpy())  # not re-initialised


MIRRORED_INIT = TWO_REPLICAS + r"""
import zoo.flows.glow
batch = np.array(json.loads(sys.argv[1]), "float32")
with strategy.scope():
    model = zoo.get("glow", dataset="moons", hidden_units=8, num_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(len(batch)), verbose=0)
norm = model.act_norms[0]
print(json.dumps({
    "loss": history.history["loss"][-1],
    "log_prob": model.log_prob(batch).numpy().tolist(),
    "loc": [v.numpy().tolist() for v in norm.loc.value.values],
    "initialized": [bool(v.numpy()) for v in norm.initialized.value.values],
}))
"""


def test_act_norm_init_under_mirrored_strategy_uses_the_global_batch():
    # Each replica gets 8 of the 16 points, with very different means.
    batch = np.concatenate([act_norm_batch(0, [5.0, 1.0], 1.0, 8),
                            act_norm_batch(1, [-5.0, 3.0], 1.0, 8)])
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_INIT, json.dumps(batch.tolist())],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["initialized"] == [True, True]
    for loc in out["loc"]:  # both replicas' copies hold the global statistics
        np.testing.assert_allclose(loc, -batch.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["loss"], -np.mean(out["log_prob"]), rtol=1e-4)


# ------------------------------------------------------------------ fitting
@pytest.mark.parametrize("name,overrides", [
    ("nice", dict(hidden_units=32, num_hidden=2)),
    pytest.param("glow", dict(hidden_units=8, num_steps=1), marks=pytest.mark.slow),
])
def test_short_fit_on_digits_lowers_the_nll(name, overrides):
    from sklearn.datasets import load_digits

    x = load_digits().images[..., None].astype("float32")  # levels 0..16
    keras.utils.set_random_seed(0)
    model = zoo.get(name, dataset="digits", **overrides)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    test = x[:256] + np.random.default_rng(0).uniform(size=x[:256].shape).astype("float32")
    before = model.bits_per_dim(test).numpy().mean()
    ds = tf.data.Dataset.from_tensor_slices(x[256:]).shuffle(2048, seed=0).batch(64).repeat()
    model.fit(ds, steps_per_epoch=100, epochs=1, verbose=0)
    after = model.bits_per_dim(test).numpy().mean()
    assert np.isfinite(after) and after < before - 0.3, (before, after)


@pytest.mark.parametrize("key", MODELS, ids=IDS)
def test_log_prob_follows_weight_updates_on_the_same_tensor(models, key):
    """TFP caches bijector results per tensor: a weight update must not be hidden."""
    model = models[key]
    x = tf.constant(data_batch(model, 3, seed=6))
    before = model.log_prob(x).numpy()
    weights = [w.numpy() for w in model.trainable_weights]
    try:
        for w in model.trainable_weights:
            w.assign_add(tf.fill(w.shape, 0.05))
        after = model.log_prob(x).numpy()
        fresh_after = model.log_prob(tf.identity(x)).numpy()
        z = model.decode(x if model.num_levels is None else model.encode(x))
    finally:
        for w, value in zip(model.trainable_weights, weights):
            w.assign(value)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, fresh_after, rtol=1e-6)
    assert np.all(np.isfinite(z))


def test_glow_log_prob_follows_the_act_norm_init_on_the_same_tensor():
    model = tiny("glow", "moons")
    x = tf.constant(act_norm_batch(0, [4.0, -2.0], [3.0, 0.5]))
    before = model.log_prob(x).numpy()
    model.initialize(x)
    after = model.log_prob(x).numpy()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, model.log_prob(tf.identity(x)).numpy(), rtol=1e-6)
