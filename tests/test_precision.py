"""Mixed precision (zoo.precision): the networks compute in float16/bfloat16, the
model's own arithmetic, its losses and its exports stay float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo_cli
from helpers import training_batch
from test_contract import PRIMARY, build, perturb
from zoo import precision, training
from zoo.training import RunError

# |log p_mixed - log p_float32| <= TOLERANCE * (1 + |log p_float32|) per example, for
# the same weights. bfloat16 keeps 8 significant bits (relative steps of 2^-8 =
# 0.4%), float16 11; a network's output carries a few such roundings into a
# flow's log-det. Measured here: at most 1.6e-3 (bfloat16) and 1.5e-4 (float16)
# for the RealNVP below, 8.6e-4 over the families' tiny cases (NSF's).
TOLERANCE = {"mixed_bfloat16": 0.005, "mixed_float16": 0.0005}
# Kept in the default run: one flow of each kind of network, the VAE, a GAN with
# a critic, the conditional one and the VAE-GAN; the rest run in the slow suite.
DEFAULT = {"realnvp", "maf", "nsf", "vae", "wgan_gp", "sngan", "vae_gan"}


def pair(name, dataset, overrides, policy):
    """The case's model at float32 with perturbed weights, and a copy under `policy`."""
    keras.utils.set_random_seed(0)
    reference = build(name, dataset, overrides)
    perturb(reference)
    mixed = zoo.get(name, dataset=dataset, precision=policy, **overrides)
    mixed.set_weights(reference.get_weights())
    return reference, mixed


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c[0], marks=() if c[0] in DEFAULT else pytest.mark.slow)
    for c in PRIMARY if c[0] not in ("planar", "radial")])
def test_every_family_trains_under_bfloat16_with_float32_outputs(case):
    reference, mixed = pair(*case[:3], "mixed_bfloat16")
    nets = precision.networks(mixed)
    assert nets and all(n.dtype_policy.name == "mixed_bfloat16" for n in nets)
    assert mixed.dtype_policy.name == "float32"  # the model's own arithmetic
    batch = training_batch(mixed, 8)
    x = tf.constant(batch[0] if isinstance(batch, tuple) else batch)
    if reference.likelihood != "none":
        want, got = reference.nll(x, seed=1).numpy(), mixed.nll(x, seed=1)
        assert got.dtype == tf.float32
        bound = TOLERANCE["mixed_bfloat16"] * (1 + np.abs(want))
        assert np.all(np.abs(got.numpy() - want) <= bound), np.max(np.abs(got.numpy() - want))
    assert mixed.sample(3, seed=1).dtype == tf.float32
    mixed.compile()
    before = [w.numpy().copy() for w in mixed.trainable_weights]
    logs = mixed.train_step(batch)
    assert all(v.dtype == tf.float32 and np.all(np.isfinite(v.numpy())) for v in logs.values())
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, mixed.trainable_weights))
    assert not any(w.dtype in ("float16", "bfloat16") for w in mixed.weights)  # float32 weights


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_flow_log_prob_within_tolerance_of_float32(policy):
    """A flow's exact log-density at the same weights: the networks' rounding
    moves it by at most TOLERANCE (measured: about a third of it)."""
    reference, mixed = pair("realnvp", "moons", {}, policy)
    x = zoo.datasets.toy.generate("moons", 512, 5).astype("float32")
    want, got = reference.log_prob(x).numpy(), mixed.log_prob(x)
    assert got.dtype == tf.float32
    error = np.abs(got.numpy() - want) / (1 + np.abs(want))
    assert 0 < error.max() <= TOLERANCE[policy]  # nonzero: the networks did round


def test_float16_scales_the_loss_of_every_optimizer():
    flow = zoo.get("realnvp", dataset="moons", num_couplings=2, hidden_units=8, num_blocks=1,
                   precision="mixed_float16")
    flow.compile()
    assert isinstance(flow.optimizer, keras.optimizers.LossScaleOptimizer)
    _, dataset, overrides, _ = next(c for c in PRIMARY if c[0] == "wgan_gp")
    gan = zoo.get("wgan_gp", dataset=dataset, precision="mixed_float16", **overrides)
    gan.compile()
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in gan.all_optimizers())
    # The gradient is taken of the scaled loss and unscaled by the optimizer: a
    # step moves the weights as the float32 step of the same weights does.
    keras.utils.set_random_seed(0)
    plain = zoo.get("realnvp", dataset="moons", num_couplings=2, hidden_units=8, num_blocks=1)
    perturb(plain)
    flow.set_weights(plain.get_weights())
    plain.compile(optimizer=keras.optimizers.SGD(0.1))
    # A scale of 2^15, the default, overflows float16 at first: the optimizer
    # skips those steps and halves it. Start where this step does not overflow.
    flow.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1),
                                                               initial_scale=2.0**6))
    x = zoo.datasets.toy.generate("moons", 64, 1).astype("float32")
    start = [w.numpy() for w in plain.trainable_weights]
    flow.rng.generator.state.assign(plain.rng.generator.state)
    plain.train_step(x), flow.train_step(x)
    assert float(flow.optimizer.dynamic_scale) > 1  # it scaled
    for s, a, b in zip(start, plain.trainable_weights, flow.trainable_weights):
        np.testing.assert_allclose(b.numpy() - s, a.numpy() - s, atol=2e-3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_exports_have_float32_signatures(policy, tmp_path):
    model = pair("realnvp", "moons", {}, policy)[1]
    folder = zoo.savedmodels.export(model, tmp_path / "realnvp")
    loaded = tf.saved_model.load(str(folder))
    x = zoo.datasets.toy.generate("moons", 4, 2).astype("float32")
    for name, fn in loaded.signatures.items():
        specs = fn.structured_input_signature[1]
        assert all(s.dtype in (tf.float32, tf.int32) for s in specs.values()), (name, specs)
        assert all(s.dtype in (tf.float32, tf.int32) for s in fn.structured_outputs.values())
    got = loaded.signatures["log_prob"](x=tf.constant(x))["log_prob"]
    # Against the model run as a graph, as the export is: on a CPU without native
    # bfloat16, oneDNN's graph rewrites (matmul, bias and relu fused, rounded once)
    # and eager's separate ops round differently, by up to 5e-3 here.
    want = tf.function(model.log_prob)(tf.constant(x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_refusals_and_bad_names_leave_nothing_behind(tmp_path):
    with pytest.raises(precision.PrecisionError, match="planar.*no neural network"):
        zoo.get("planar", dataset="moons", precision="mixed_float16")
    with pytest.raises(precision.PrecisionError, match="unknown precision 'half'.*mixed_bfloat16"):
        zoo.get("realnvp", dataset="moons", precision="half")
    for name, policy, match in (("radial", "mixed_bfloat16", "cannot take"),
                                ("realnvp", "float64", "unknown precision")):
        with pytest.raises(RunError, match=match):
            training.train(name, "moons", tmp_path / name, epochs=1, precision=policy)
        assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())
    assert zoo_cli.PRECISIONS == precision.PRECISIONS


def test_precision_is_part_of_the_config(tmp_path):
    model = zoo.get("maf", dataset="moons", num_layers=1, hidden_units=8, num_hidden=1,
                    precision="mixed_bfloat16")
    assert model.get_config()["precision"] == "mixed_bfloat16"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.precision == "mixed_bfloat16"
    assert all(n.dtype_policy.name == "mixed_bfloat16" for n in precision.networks(loaded))
