"""``zoo.fitting``, which the models' ``compile`` and ``fit`` hand their work to.

``compile(steps_per_execution="auto")``, the zoo's default: the first long enough
``fit`` times the train step and groups steps into executions, without changing
what training computes. The optimizers are built before the step is traced, and
the steps' gradients and logs are what a multi-worker strategy needs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import fitting
from zoo.base import GenerativeModel

TINY = dict(num_couplings=2, hidden_units=8, num_blocks=1)


def tiny_flow(seed=0):
    keras.utils.set_random_seed(seed)
    return zoo.get("realnvp", dataset="moons", **TINY)


def moons(n=4096):
    return tf.data.Dataset.from_tensor_slices(
        zoo.datasets.toy.generate("moons", n, 3).astype("float32")).batch(32).repeat()


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_auto_groups_steps_and_trains_exactly_as_one_step_per_execution(jit_compile):
    # Left at "auto", a flow on vectors runs each execution as one XLA program:
    # compared with one XLA step per execution, the same arithmetic. With
    # jit_compile=False Keras groups the plain steps.
    steps = 2 * fitting.AUTO_MIN_STEPS
    grouped, single = tiny_flow(), tiny_flow()
    grouped.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    single.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1,
                   jit_compile=jit_compile == "auto")
    rng_before = grouped.rng.generator.state.numpy().copy()
    weights_before = [w.numpy().copy() for w in grouped.weights]
    chosen = fitting.auto_steps_per_execution(grouped, moons(), steps_per_epoch=steps)
    # Timing the step left the model where it was.
    np.testing.assert_array_equal(grouped.rng.generator.state.numpy(), rng_before)
    for before, after in zip(weights_before, grouped.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert int(grouped.optimizer.iterations) == 0
    assert 1 < chosen <= fitting.MAX_STEPS_PER_EXECUTION and steps % chosen == 0
    assert grouped.step_seconds > 0

    a = grouped.fit(moons(), steps_per_epoch=steps, epochs=2, verbose=0)
    b = single.fit(moons(), steps_per_epoch=steps, epochs=2, verbose=0)
    assert grouped.steps_per_execution == chosen and single.steps_per_execution == 1
    assert grouped.xla_executions == (jit_compile == "auto") and not single.xla_executions
    if not grouped.xla_executions:  # Keras' loop ran the step traced for timing, not a new one
        assert grouped.timed_train_step.experimental_get_tracing_count() == 1
    assert single.timed_train_step is None
    assert int(grouped.optimizer.iterations) == int(single.optimizer.iterations) == 2 * steps
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-5)
    for x, y in zip(grouped.weights, single.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


def test_xla_executions_run_a_finite_pipeline_to_its_smaller_last_batch():
    # 1000 points in batches of 32: 31 full batches and one of 8 per epoch, so an
    # execution meets the smaller batch and then the end of the data.
    data = tf.data.Dataset.from_tensor_slices(
        zoo.datasets.toy.generate("moons", 1000, 3).astype("float32")).batch(32)
    epochs = -(-fitting.AUTO_MIN_STEPS // 32)
    grouped, single = tiny_flow(), tiny_flow()
    grouped.compile(optimizer=keras.optimizers.Adam(1e-3))
    single.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1, jit_compile=True)
    a = grouped.fit(data, epochs=epochs, verbose=0)
    b = single.fit(data, epochs=epochs, verbose=0)
    assert grouped.xla_executions and grouped.steps_per_execution > 1
    assert int(grouped.optimizer.iterations) == int(single.optimizer.iterations) == 32 * epochs
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-5)
    for x, y in zip(grouped.weights, single.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)


def test_auto_keeps_one_step_where_it_does_not_time():
    model = tiny_flow()
    model.compile()
    short = fitting.AUTO_MIN_STEPS // 2
    model.fit(moons(), steps_per_epoch=short, epochs=1, verbose=0)
    assert model.steps_per_execution == 1 and model.step_seconds is None
    # Infinite data: no epoch to divide.
    assert fitting.auto_steps_per_execution(model, moons(), steps_per_epoch=None) == 1
    # A later long fit times the step and chooses again, a divisor of its epoch.
    model.fit(moons(), steps_per_epoch=3 * 97, epochs=1, verbose=0)
    assert model.step_seconds is not None and (3 * 97) % model.steps_per_execution == 0
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert fitting.auto_steps_per_execution(model, moons(), steps_per_epoch=1000) == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "fast"])
def test_steps_per_execution_must_be_auto_or_a_positive_int(bad):
    with pytest.raises(ValueError, match="steps_per_execution must be an int >= 1 or 'auto'"):
        tiny_flow().compile(steps_per_execution=bad)


def test_auto_survives_save_and_load(tmp_path):
    model = tiny_flow()
    model.compile()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.steps_per_execution_is_auto and loaded.optimizer is not None


@pytest.mark.parametrize("name, dataset, overrides", [
    ("realnvp", "moons", TINY),
    ("wgan_gp", "moons", dict(hidden_units=8, num_hidden=1)),
    ("vae", "digits", dict(latent_dim=2, hidden_units=8)),
])
def test_fit_builds_the_optimizers_before_tracing_the_step(name, dataset, overrides, monkeypatch):
    """Every optimizer is built eagerly for the variables the step updates, not
    inside the first traced step (where each slot variable was slow to create)."""
    builds = []
    original = keras.optimizers.Optimizer.build

    def recorded(self, variables):
        builds.append(tf.inside_function())
        return original(self, variables)

    monkeypatch.setattr(keras.optimizers.Optimizer, "build", recorded)
    model = zoo.get(name, dataset=dataset, **overrides)
    model.compile()
    x = np.zeros((8,) + model.data_shape, "float32")
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert builds and not any(builds), builds
    assert all(o.built for o in model.all_optimizers())
    assert sum(int(o.iterations) for o in model.all_optimizers()) >= 1  # a step was taken


def test_gathered_weights_get_dense_gradients():
    """A weight read through a gather gets a dense gradient, not IndexedSlices:
    with those, a RealNVP whose couplings gathered their last kernel's columns
    trained to other weights on two workers than in one process
    (tests/test_multi_worker.py)."""
    assert GenerativeModel.scaled_gradients is fitting.scaled_gradients
    table = tf.Variable(tf.ones([5, 3]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [0, 2]) ** 2)
    assert isinstance(tape.gradient(loss, table), tf.IndexedSlices)  # what the tape gives
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [0, 2]) ** 2)
    (grad,) = GenerativeModel.scaled_gradients(tape, loss, [table], keras.optimizers.Adam())
    assert isinstance(grad, tf.Tensor)
    np.testing.assert_array_equal(grad.numpy(), [[2] * 3, [0] * 3, [2] * 3, [0] * 3, [0] * 3])


def test_steps_scale_losses_per_replica_and_keep_scalar_logs_outside_multi_worker():
    """One replica: the loss as it is. Outside a multi-worker strategy the logs
    stay scalars; under one, each gets a batch axis of one for Keras' reduction,
    which the two-worker tests of tests/test_multi_worker.py run through."""
    assert GenerativeModel.replica_scaled is fitting.replica_scaled
    loss = tf.constant(3.0)
    assert float(fitting.replica_scaled(loss)) == 3.0
    logs = {"loss": tf.constant(1.5), "kl": tf.constant(0.5)}
    for scope in (tf.distribute.get_strategy(), tf.distribute.OneDeviceStrategy("/cpu:0")):
        with scope.scope():
            kept = fitting.step_logs(logs)
        assert list(kept) == ["loss", "kl"] and all(v.shape == () for v in kept.values())
        assert [float(v) for v in kept.values()] == [1.5, 0.5]
