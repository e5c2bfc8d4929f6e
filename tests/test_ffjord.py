"""FFJORD: round trips, log|det J| of the discretised flow map against the autodiff
Jacobian, Hutchinson's estimator against the exact trace, normalisation, fit, gradients.

Tolerances. The model is the fixed-step solver's map Phi_h (RK4, h = T / num_steps),
and its log-det is RK4 on the augmented ODE (state, log-det). Both are O(h^4) close
to the true flow's, so they agree with each other (and the inverse, RK4 backwards
in time, with the exact inverse of Phi_h) to O(h^4) times the size of f's
derivatives: with these small, perturbed networks and 8 steps that is below 1e-4,
while Euler (O(h)) with 2 steps misses by far more (checked, so the tolerances are
not vacuous). Round trips go through numpy: TFP caches a bijector's outputs by
input tensor.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from helpers import brute_force_log_det, perturb_weights
from zoo.flows.ffjord import FFJORD

ODE_ATOL = 1e-4  # RK4, 8 steps, on these dynamics (see the module docstring)
TINY = dict(hidden_units=16, num_hidden=2)


def build(seed=0, scale=0.3, dataset="moons", **overrides):
    keras.utils.set_random_seed(seed)
    model = zoo.registry.entry("ffjord").cls(
        **{**zoo.registry.entry("ffjord").config_for(dataset), **TINY, **overrides})
    return perturb_weights(model, scale, seed)


def points(n=4, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 2)).astype("float32")


def test_round_trips_to_solver_tolerance():
    model = build()
    x = points()
    z = model.encode(x).numpy()
    assert np.max(np.abs(z - x)) > 0.3, "the flow (almost) does nothing"
    np.testing.assert_allclose(model.decode(z), x, atol=ODE_ATOL)
    z0 = points(seed=2)
    np.testing.assert_allclose(model.encode(model.decode(z0).numpy()), z0, atol=ODE_ATOL)
    # A coarse first-order solver is not invertible to that tolerance.
    coarse = build(solver="euler", num_steps=2)
    gap = np.max(np.abs(coarse.decode(coarse.encode(x).numpy()).numpy() - x))
    assert gap > 100 * ODE_ATOL, gap


@pytest.mark.parametrize("solver,num_steps,close", [("rk4", 8, True), ("euler", 2, False)])
def test_log_det_matches_discrete_flow_map(solver, num_steps, close):
    """RK4 on (state, log-det) gives log|det dPhi_h/dz| of its own discrete map to
    O(h^4); with Euler the integrated trace is only first order (so it must miss)."""
    model = build(solver=solver, num_steps=num_steps)
    x = points(3)
    bij = model.bijector
    x_tensor = tf.constant(x)
    z = bij.inverse(x_tensor).numpy()
    ildj = bij.inverse_log_det_jacobian(x_tensor, event_ndims=1).numpy()
    fldj = model.bijector.forward_log_det_jacobian(z, event_ndims=1).numpy()
    assert np.max(np.abs(ildj)) > 0.1, "a volume-preserving flow tests nothing here"
    brute_inv = brute_force_log_det(bij.inverse, x)
    brute_fwd = brute_force_log_det(model.bijector.forward, z)
    if close:
        np.testing.assert_allclose(ildj, brute_inv, atol=ODE_ATOL)
        np.testing.assert_allclose(fldj, brute_fwd, atol=ODE_ATOL)
        np.testing.assert_allclose(fldj, -ildj, atol=ODE_ATOL)
        log_normal = -0.5 * np.sum(z**2, 1) - np.log(2 * np.pi)
        np.testing.assert_allclose(model.log_prob(x), log_normal + ildj, rtol=1e-5, atol=1e-4)
    else:
        assert np.max(np.abs(ildj - brute_inv)) > 10 * ODE_ATOL


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_averages_to_exact_trace(noise):
    """Each row draws its own probe (held along its solve): the mean over many rows
    of the same point is the exact log-det, within 5 standard errors."""
    model = build(noise=noise, num_steps=4)
    x = points(3)
    exact = model.flow_bijector("exact").inverse_log_det_jacobian(x, event_ndims=1).numpy()
    reps = 4000
    tiled = tf.constant(np.tile(x, (reps, 1)))
    bij = model.flow_bijector("hutchinson")
    estimates = bij.inverse_log_det_jacobian(tiled, event_ndims=1).numpy().reshape(reps, 3)
    np.testing.assert_allclose(bij.inverse(tiled).numpy()[:3],
                               model.encode(x).numpy(), atol=1e-5)  # same path
    std = estimates.std(0)
    assert np.all(std > 1e-2), "the estimate is not stochastic"
    np.testing.assert_array_less(np.abs(estimates.mean(0) - exact), 5 * std / np.sqrt(reps))
    if noise == "rademacher":  # D = 2: exact +- |integral of the off-diagonal|
        np.testing.assert_allclose(np.abs(estimates - exact), np.broadcast_to(std, estimates.shape),
                                   rtol=2e-2, atol=1e-4)


def test_density_integrates_to_one_on_2d_grid():
    model = build(dataset="8gaussians")
    edge = np.linspace(-7, 7, 141)
    xx, yy = np.meshgrid(edge, edge)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype("float32")
    density = np.exp(model.log_prob(grid).numpy())
    assert density.max() > 0.25, "looks like the base N(0, I) (peak 0.16)"
    mass = density.sum() * (edge[1] - edge[0]) ** 2
    assert abs(mass - 1.0) < 0.01, mass


@pytest.mark.parametrize("estimator", ["hutchinson", "exact"])
def test_gradient_reaches_every_weight(estimator):
    model = build(trace_estimator=estimator)
    x = tf.constant(points(8))
    with tf.GradientTape() as tape:
        loss = model.compute_losses(x, training=True)["loss"]
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == 2 * (TINY["num_hidden"] + 1)
    for v, g in zip(model.trainable_weights, grads):
        assert g is not None and np.any(g.numpy() != 0), v.path


def test_training_loss_uses_estimator_and_evaluation_is_exact():
    model = build(trace_estimator="hutchinson", num_steps=2)
    x = tf.constant(points(64))
    exact = -np.mean(model.log_prob(x).numpy())
    evaluated = [float(model.compute_losses(x)["loss"]) for _ in range(2)]
    trained = [float(model.compute_losses(x, training=True)["loss"]) for _ in range(2)]
    np.testing.assert_allclose(evaluated, exact, rtol=1e-6)
    assert trained[0] != trained[1] and abs(trained[0] - exact) < 1.0


def test_no_stale_cached_results():
    model = build()
    x = tf.constant(points(3))
    before = model.log_prob(x).numpy()
    for v in model.trainable_weights:
        v.assign(v + 0.1)
    after = model.log_prob(x).numpy()
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, model.log_prob(tf.identity(x)).numpy(), rtol=1e-6)


def test_fit_lowers_nll_on_moons():
    from sklearn.datasets import make_moons

    x = (make_moons(2048, noise=0.1, random_state=0)[0] * 2 + [-1, -0.2]).astype("float32")
    keras.utils.set_random_seed(0)
    model = zoo.get("ffjord", dataset="moons", hidden_units=32, num_hidden=2, num_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = -np.mean(model.log_prob(x[:1024]))
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(2048, seed=0).batch(256).repeat()
    model.fit(ds, steps_per_epoch=40, epochs=1, verbose=0)
    after = -np.mean(model.log_prob(x[:1024]))
    assert after < before - 0.3, (before, after)


def test_presets_config_and_errors():
    entry = zoo.registry.entry("ffjord")
    assert set(entry.presets) == {"moons", "8gaussians", "checkerboard", "rings", "pinwheel",
                                  "swissroll", "circles"}
    assert entry.training_for("moons")["batch_size"] == 256
    model = FFJORD(hidden_units=8, num_hidden=1, solver="midpoint", activation="softplus")
    assert FFJORD.from_config(model.get_config()).get_config() == model.get_config()
    np.testing.assert_allclose(model.log_prob(points()),  # f starts at 0: the identity
                               -0.5 * np.sum(points() ** 2, 1) - np.log(2 * np.pi), rtol=1e-6)
    for kwargs, match in [(dict(data_shape=(8, 8, 1)), r"expected data_shape \(D,\)"),
                          (dict(solver="dopri5"), "solver must be one of"),
                          (dict(trace_estimator="skilling"), "trace_estimator must be"),
                          (dict(noise="uniform"), "noise must be"),
                          (dict(num_steps=0), "num_steps >= 1"),
                          (dict(integration_time=0.0), "integration_time > 0"),
                          (dict(activation="relu"), "activation must be")]:
        with pytest.raises(ValueError, match=match):
            FFJORD(**kwargs)
