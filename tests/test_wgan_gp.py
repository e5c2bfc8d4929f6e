"""WGAN-GP: the gradient penalty by hand, Algorithm 1's schedule, two optimizers."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.gan.wgan_gp import WGANGP

from helpers import TWO_REPLICAS

TINY_2D = dict(hidden_units=16, num_hidden=2)
TINY_IMAGE = dict(filters=4, latent_dim=8)
PRESETS = {"moons": TINY_2D, "digits": TINY_IMAGE}


def build(dataset, **overrides):
    return zoo.get("wgan_gp", dataset=dataset, **{**PRESETS[dataset], **overrides})


def raw_batch(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + model.data_shape
    if model.num_levels is None:
        return rng.standard_normal(shape).astype("float32")
    return rng.integers(0, model.num_levels, shape).astype("float32")


def snapshot(weights):
    return [w.numpy().copy() for w in weights]


def changed(before, weights):
    return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, weights))


def eight_gaussians(n, seed=0):
    """8 modes on the circle of radius 2, std 0.1 (the WGAN-GP toy set, rescaled)."""
    rng = np.random.default_rng(seed)
    angles = np.arange(8) * np.pi / 4
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    x = centers[rng.integers(0, 8, n)] + 0.1 * rng.standard_normal((n, 2))
    return x.astype("float32"), centers


# ----------------------------------------------------------- gradient penalty
def linear_critic_model(w):
    """A 2-D model whose critic is D(x) = w.x (an MLP critic without hidden layers)."""
    model = WGANGP(data_shape=(2,), latent_dim=2, hidden_units=4, num_hidden=0)
    (kernel,) = model.critic_network.trainable_weights
    kernel.assign(np.array(w, "float32").reshape(2, 1))
    return model


def test_the_model_gives_its_critics_their_own_learning_rate():
    """What ``zoo train --lr/--critic-lr`` compiles with is the model's to say."""
    model = build("moons")
    optimizers = model.training_optimizers(1e-4, 4e-4)
    assert set(optimizers) == {"optimizer", "critic_optimizer"}
    np.testing.assert_allclose(float(optimizers["optimizer"].learning_rate.numpy()), 1e-4)
    np.testing.assert_allclose(float(optimizers["critic_optimizer"].learning_rate.numpy()),
                               4e-4)
    assert set(model.training_optimizers(1e-4)) == {"optimizer"}  # the critic: a copy
    aae = zoo.get("aae", dataset="digits", latent_dim=2, filters=4, hidden_units=8)
    assert set(aae.training_optimizers(1e-3, 1e-4)) == {"optimizer", "discriminator_optimizer"}
    # No critic to give a rate to: the critic-free GMMN, a flow.
    for other in (zoo.get("gmmn", dataset="moons", hidden_units=8, num_hidden=1),
                  zoo.get("realnvp", dataset="moons", hidden_units=8, num_couplings=2)):
        assert set(other.training_optimizers(1e-3)) == {"optimizer"}
        with pytest.raises(ValueError, match="trains no critic"):
            other.training_optimizers(1e-3, 1e-4)


def test_gradient_penalty_of_a_linear_critic_by_hand():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((16, 2)).astype("float32")
    fake = rng.standard_normal((16, 2)).astype("float32") + 3.0
    w = np.array([3.0, 4.0])  # ||grad D|| = ||w|| = 5 everywhere
    model = linear_critic_model(w)
    penalty = model.gradient_penalty(tf.constant(real), tf.constant(fake)).numpy()
    np.testing.assert_allclose(penalty, (5.0 - 1.0) ** 2, rtol=1e-5)

    terms = model.critic_terms(tf.constant(real), tf.constant(fake))
    wasserstein = np.mean(real @ w) - np.mean(fake @ w)
    np.testing.assert_allclose(terms["wasserstein"], wasserstein, rtol=1e-5)
    np.testing.assert_allclose(terms["generator_loss"], -np.mean(fake @ w), rtol=1e-5)
    np.testing.assert_allclose(terms["critic_loss"], -wasserstein + 10.0 * 16.0, rtol=1e-5)
    np.testing.assert_allclose(model.critic_loss(tf.constant(real), tf.constant(fake)),
                               -wasserstein + 10.0 * 16.0, rtol=1e-5)

    unit = linear_critic_model([0.6, 0.8])  # 1-Lipschitz, unit-norm gradient everywhere
    np.testing.assert_allclose(unit.gradient_penalty(real, fake), 0.0, atol=1e-6)
    half = linear_critic_model([0.3, 0.4])  # a gradient too small is penalised too
    np.testing.assert_allclose(half.gradient_penalty(real, fake), 0.25, rtol=1e-5)


def test_gradient_penalty_on_images_is_per_example_norm():
    model = build("digits")
    for v in model.critic_network.trainable_weights:  # a constant critic: grad = 0
        v.assign(tf.zeros_like(v))
    real = model.to_model_space(tf.constant(raw_batch(model, 4)))
    fake = model.generator_network(model.latent_noise(4))
    np.testing.assert_allclose(model.gradient_penalty(real, fake), 1.0, rtol=1e-6)
    # A random critic: the penalty is the mean over examples of
    # (||grad||_2 - 1)^2, each gradient taken alone on its own interpolate.
    model = build("digits")
    eps = np.array([0.0, 0.25, 0.5, 1.0], "float32")
    expected = []
    for i in range(4):
        x_hat = eps[i] * real[i:i + 1] + (1 - eps[i]) * fake[i:i + 1]
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            score = model.scores(x_hat)
        expected.append((np.linalg.norm(tape.gradient(score, x_hat).numpy()) - 1.0) ** 2)
    got = model.gradient_penalty(real, fake, eps=eps).numpy()
    np.testing.assert_allclose(got, np.mean(expected), rtol=1e-5)
    assert len(set(np.round(expected, 6))) == 4  # distinct terms: the mean is a real check


# ----------------------------------------------------- Algorithm 1's schedule
@pytest.mark.parametrize("dataset", ["moons", "digits"])
def test_generator_updates_once_every_n_critic_steps(dataset):
    model = build(dataset, n_critic=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = raw_batch(model, 8)
    generator, critic = (model.generator_network.trainable_weights,
                         model.critic_network.trainable_weights)
    generator_moved = []
    for step in range(1, 8):
        g0, c0 = snapshot(generator), snapshot(critic)
        logs = model.train_on_batch(x, return_dict=True)
        generator_moved.append(changed(g0, generator))
        assert changed(c0, critic), f"the critic did not change at step {step}"
        assert set(logs) == set(model.loss_names)
    assert generator_moved == [False, False, True, False, False, True, False]
    assert int(model.critic_optimizer.iterations) == 7
    assert int(model.optimizer.iterations) == 2


@pytest.mark.parametrize("dataset", ["moons", pytest.param("digits", marks=pytest.mark.slow)])
def test_jit_compiled_fit_steps(dataset):
    model = build(dataset, n_critic=2)
    model.compile(jit_compile=True)
    g0 = snapshot(model.generator_network.trainable_weights)
    ds = tf.data.Dataset.from_tensor_slices(raw_batch(model, 40)).batch(8)
    history = model.fit(ds, epochs=1, verbose=0)
    assert set(history.history) == set(model.loss_names)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(model.critic_optimizer.iterations) == 5
    assert int(model.optimizer.iterations) == 2
    assert changed(g0, model.generator_network.trainable_weights)
    result = model.evaluate(ds, verbose=0, return_dict=True)
    assert set(result) == set(model.loss_names)


@pytest.mark.parametrize("dataset", ["moons", "digits"])
def test_gradients_reach_every_weight_from_its_own_loss(dataset):
    model = build(dataset)
    x = tf.constant(raw_batch(model, 8))
    critic = model.critic_network.trainable_weights
    with tf.GradientTape() as tape:
        loss = model.compute_losses(x, training=True)["critic_loss"]
    for v, g in zip(critic, tape.gradient(loss, critic)):
        assert g is not None and np.any(g.numpy() != 0), f"critic_loss: no gradient for {v.path}"
    generator = model.generator_network.trainable_weights
    with tf.GradientTape() as tape:
        loss = model.generator_loss(model.generator_network(model.latent_noise(8),
                                                            training=True))
    for v, g in zip(generator, tape.gradient(loss, generator)):
        assert g is not None and np.any(g.numpy() != 0), f"generator_loss: no gradient for {v.path}"
    assert len(critic) + len(generator) == len(model.trainable_weights)


# -------------------------------------------------------------- public API
@pytest.mark.parametrize("dataset", ["moons", "digits"])
def test_shapes_ranges_and_seeds(dataset):
    model = build(dataset)
    z = np.random.default_rng(1).standard_normal((3, model.latent_dim)).astype("float32")
    out = model.generate(z).numpy()
    assert out.shape == (3,) + model.data_shape
    a = model.sample(5, seed=7).numpy()
    assert a.shape == (5,) + model.data_shape
    np.testing.assert_array_equal(a, model.sample(5, seed=7).numpy())
    assert not np.array_equal(a, model.sample(5, seed=8).numpy())
    assert model.critic(raw_batch(model, 4)).shape == (4,)
    if model.num_levels is not None:
        assert out.min() >= 0 and out.max() <= model.num_levels - 1
        # generate and critic use inverse maps: a generated batch fed back to the
        # critic is scored as the generator's output in model space.
        direct = model.scores(model.generator_network(z)).numpy()
        np.testing.assert_allclose(model.critic(out), direct, rtol=1e-4, atol=1e-5)
    # The serving signatures trace with their specs; the first is "generate".
    signatures = model.serving_signatures()
    assert list(signatures) == ["generate", "sample", "critic"]
    for name, (fn, specs) in signatures.items():
        concrete = tf.function(fn).get_concrete_function(*specs)
        key = {"generate": "samples", "sample": "samples", "critic": "score"}[name]
        assert key in concrete.structured_outputs
    fn, specs = signatures["sample"]
    np.testing.assert_array_equal(
        tf.function(fn)(tf.constant(5), tf.constant(7))["samples"].numpy(), a)


def test_no_log_prob_and_config_round_trip():
    model = build("digits", n_critic=3, gp_weight=5.0)
    assert not hasattr(model, "log_prob")
    config = model.get_config()
    json.dumps(config)
    for key in ("data_shape", "num_levels", "latent_dim", "filters", "hidden_units",
                "n_critic", "gp_weight"):
        assert key in config
    clone = WGANGP.from_config(config)
    assert clone.get_config() == config and clone.count_params() == model.count_params()


def test_save_load_restores_outputs_and_both_optimizers(tmp_path):
    model = build("digits", n_critic=2)
    model.compile()
    ds = tf.data.Dataset.from_tensor_slices(raw_batch(model, 24)).batch(8)
    model.fit(ds, epochs=1, verbose=0)  # 3 critic steps, 1 generator step
    assert int(model.critic_optimizer.iterations) == 3 and int(model.optimizer.iterations) == 1
    path = str(tmp_path / "wgan_gp.keras")
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = keras.saving.load_model(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "Skipping variable loading" not in messages and "was not called" not in messages
    assert type(reloaded) is WGANGP
    x = raw_batch(model, 4, seed=3)
    z = np.random.default_rng(4).standard_normal((4, model.latent_dim)).astype("float32")
    np.testing.assert_allclose(reloaded.generate(z), model.generate(z), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reloaded.sample(4, seed=2), model.sample(4, seed=2), atol=1e-6)
    np.testing.assert_allclose(reloaded.critic(x), model.critic(x), rtol=1e-6, atol=1e-6)
    for attr in ("optimizer", "critic_optimizer"):
        saved, loaded = getattr(model, attr), getattr(reloaded, attr)
        assert type(loaded) is type(saved) and loaded.get_config() == saved.get_config()
        assert int(loaded.iterations) == int(saved.iterations), attr
        assert len(loaded.variables) == len(saved.variables) > 2, attr
        for a, b in zip(saved.variables, loaded.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{attr}: {a.path}")
        slots = [v for v in loaded.variables if "momentum" in v.path or "velocity" in v.path]
        assert slots and any(np.any(v.numpy() != 0) for v in slots), attr
    # Training goes on from the restored state: the schedule continues (step 4 is
    # the generator's turn with n_critic=2).
    reloaded.fit(ds.take(1), verbose=0)
    assert int(reloaded.critic_optimizer.iterations) == 4 and int(reloaded.optimizer.iterations) == 2


def test_compile_defaults_and_separate_optimizers():
    model = build("moons")
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    config = model.optimizer.get_config()
    assert (config["beta_1"], config["beta_2"]) == (0.0, 0.9)
    assert np.isclose(config["learning_rate"], 1e-4)
    assert model.critic_optimizer is not model.optimizer
    critic_config = model.critic_optimizer.get_config()
    assert {k: v for k, v in critic_config.items() if k != "name"} == \
        {k: v for k, v in config.items() if k != "name"}
    model.compile(optimizer=keras.optimizers.SGD(0.1), critic_optimizer="rmsprop")
    assert isinstance(model.critic_optimizer, keras.optimizers.RMSprop)
    opt = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="its own optimizer"):
        model.compile(optimizer=opt, critic_optimizer=opt)


def test_bad_inputs_give_clear_errors():
    model = build("digits")
    good = raw_batch(model, 2)
    with pytest.raises(ValueError, match=r"expected shape \(batch,\)"):
        model.critic(np.zeros((2, 9, 8, 1), "float32"))
    with pytest.raises(ValueError, match=r"expected shape \(batch,\)"):
        model.critic(good[0])
    with pytest.raises(TypeError, match="expected a float"):
        model.critic(np.full(good.shape, "a"))
    nan = good.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="expected finite values"):
        model.critic(nan)
    with pytest.raises(ValueError, match="expected raw pixel values"):
        model.critic(good + 100)
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 8\)"):
        model.generate(np.zeros((2, 7), "float32"))
    with pytest.raises(ValueError, match=r"expected z of shape \(batch, 8\)"):
        model.generate(np.zeros((8,), "float32"))
    with pytest.raises(TypeError, match="expected a float tensor z"):
        model.generate(np.full((2, 8), "a"))
    with pytest.raises(ValueError, match="expected finite values in z"):
        model.generate(np.full((2, 8), np.inf, "float32"))
    with pytest.raises(ValueError, match="n >= 1"):
        model.sample(0)
    with pytest.raises(ValueError, match="divisible by 4"):
        zoo.get("wgan_gp", dataset="digits", data_shape=(6, 6, 1))
    with pytest.raises(ValueError, match="need num_levels"):
        WGANGP(data_shape=(8, 8, 1), num_levels=None)
    with pytest.raises(ValueError, match="n_critic >= 1"):
        build("moons", n_critic=0)


# --------------------------------------------------------------- it learns
def test_300_steps_on_8_gaussians_move_samples_toward_the_data():
    # With these settings the radius gap shrank to <= 0.67 of its start on 25 of
    # 25 seeds, while a generator minimising +E[D(G(z))] kept >= 0.97 on 10 of 10.
    x, _ = eight_gaussians(4096)
    keras.utils.set_random_seed(0)
    model = zoo.get("wgan_gp", dataset="8gaussians")  # MLPs 3 x 128
    model.compile(optimizer=WGANGP.default_optimizer(5e-4))
    data_radius = np.linalg.norm(x, axis=1).mean()

    def radius_gap():
        samples = model.sample(2000, seed=0).numpy()
        return abs(np.linalg.norm(samples, axis=1).mean() - data_radius)

    before = radius_gap()
    assert before > 1.0  # the untrained generator sits near the origin
    held_out = tf.data.Dataset.from_tensor_slices(x[:2048]).batch(512)
    penalty_before = model.evaluate(held_out, verbose=0, return_dict=True)["gradient_penalty"]
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(4096, seed=0).batch(256).repeat()
    model.fit(ds, steps_per_epoch=300, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 60
    after = radius_gap()
    assert after < 0.75 * before, (before, after)
    # The penalty pulls the critic's gradient norms to 1 (about 0.8 -> 0.02-0.08
    # on 10 seeds).
    penalty_after = model.evaluate(held_out, verbose=0, return_dict=True)["gradient_penalty"]
    assert penalty_after < 0.25 * penalty_before, (penalty_before, penalty_after)


# ------------------------------------------------------------- distributed
MIRRORED = TWO_REPLICAS + r"""
with strategy.scope():
    model = zoo.get("wgan_gp", dataset="digits", filters=4, latent_dim=8, n_critic=2)
    model.compile()
x = np.random.default_rng(0).integers(0, 17, (40, 8, 8, 1)).astype("float32")
history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
weights = (model.generator_network.trainable_weights + model.critic_network.trainable_weights
           + model.optimizer.variables + model.critic_optimizer.variables)
in_sync = all(np.array_equal(*[t.numpy() for t in w.value.values]) for w in weights)
print(json.dumps({"logs": {k: v[-1] for k, v in history.history.items()}, "in_sync": in_sync,
                  "iterations": [int(model.optimizer.iterations.numpy()),
                                 int(model.critic_optimizer.iterations.numpy())]}))
"""


def test_mirrored_strategy_keeps_schedule_and_replicas_in_sync():
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["logs"]) == set(WGANGP.loss_names)
    assert all(np.isfinite(v) for v in out["logs"].values())
    assert out["iterations"] == [2, 5]
    assert out["in_sync"]
