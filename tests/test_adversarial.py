"""AdversarialModel: the loss and regularizer plug-ins by hand, optimizer_terms,
the n_critic schedule with one optimizer per network, the generator's weight
average (EMA) and the random stream.

WGAN-GP's own checks (the gradient penalty, its defaults, export, mirrored
training) are in test_wgan_gp.py; these use the generic AdversarialModel.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import raw_batch
from zoo.gan import losses, regularizers
from zoo.gan.base import AdversarialModel

TINY_VECTORS = dict(data_shape=(2,), latent_dim=2, hidden_units=8, num_hidden=1)
TINY_IMAGES = dict(data_shape=(8, 8, 1), num_levels=17, filters=4, latent_dim=4)


def vector_model(**overrides):
    return AdversarialModel(**{**TINY_VECTORS, **overrides})


def linear_critic_model(w, **overrides):
    """A model on vectors of size len(w) whose critic is D(x) = w.x."""
    w = np.asarray(w, "float32")
    model = AdversarialModel(**{**TINY_VECTORS, "data_shape": (len(w),), "num_hidden": 0,
                                **overrides})
    # The score's kernel; a loss that sees constants also gets a bias, zero at first.
    model.critic_network.score.kernel.assign(w.reshape(-1, 1))
    assert len(model.critic_network.trainable_weights) == 1 + model.critic_network.score_bias
    return model


def snapshot(weights):
    return [np.array(w.numpy(), copy=True) for w in weights]


def changed(before, weights):
    return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, weights))


def sigmoid(s):
    return 1.0 / (1.0 + np.exp(-s))


def bce(p, label):
    """Binary cross-entropy of probabilities `p` with one label, per example."""
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def by_hand(name, real, fake):
    """(critic_loss, generator_loss, reported) of an adversarial loss, numpy float64."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if name == "wasserstein":
        return (fake.mean() - real.mean(), -fake.mean(),
                {"wasserstein": real.mean() - fake.mean()})
    if name == "non_saturating":
        # The critic is a classifier sigmoid(D) of real (label 1) vs fake (label 0).
        critic = bce(sigmoid(real), 1).mean() + bce(sigmoid(fake), 0).mean()
        return critic, bce(sigmoid(fake), 1).mean(), {}
    if name == "hinge":
        critic = np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean()
        return critic, -fake.mean(), {}
    raise AssertionError(name)


LOSSES = ["wasserstein", "non_saturating", "hinge"]
# Scores on both sides of 0 and of +-1 (both branches of the hinge), and batches
# of different sizes (a mean over the concatenation would differ).
REAL_SCORES = np.array([-2.5, -1.0, -0.3, 0.0, 0.7, 1.5, 4.0], "float32")
FAKE_SCORES = np.array([-3.0, -0.9, 0.2, 1.0, 2.2], "float32")


# ------------------------------------------------------------ adversarial losses
@pytest.mark.parametrize("name", LOSSES)
def test_adversarial_loss_formulas_on_fixed_scores(name):
    loss = losses.get(name)
    assert loss.name == name
    critic, generator, reported = by_hand(name, REAL_SCORES, FAKE_SCORES)
    real, fake = tf.constant(REAL_SCORES), tf.constant(FAKE_SCORES)
    np.testing.assert_allclose(loss.critic_loss(real, fake), critic, rtol=1e-6)
    np.testing.assert_allclose(loss.generator_loss(fake), generator, rtol=1e-6)
    report = loss.report(real, fake)
    assert tuple(report) == tuple(loss.reported) == tuple(reported)
    for key, value in reported.items():
        np.testing.assert_allclose(report[key], value, rtol=1e-6)


def test_non_saturating_is_the_cross_entropy_of_a_real_fake_classifier():
    loss = losses.get("non_saturating")
    real, fake = tf.constant(REAL_SCORES), tf.constant(FAKE_SCORES)
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True)
    expected = (keras_bce(np.ones_like(REAL_SCORES), REAL_SCORES)
                + keras_bce(np.zeros_like(FAKE_SCORES), FAKE_SCORES))
    np.testing.assert_allclose(loss.critic_loss(real, fake), expected, rtol=1e-5)
    # The non-saturating generator loss labels its own samples as real.
    np.testing.assert_allclose(loss.generator_loss(fake),
                               keras_bce(np.ones_like(FAKE_SCORES), FAKE_SCORES), rtol=1e-5)
    # Stable at confident scores, where log(sigmoid) in float32 would be -inf:
    # softplus(100) = 100 on each side.
    np.testing.assert_allclose(loss.critic_loss(tf.constant([-100.0]), tf.constant([100.0])),
                               200.0, rtol=1e-6)
    np.testing.assert_allclose(loss.generator_loss(tf.constant([-100.0])), 100.0, rtol=1e-6)


def test_non_saturating_critic_at_its_optimum_gives_jensen_shannon():
    """Goodfellow et al. 2014, Thm. 1: with D*(x) = p_data / (p_data + p_model),
    the value of the game -critic_loss is -log 4 + 2 JS(p_data, p_model).

    Two distributions on the 4 one-hot points, each represented exactly by a
    batch with multiplicities proportional to its probabilities; the linear
    critic w.e_k = logit D*(e_k) = log(p_data_k / p_model_k) scores them.
    """
    counts_data, counts_model = np.array([4, 2, 1, 1]), np.array([1, 1, 2, 4])
    p, q = counts_data / 8.0, counts_model / 8.0
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert js > 0.1  # far apart: the check is not near a trivial 0
    w_opt = np.log(p / q)
    model = linear_critic_model(w_opt, adversarial_loss="non_saturating")
    eye = np.eye(4, dtype="float32")
    real = tf.constant(np.repeat(eye, counts_data, axis=0))
    fake = tf.constant(np.repeat(eye, counts_model, axis=0))
    critic = model.critic_network.trainable_weights
    with tf.GradientTape() as tape:
        value = model.critic_terms(real, fake)["critic_loss"]
    np.testing.assert_allclose(-value, -np.log(4.0) + 2.0 * js, rtol=1e-5)
    # D* is the critic's optimum: no gradient there, and any other critic does worse.
    np.testing.assert_allclose(tape.gradient(value, critic)[0], 0.0, atol=1e-6)
    for seed in range(3):
        shift = np.random.default_rng(seed).normal(0, 0.3, 4)
        other = linear_critic_model(w_opt + shift, adversarial_loss="non_saturating")
        assert other.critic_terms(real, fake)["critic_loss"] > value + 1e-4


@pytest.mark.parametrize("name", LOSSES)
def test_model_terms_follow_the_chosen_loss(name):
    w = np.array([0.8, -1.3, 0.4], "float32")
    model = linear_critic_model(w, adversarial_loss=name, regularizer="none")
    assert isinstance(model.objective, losses.ADVERSARIAL_LOSSES[name])
    rng = np.random.default_rng(1)
    real = rng.standard_normal((7, 3)).astype("float32")
    fake = rng.standard_normal((5, 3)).astype("float32") + 0.5
    critic, generator, reported = by_hand(name, real @ w, fake @ w)
    terms = model.critic_terms(tf.constant(real), tf.constant(fake))
    assert set(terms) == set(model.loss_names)
    np.testing.assert_allclose(terms["critic_loss"], critic, rtol=1e-5)
    np.testing.assert_allclose(terms["generator_loss"], generator, rtol=1e-5)
    np.testing.assert_allclose(model.generator_loss(tf.constant(fake)), generator, rtol=1e-5)
    for key, value in reported.items():
        np.testing.assert_allclose(terms[key], value, rtol=1e-5)


# ------------------------------------------------------------------ regularizers
def test_r1_of_a_linear_critic_is_the_squared_norm_of_w():
    w = np.array([1.0, -2.0, 0.5], "float32")
    model = linear_critic_model(w, adversarial_loss="wasserstein", regularizer="r1",
                                regularizer_weight=2.5)
    assert len(model.critic_network.trainable_weights) == 1  # the kernel, no bias
    rng = np.random.default_rng(0)
    real = rng.standard_normal((6, 3)).astype("float32")
    fake = rng.standard_normal((6, 3)).astype("float32")
    terms = model.critic_terms(tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(terms["r1_penalty"], np.sum(w ** 2), rtol=1e-6)
    unregularized = np.mean(fake @ w) - np.mean(real @ w)
    np.testing.assert_allclose(terms["critic_loss"] - 2.5 * terms["r1_penalty"],
                               unregularized, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["critic_loss"], unregularized + 2.5 * 5.25, rtol=1e-5)


def test_r1_is_the_mean_squared_gradient_norm_on_real_data_only():
    model = vector_model(hidden_units=8, num_hidden=2, regularizer="r1", regularizer_weight=1.0)
    rng = np.random.default_rng(2)
    real = tf.constant(rng.standard_normal((5, 2)).astype("float32"))
    expected = []
    for i in range(5):  # each example's gradient alone
        x = real[i:i + 1]
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = model.scores(x)
        expected.append(np.sum(tape.gradient(score, x).numpy() ** 2))
    assert len(set(np.round(expected, 6))) > 1  # a nonlinear critic: norms differ
    for fake_seed in (3, 4):  # the fake batch plays no part
        fake = tf.constant(np.random.default_rng(fake_seed).standard_normal((5, 2)),
                           tf.float32)
        penalty = model.penalty(model.scores, real, fake, model.rng)
        np.testing.assert_allclose(penalty, np.mean(expected), rtol=1e-5)


@pytest.mark.parametrize("regularizer, penalty_of_w", [
    ("r1", lambda w: np.sum(w ** 2)),
    ("gradient_penalty", lambda w: (np.linalg.norm(w) - 1.0) ** 2),
])
@pytest.mark.parametrize("name", ["hinge", "non_saturating"])
def test_regularizer_weight_enters_the_critic_loss(name, regularizer, penalty_of_w):
    w = np.array([0.9, -1.7], "float32")
    rng = np.random.default_rng(5)
    real = tf.constant(rng.standard_normal((6, 2)).astype("float32"))
    fake = tf.constant(rng.standard_normal((6, 2)).astype("float32"))
    critic, _, _ = by_hand(name, real.numpy() @ w, fake.numpy() @ w)
    for weight in (0.0, 3.0):
        model = linear_critic_model(w, adversarial_loss=name, regularizer=regularizer,
                                    regularizer_weight=weight)
        terms = model.critic_terms(real, fake)
        np.testing.assert_allclose(terms[regularizer if regularizer != "r1" else "r1_penalty"],
                                   penalty_of_w(w), rtol=1e-5)
        np.testing.assert_allclose(terms["critic_loss"], critic + weight * penalty_of_w(w),
                                   rtol=1e-5)


def test_no_regularizer_adds_no_term():
    assert regularizers.get("none") is None
    w = np.array([2.0, -1.0], "float32")
    # A weight without a regularizer changes nothing.
    model = linear_critic_model(w, adversarial_loss="hinge", regularizer="none",
                                regularizer_weight=5.0)
    assert model.penalty is None
    assert model.loss_names == ("critic_loss", "generator_loss")
    rng = np.random.default_rng(6)
    real = rng.standard_normal((6, 2)).astype("float32")
    fake = rng.standard_normal((6, 2)).astype("float32")
    terms = model.critic_terms(tf.constant(real), tf.constant(fake))
    assert set(terms) == {"critic_loss", "generator_loss"}
    np.testing.assert_allclose(terms["critic_loss"], by_hand("hinge", real @ w, fake @ w)[0],
                               rtol=1e-6)


# ------------------------------------------------------------ plug-ins by name
def test_unknown_plugin_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown adversarial loss 'least_squares'") as info:
        vector_model(adversarial_loss="least_squares")
    for known in ("hinge", "non_saturating", "wasserstein"):
        assert known in str(info.value)
    with pytest.raises(ValueError, match="unknown regularizer 'spectral'") as info:
        vector_model(regularizer="spectral")
    for known in ("gradient_penalty", "r1", "none"):
        assert known in str(info.value)


@pytest.mark.parametrize("name, regularizer, expected", [
    ("hinge", "r1", ("critic_loss", "generator_loss", "r1_penalty")),
    ("non_saturating", "none", ("critic_loss", "generator_loss")),
    ("wasserstein", "none", ("critic_loss", "generator_loss", "wasserstein")),
    ("wasserstein", "r1", ("critic_loss", "generator_loss", "r1_penalty", "wasserstein")),
    ("non_saturating", "gradient_penalty", ("critic_loss", "generator_loss",
                                            "gradient_penalty")),
])
def test_loss_names_follow_the_plugins(name, regularizer, expected):
    model = vector_model(adversarial_loss=name, regularizer=regularizer, regularizer_weight=1.0)
    assert model.loss_names == expected
    assert tuple(model.trackers) == expected
    config = model.get_config()
    assert (config["adversarial_loss"], config["regularizer"]) == (name, regularizer)
    assert AdversarialModel.from_config(config).loss_names == expected


def test_training_logs_every_term_of_the_plugins():
    model = vector_model(adversarial_loss="hinge", regularizer="r1", regularizer_weight=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = model.train_on_batch(raw_batch(model, 8), return_dict=True)
    assert set(logs) == {"critic_loss", "generator_loss", "r1_penalty"}
    assert all(np.isfinite(v) for v in logs.values())


# ----------------------------------------------------------- optimizer_terms
def test_optimizer_terms_must_name_a_loss_term():
    class MisspelledTerm(AdversarialModel):
        optimizer_terms = {"generator": "generator_loss", "critic": "discriminator_loss"}

    with pytest.raises(ValueError, match=r"MisspelledTerm\.optimizer_terms: network 'critic' "
                                         r"minimises 'discriminator_loss', which is not one "
                                         r"of its loss terms") as info:
        MisspelledTerm(**TINY_VECTORS)
    assert "critic_loss" in str(info.value)  # the message lists the terms there are

    class PenaltyOnly(AdversarialModel):
        optimizer_terms = {"generator": "generator_loss", "critic": "r1_penalty"}

    # A term exists only when its plug-in is chosen.
    with pytest.raises(ValueError, match="'r1_penalty', which is not one of its loss terms"):
        PenaltyOnly(**TINY_VECTORS)
    PenaltyOnly(**TINY_VECTORS, regularizer="r1")


def test_optimizer_terms_must_name_networks_the_model_has():
    class MissingNetwork(AdversarialModel):
        optimizer_terms = {"generator": "generator_loss", "critic": "critic_loss",
                           "encoder": "generator_loss"}

    with pytest.raises(ValueError, match=r"MissingNetwork\.optimizer_terms names the network "
                                         r"'encoder', but the model has no encoder_network"):
        MissingNetwork(**TINY_VECTORS)

    class UnknownCritic(AdversarialModel):
        critic_networks = ("discriminator",)

    with pytest.raises(ValueError, match=r"critic_networks must name some \(or no\), not all"):
        UnknownCritic(**TINY_VECTORS)

    class AllCritics(AdversarialModel):
        critic_networks = ("generator", "critic")

    with pytest.raises(ValueError, match=r"critic_networks must name some \(or no\), not all"):
        AllCritics(**TINY_VECTORS)


# -------------------------------------------------------------- the schedule
def test_generator_moves_every_n_critic_steps_with_its_own_optimizer():
    model = vector_model(n_critic=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert model.critic_optimizer is not model.optimizer
    x = raw_batch(model, 8)
    generator = model.generator_network.trainable_weights
    critic = model.critic_network.trainable_weights
    moved = []
    for step in range(1, 8):
        g0, c0 = snapshot(generator), snapshot(critic)
        logs = model.train_on_batch(x, return_dict=True)
        assert set(logs) == set(model.loss_names)
        assert changed(c0, critic), f"the critic did not change at step {step}"
        moved.append(changed(g0, generator))
    assert moved == [False, False, True, False, False, True, False]
    assert int(model.critic_optimizer.iterations) == 7
    assert int(model.optimizer.iterations) == 2


def test_each_network_is_updated_by_its_own_optimizer_only():
    model = vector_model(n_critic=1)
    x = raw_batch(model, 8)
    generator = model.generator_network.trainable_weights
    critic = model.critic_network.trainable_weights

    critic_sgd = keras.optimizers.SGD(0.1)
    model.compile(optimizer=keras.optimizers.SGD(0.0), critic_optimizer=critic_sgd)
    assert model.critic_optimizer is critic_sgd
    g0, c0 = snapshot(generator), snapshot(critic)
    model.train_on_batch(x)
    assert changed(c0, critic) and not changed(g0, generator)

    model.compile(optimizer=keras.optimizers.SGD(0.1), critic_optimizer=keras.optimizers.SGD(0.0))
    g0, c0 = snapshot(generator), snapshot(critic)
    model.train_on_batch(x)
    assert changed(g0, generator) and not changed(c0, critic)
    assert int(model.optimizer.iterations) == int(model.critic_optimizer.iterations) == 1

    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="its own optimizer"):
        model.compile(optimizer=shared, critic_optimizer=shared)


def test_default_optimizers_are_two_copies_of_dcgan_adam():
    model = vector_model()
    model.compile()
    config = model.optimizer.get_config()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(config["learning_rate"], 2e-4) and config["beta_1"] == 0.5
    assert model.critic_optimizer is not model.optimizer
    strip = lambda c: {k: v for k, v in c.items() if k != "name"}  # noqa: E731
    assert strip(model.critic_optimizer.get_config()) == strip(config)
    with pytest.raises(RuntimeError, match="compile"):
        vector_model().train_step(tf.constant(raw_batch(model, 8)))


# ------------------------------------------------------------------------ EMA
def run_with(network, trainable, non_trainable, z):
    """`network`(z) with the given weights in place of its own (as in inference)."""
    kwargs = {"training": False} if "training" in inspect.signature(network.call).parameters \
        else {}
    outputs, _ = network.stateless_call(trainable, non_trainable, z, **kwargs)
    return outputs


def trained_with_average(shape, decay=0.5, steps=3):
    model = AdversarialModel(**shape, ema_decay=decay, n_critic=1)
    model.compile(optimizer=keras.optimizers.Adam(5e-2))
    x = raw_batch(model, 8)
    for _ in range(steps):
        model.train_on_batch(x)
    return model


@pytest.mark.parametrize("kind", ["vectors", "images"])
def test_average_starts_at_the_generator_and_is_not_trainable(kind):
    shape = TINY_VECTORS if kind == "vectors" else TINY_IMAGES
    model = AdversarialModel(**shape, ema_decay=0.9)
    average = model.generator_average
    # Every float weight is averaged, batch-norm statistics (images) included.
    sources = (model.generator_network.trainable_variables
               + model.generator_network.non_trainable_variables)
    assert len(average.weights) == len(sources)
    for a, v in zip(average.weights, sources):
        np.testing.assert_array_equal(a.numpy(), v.numpy())
    assert average.trainable_weights == []
    trainable = {id(v) for v in model.trainable_weights}
    assert not any(id(a) in trainable for a in average.weights)
    assert len(model.trainable_weights) == (len(model.generator_network.trainable_weights)
                                            + len(model.critic_network.trainable_weights))
    assert AdversarialModel(**shape).generator_average is None  # ema_decay=0: no average


def test_average_follows_the_ema_of_the_generator_updates():
    decay = 0.3  # (1 + t) / (10 + t) < 0.3 for t = 1, 2: both branches of the min
    model = AdversarialModel(**TINY_VECTORS, n_critic=2, ema_decay=decay)
    model.compile(optimizer=keras.optimizers.Adam(5e-2))
    x = raw_batch(model, 16)
    generator = model.generator_network.trainable_weights
    assert len(generator) == len(model.generator_network.weights)  # no other float weights
    expected = [w.astype(np.float64) for w in snapshot(generator)]  # starts at the weights
    updates = []
    for step in range(1, 13):
        model.train_on_batch(x)
        t = int(model.optimizer.iterations)  # the generator's updates so far
        if t > len(updates):  # the generator's turn (even steps): one more update
            assert t == len(updates) + 1 and step % 2 == 0
            d = min(decay, (1.0 + t) / (10.0 + t))
            expected = [d * a + (1 - d) * w for a, w in zip(expected, snapshot(generator))]
            updates.append(d)
        # Critic-only steps leave the average where it was.
        for a, e in zip(model.generator_average.weights, expected):
            np.testing.assert_allclose(a.numpy(), e, rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step}: {a.path}")
    assert len(updates) == 6 and int(model.critic_optimizer.iterations) == 12
    assert updates[0] < decay and updates[-1] == decay
    assert any(not np.allclose(a.numpy(), w.numpy(), atol=1e-3)
               for a, w in zip(model.generator_average.weights, generator))


# The vector case guards against call_averaged passing `training` to a call() without
# one (MLP.call): stateless_call, unlike __call__, does not drop it.
@pytest.mark.parametrize("kind", ["vectors", "images"])
def test_generate_sample_and_signature_use_the_average(kind):
    shape = TINY_VECTORS if kind == "vectors" else TINY_IMAGES
    latent = shape["latent_dim"]
    z = tf.constant(np.random.default_rng(1).standard_normal((6, latent)).astype("float32"))
    fresh = AdversarialModel(**shape, ema_decay=0.5)
    raw = fresh.to_data_space(fresh.generator_network(z, training=False))
    np.testing.assert_allclose(fresh.generate(z), raw, rtol=1e-6, atol=1e-6)

    model = trained_with_average(shape)
    generated = model.generate(z).numpy()
    averages = model.generator_average.weights
    n = len(model.generator_network.trainable_variables)
    by_averages = model.to_data_space(run_with(model.generator_network, averages[:n],
                                               averages[n:], z))
    np.testing.assert_allclose(generated, by_averages, rtol=1e-5, atol=1e-5)
    raw = model.to_data_space(model.generator_network(z, training=False)).numpy()
    assert np.max(np.abs(generated - raw)) > 1e-3, "generate used the last iterate"
    samples = model.sample(6, seed=3)
    z_of_seed = tf.random.stateless_normal([6, latent], seed=model.stateless_seed(3))
    np.testing.assert_allclose(samples, model.generate(z_of_seed), rtol=1e-6, atol=1e-6)
    fn, _ = model.serving_signatures()["generate"]
    np.testing.assert_allclose(tf.function(fn)(z)["samples"], generated, rtol=1e-5, atol=1e-5)


def test_average_is_saved_and_restored(tmp_path):
    model = AdversarialModel(**TINY_IMAGES, ema_decay=0.5, adversarial_loss="hinge")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = tf.data.Dataset.from_tensor_slices(raw_batch(model, 12)).batch(4)
    model.fit(ds, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 3
    z = np.random.default_rng(2).standard_normal((4, model.latent_dim)).astype("float32")
    generated = model.generate(z).numpy()
    raw = model.to_data_space(model.generator_network(z, training=False)).numpy()
    assert np.max(np.abs(generated - raw)) > 1e-3  # the average is not the last iterate
    path = str(tmp_path / "adversarial.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, custom_objects={"AdversarialModel":
                                                             AdversarialModel})
    assert reloaded.ema_decay == 0.5 and reloaded.adversarial_loss == "hinge"
    for a, b in zip(model.generator_average.weights, reloaded.generator_average.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_allclose(reloaded.generate(z), generated, rtol=1e-6, atol=1e-6)
    assert reloaded.generator_average.trainable_weights == []
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)


# ----------------------------------------------------------- the random stream
def test_seeded_models_train_bit_for_bit_alike_and_the_stream_advances():
    x = raw_batch(AdversarialModel(**TINY_IMAGES), 4)

    def seeded(seed):
        keras.utils.set_random_seed(seed)
        model = AdversarialModel(**TINY_IMAGES, n_critic=2, regularizer="gradient_penalty",
                                 regularizer_weight=1.0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    first, second = seeded(0), seeded(0)
    for step in range(3):
        s1, s2 = first.rng.state.numpy().copy(), second.rng.state.numpy().copy()
        np.testing.assert_array_equal(s1, s2)
        a = first.train_on_batch(x, return_dict=True)
        b = second.train_on_batch(x, return_dict=True)
        assert a == b, f"step {step}: {a} != {b}"
        if step == 0:
            first_logs = a
        assert not np.array_equal(first.rng.state.numpy(), s1), f"step {step}: no advance"
    for v, w in zip(first.weights, second.weights):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)
    # Not vacuous: another seed trains otherwise.
    assert seeded(1).train_on_batch(x, return_dict=True) != first_logs
