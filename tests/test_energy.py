"""The energy-based family (zoo/energy): Langevin samplers on known energies and
scores, the grid normaliser, score matching's optimum, the replay buffer in the
checkpoint, and the bad inputs of issue #31."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import runs, training
from zoo.energy import langevin, score_matching

TINY_EBM = dict(hidden_units=8, num_hidden=1, buffer_size=32, num_steps=2, grid_points=16)


# ------------------------------------------------------------------ samplers
def test_sgld_on_a_quadratic_energy_samples_its_gaussian():
    """E(x) = (x - m)' P (x - m) / 2 is N(m, P^-1): 4000 chains of 1000 steps of
    size 0.05 from zeros, at seed (1, 2). Tolerances: the mean within 0.08 (about
    4 standard errors: sqrt(1.5 / 4000) = 0.02 per axis) and the covariance
    within 0.1 per entry (standard error about 0.03, plus Langevin's step bias of
    about eps / 4 = 1.25% of the variance)."""
    mean = np.array([1.0, -2.0], np.float32)
    cov = np.array([[1.5, 0.5], [0.5, 0.5]], np.float32)
    precision = tf.constant(np.linalg.inv(cov))

    def energy(x):
        d = x - mean
        return 0.5 * tf.reduce_sum(d * tf.matmul(d, precision), axis=1)

    x = langevin.sgld(energy, tf.zeros([4000, 2]), 0.05, 1000, seed=[1, 2]).numpy()
    np.testing.assert_allclose(x.mean(0), mean, atol=0.08)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.1)
    again = langevin.sgld(energy, tf.zeros([4000, 2]), 0.05, 1000, seed=[1, 2]).numpy()
    np.testing.assert_array_equal(x, again)  # the seed fixes the chains


def mixture_score(weights, means, x, sigma):
    """The exact score of the mixture sum_k w_k N(mu_k, I) convolved with
    N(0, sigma^2 I)."""
    var = 1.0 + sigma ** 2
    d = x[:, None, :] - means[None]  # (n, K, 2)
    log_r = tf.math.log(weights)[None] - 0.5 * tf.reduce_sum(d * d, -1) / var
    r = tf.nn.softmax(log_r, axis=1)
    return -tf.reduce_sum(r[..., None] * d, axis=1) / var


def test_annealed_langevin_recovers_mixture_weights_where_plain_langevin_does_not():
    """Song & Ermon 2019, Sec. 3.2 and Fig. 3: on 0.2 N((-5,-5), I) + 0.8 N((5,5), I)
    with the exact score, plain Langevin from uniform noise on [-8, 8]^2 keeps the
    weights of the basins the chains start in (about 1/2 each), annealed Langevin
    (sigma from 20 to 1, geometric) recovers 0.2."""
    weights = tf.constant([0.2, 0.8])
    means = tf.constant([[-5.0, -5.0], [5.0, 5.0]])
    start = tf.random.stateless_uniform([1000, 2], seed=[3, 4], minval=-8, maxval=8)
    plain = langevin.sgld(lambda x: 0.0 * x[:, 0], start, 0.1, 1, [0, 0])  # shape check
    assert plain.shape == (1000, 2)
    exact = lambda x, i: mixture_score(weights, means, x, 0.0)  # noqa: E731
    plain = langevin.langevin(exact, start, tf.fill([1000], 0.1), [5, 6]).numpy()
    sigmas = langevin.geometric_ladder(20.0, 1.0, 10)
    annealed = langevin.annealed_langevin(
        lambda x, sigma: mixture_score(weights, means, x, sigma), start, sigmas, 0.1, 100,
        [5, 6]).numpy()
    plain_fraction = np.mean(plain.sum(1) < 0)
    annealed_fraction = np.mean(annealed.sum(1) < 0)
    assert abs(annealed_fraction - 0.2) < 0.05, annealed_fraction
    assert abs(plain_fraction - 0.2) > 0.2, plain_fraction


def test_denoising_score_matching_optimum_is_the_analytic_score():
    """On N(m, s^2) data with noise sigma, the minimiser of the denoising loss
    over linear scores a x + b is the noisy data's score -(x - m) / (s^2 + sigma^2):
    a = -1 / (s^2 + sigma^2), b = m / (s^2 + sigma^2). Fitted by full-batch Adam on
    50,000 points; within 3% (the sample's error is about 1%)."""
    m, s, sigma = 1.5, 0.8, 0.6
    x = tf.constant(m + s * np.random.default_rng(0).standard_normal((50_000, 1)), tf.float32)
    z = tf.random.stateless_normal(x.shape, seed=[7, 7])
    sigmas = tf.fill([50_000], sigma)
    a, b = tf.Variable(0.0), tf.Variable(0.0)
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(score_matching.denoising_loss(
                lambda y, _: a * y + b, x, sigmas, z))
        optimizer.apply_gradients(zip(tape.gradient(loss, [a, b]), [a, b]))

    for _ in range(600):
        step()
    var = s ** 2 + sigma ** 2
    np.testing.assert_allclose([a.numpy(), b.numpy()], [-1 / var, m / var], rtol=0.03)


def test_sliced_score_matching_has_the_same_optimum():
    """The sliced loss's expectation differs from the denoising one's by a
    constant on Gaussian data: the analytic score of the noisy data has the lower
    sliced loss than scores scaled away from it."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((20_000, 2)), tf.float32)
    sigmas = tf.fill([20_000], 0.5)
    z = tf.random.stateless_normal(x.shape, seed=[1, 1])
    v = tf.random.stateless_normal(x.shape, seed=[2, 2])

    def loss(scale):
        return float(tf.reduce_mean(score_matching.sliced_loss(
            lambda y, _: -scale * y / 1.25, x, sigmas, z, v)))

    assert loss(1.0) < loss(0.8) and loss(1.0) < loss(1.2)


# ------------------------------------------------------------ grid normaliser
def test_grid_normaliser_of_a_gaussian_gives_its_exact_nll():
    """E(x) = |x - m|^2 / (2 s^2): log Z = log(2 pi s^2), so E + log Z is the
    Gaussian's NLL; a coarser (128) and a finer (512) grid agree."""
    m, s = np.array([0.3, -0.2], np.float32), 0.7
    energy = lambda x: tf.reduce_sum(tf.square(x - m), 1) / (2 * s * s)  # noqa: E731
    log_z = float(langevin.grid_log_normalizer(energy, -5.0, 5.0, 256))
    assert abs(log_z - math.log(2 * math.pi * s * s)) < 1e-4
    points = np.random.default_rng(0).normal(m, s, (100, 2)).astype(np.float32)
    exact = -np.sum(-0.5 * ((points - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), 1)
    np.testing.assert_allclose(energy(points).numpy() + log_z, exact, rtol=1e-5)
    coarse = float(langevin.grid_log_normalizer(energy, -5.0, 5.0, 128))
    fine = float(langevin.grid_log_normalizer(energy, -5.0, 5.0, 512))
    assert abs(coarse - fine) < 1e-4
    assert langevin.quadrature_error(energy, -5.0, 5.0, 256) < 1e-4


def test_an_ebm_density_integrates_to_one_on_its_grid_and_grids_agree():
    model = zoo.get("ebm", dataset="moons", hidden_units=16, num_hidden=2, buffer_size=32,
                    grid_points=128)
    points, log_cell = langevin.grid(-5.0, 5.0, 128)
    total = tf.reduce_logsumexp(model.log_prob(points)) + log_cell
    assert abs(float(total)) < 1e-4
    assert abs(float(model.log_normalizer(64)) - float(model.log_normalizer(256))) < 1e-3
    metrics = model.extra_metrics(None, {})
    assert metrics["grid_normalizer"]["grid"].startswith("[-5, 5]^2, 128 x 128")
    assert metrics["grid_normalizer"]["quadrature_error_nats"] < 1e-3


# ------------------------------------------------------------------ bad input
def test_bad_step_sizes_and_ladders_are_clear_errors():
    energy = lambda x: tf.reduce_sum(x * x, 1)  # noqa: E731
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="sgld: expected step_size > 0"):
            langevin.sgld(energy, tf.zeros([2, 2]), bad, 3, [0, 0])
        with pytest.raises(ValueError, match="EBM: expected step_size > 0"):
            zoo.get("ebm", dataset="moons", step_size=bad)
        model = zoo.get("ebm", dataset="moons", **TINY_EBM)
        with pytest.raises(ValueError, match="expected step_size > 0"):
            model.sample(2, seed=0, step_size=bad)
    with pytest.raises(ValueError, match="expected num_steps > 0"):
        model.sample(2, seed=0, num_steps=0)
    with pytest.raises(ValueError, match="noise levels that decrease strictly"):
        langevin.annealed_langevin(lambda x, s: -x, tf.zeros([2, 2]), [1.0, 2.0], 0.1, 2, [0, 0])
    with pytest.raises(ValueError, match="noise levels > 0"):
        langevin.check_ladder([1.0, 0.0], "ncsn")


def test_a_grid_that_does_not_cover_the_data_is_a_clear_error():
    model = zoo.get("ebm", dataset="moons", grid_limit=2.0, **TINY_EBM)
    inside = np.array([[0.5, -1.0]], np.float32)
    assert np.isfinite(model.nll(inside).numpy()).all()
    outside = np.array([[0.5, -1.0], [3.0, 0.0]], np.float32)
    with pytest.raises(ValueError, match=r"expected points inside the normaliser's grid "
                                         r"\[-2, 2\]\^2.*widen grid_limit.*got \|x\| up to 3"):
        model.nll(outside)
    traced = tf.function(lambda x: model.nll(x))
    with pytest.raises(tf.errors.InvalidArgumentError, match="inside the normaliser"):
        traced(tf.constant(outside))
    # the density itself is 0 outside the grid (its picture is drawn wider)
    log_p = model.log_prob(outside).numpy()
    assert np.isfinite(log_p[0]) and log_p[1] == -np.inf
    with pytest.raises(ValueError, match="expected an even grid_points >= 8"):
        zoo.get("ebm", dataset="moons", grid_points=7)


def test_images_have_no_likelihood_and_say_why():
    model = zoo.get("ebm", dataset="digits", filters=4, num_downsamplings=1, buffer_size=8,
                    num_steps=2)
    assert model.likelihood == "none" and "intractable" in model.likelihood_description
    with pytest.raises(TypeError, match="has no likelihood"):
        model.nll(np.zeros((2, 8, 8, 1), np.float32))
    assert "intractable" in model.extra_metrics(None, {})["normalizer"]


# -------------------------------------------------- the buffer in checkpoints
def test_training_updates_the_buffer_and_a_reload_keeps_it(tmp_path):
    model = zoo.get("ebm", dataset="moons", **TINY_EBM)
    before = model.buffer.numpy().copy()
    model.compute_losses(tf.constant(np.zeros((8, 2), np.float32)), training=True)
    after = model.buffer.numpy()
    assert np.sum(np.any(before != after, axis=1)) == 8  # one entry per chain
    model.save(tmp_path / "m.keras")
    import keras
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.buffer.numpy(), after)
    np.testing.assert_array_equal(loaded.sample(4, seed=1), model.sample(4, seed=1))


@pytest.mark.slow  # a training run in a process of its own (74 s on 2 cores)
def test_killed_run_resumes_bit_for_bit_with_the_buffer(tmp_path, data_dir):
    from test_training import KILLED, SETTINGS, state, without_seconds

    overrides = dict(TINY_EBM)
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    training.train("ebm", "moons", straight, overrides=overrides, data_dir=data_dir, **SETTINGS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "ZOO_DATA_DIR": data_dir}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, json.dumps(["ebm", "moons", killed, overrides, SETTINGS])],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -9, proc.stderr[-3000:]
    result = training.train("ebm", None, killed, resume=True, data_dir=data_dir, verbose=0)
    assert result.epoch == 2 and result.finished
    a, _, _ = runs.load_checkpoint(straight)
    b, _, _ = runs.load_checkpoint(killed)
    assert not np.array_equal(a.buffer.numpy(), zoo.get("ebm", "moons", **overrides)
                              .buffer.numpy())  # trained: the buffer moved
    for x, y in zip(state(a), state(b)):
        np.testing.assert_array_equal(x, y)
    assert without_seconds(runs.read_history(straight)) == \
        without_seconds(runs.read_history(killed))


def test_a_grid_that_misses_the_test_points_and_non_finite_energies_are_clear_errors(
        tmp_path, data_dir, monkeypatch):
    """One tiny run (its grid, [-1, 1]^2, misses most test points). `zoo evaluate`:
    the NLL's graph assertion is a RunError naming the grid (`zoo: error:`, exit 2),
    not an unexpected error, and no metrics.json is written. Resumed with NaN
    energies, training stops like every NaN: the last good checkpoint and its
    buffer are kept."""
    from zoo.energy.ebm import EBM

    out = str(tmp_path / "run")
    settings = dict(steps_per_epoch=2, batch_size=16, verbose=0, data_dir=data_dir)
    training.train("ebm", "moons", out, epochs=1, overrides=dict(TINY_EBM, grid_limit=1.0),
                   **settings)
    with pytest.raises(runs.RunError, match=r"expected points inside the normaliser's grid "
                                            r"\[-1, 1\]\^2"):
        runs.evaluate_run(out, data_dir=data_dir, num_samples=50)
    assert not os.path.exists(os.path.join(out, "metrics.json"))

    good, _, _ = runs.load_checkpoint(out)
    buffer = good.buffer.numpy()
    original = EBM.energy
    monkeypatch.setattr(EBM, "energy", lambda self, x, training=False, labels=None:
                        original(self, x, training) * float("nan"))
    with pytest.raises(runs.NonFiniteError, match="non-finite"):
        training.train("ebm", None, out, epochs=2, resume=True, data_dir=data_dir, verbose=0)
    assert runs.checkpoint_files(out) == ["epoch_0001.keras"]
    kept, _, _ = runs.load_checkpoint(out)
    np.testing.assert_array_equal(kept.buffer.numpy(), buffer)
    assert np.isfinite(buffer).all()


# ------------------------------------------------------------ JEM, NCSN, completion
TINY_JEM = dict(filters=4, num_downsamplings=1, buffer_size=16, num_steps=2)


def test_expected_calibration_error():
    from zoo.energy.jem import expected_calibration_error

    # Confidence 0.8 in every example, right in 4 of 5: calibrated.
    p = np.tile([[0.8, 0.2]], (5, 1))
    assert expected_calibration_error(p, np.array([0, 0, 0, 0, 1])) == pytest.approx(0.0)
    # Confidence 0.9, right in 1 of 2: |0.5 - 0.9|.
    p = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert expected_calibration_error(p, np.array([0, 0])) == pytest.approx(0.4)


def test_jem_classifies_and_reports_accuracy_calibration_and_energies(tmp_path):
    model = zoo.get("jem", dataset="digits", **TINY_JEM)
    x = np.random.default_rng(0).integers(0, 17, (6, 8, 8, 1)).astype(np.float32)
    out = model.classify(x)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out["label"], out["probabilities"].numpy().argmax(1))
    # E(x) = -logsumexp f(x), E(x, y) = -f(x)[y]
    scaled = model.to_model(tf.constant(x))
    logits = model.logits(scaled).numpy()
    np.testing.assert_allclose(model.energy(scaled).numpy(),
                               -np.log(np.exp(logits).sum(1)), rtol=1e-5)
    np.testing.assert_allclose(model.energy(scaled, labels=tf.constant([2] * 6)).numpy(),
                               -logits[:, 2], rtol=1e-6)
    labels = out["label"].numpy()
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(4)
    metrics = model.extra_metrics(data, model.evaluation_defaults(), run_dir=tmp_path)
    assert metrics["classifier"]["test_accuracy"] == 1.0  # its own predictions
    assert metrics["classifier"]["num_examples"] == 6
    assert 0.0 <= metrics["classifier"]["expected_calibration_error"] <= 1.0
    assert (tmp_path / metrics["pictures"][0]).stat().st_size > 0
    with pytest.raises(ValueError, match="JEM: a classifier needs num_classes >= 2"):
        zoo.get("jem", dataset="digits", num_classes=1)
    samples = model.sample(3, seed=1, label=4)
    assert samples.shape == (3, 8, 8, 1)


def test_ncsn_ladder_errors_and_steps_per_sample():
    with pytest.raises(ValueError, match="noise levels that decrease strictly"):
        zoo.get("ncsn", dataset="digits", sigmas=[0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match="expected a decreasing ladder"):
        zoo.get("ncsn", dataset="digits", sigma_max=0.01, sigma_min=1.0)
    with pytest.raises(ValueError, match="expected objective one of"):
        zoo.get("ncsn", dataset="digits", objective="exact")
    model = zoo.get("ncsn", dataset="moons", hidden_units=8, num_hidden=1, sigmas=[1.0, 0.1],
                    num_steps=3)
    assert model.extra_metrics(None, {})["langevin_steps_per_sample"] == 6
    assert model.likelihood == "none"
    with pytest.raises(ValueError, match="expected step_size > 0"):
        model.sample(2, seed=0, step_size=0.0)


def test_completion_clamps_the_kept_values_during_langevin():
    model = zoo.get("ebm", dataset="digits", filters=4, num_downsamplings=1, buffer_size=8,
                    num_steps=5)
    x = np.random.default_rng(1).integers(0, 17, (2, 8, 8, 1)).astype(np.float32)
    mask = np.zeros_like(x)
    mask[:, :4] = 1
    a = model.complete(x, mask, seed=1).numpy()
    np.testing.assert_array_equal(a[:, :4], x[:, :4])
    b = model.complete(x, mask, seed=2).numpy()
    assert not np.array_equal(a[:, 4:], b[:, 4:])
    # The chain itself holds the kept values (not only the base's final tf.where):
    # with the mask all ones, the chains' ends are the data.
    kept = model.to_model(tf.constant(x))
    ends = model.run_chains(kept, tf.constant([1, 1]), 2.0, 5, 0.005,
                            keep=(tf.ones_like(kept), kept))
    np.testing.assert_array_equal(ends.numpy(), kept.numpy())



# ------------------------------------------------------- NCSN's denoising step
def test_denoising_step_is_the_gaussian_posterior_mean():
    """Data N(m, s^2 I) seen through noise sigma: the noisy data are N(m, (s^2 +
    sigma^2) I), whose score is -(x - m) / (s^2 + sigma^2). One step x + sigma^2
    s(x, sigma) is then E[x0 | x], which Bayes' rule for two Gaussians gives as
    (x / sigma^2 + m / s^2) / (1 / sigma^2 + 1 / s^2)."""
    m = np.array([1.5, -0.5, 0.25], np.float32)
    s = 0.8
    x = np.random.default_rng(0).normal(0.0, 3.0, (50, 3)).astype(np.float32)
    for sigma in (0.01, 0.3, 2.0):
        def score(y, level):
            return -(y - m) / (s * s + tf.square(level))

        got = langevin.denoise_step(score, tf.constant(x), sigma).numpy()
        x64, m64 = x.astype(np.float64), m.astype(np.float64)
        posterior_mean = (x64 / sigma ** 2 + m64 / s ** 2) / (1 / sigma ** 2 + 1 / s ** 2)
        np.testing.assert_allclose(got, posterior_mean, rtol=1e-6, atol=1e-6)


def test_annealed_langevin_denoises_its_chains_at_the_last_level():
    """`denoise` adds one step at sigma_L to the chains, clipped into the box as
    the steps are; a tensor `denoise` (as in an exported signature) chooses the
    same in the graph, and 0 leaves the loop's output as it is, bit for bit. (The
    step's arithmetic, traced or eager, may round differently: 1e-6.)"""
    def score(y, level):
        return -(y - 1.0) / (0.25 + tf.square(level))

    sigmas = langevin.geometric_ladder(1.0, 0.1, 3)
    start = tf.random.stateless_uniform([64, 2], seed=[1, 2], minval=-2, maxval=2)
    args = (score, start, sigmas, 0.01, 4, [3, 4], 1.0, (-2.0, 2.0))
    chains = langevin.annealed_langevin(*args).numpy()
    denoised = langevin.annealed_langevin(*args, denoise=True).numpy()
    expected = np.clip(langevin.denoise_step(score, tf.constant(chains), sigmas[-1]).numpy(),
                       -2.0, 2.0)
    np.testing.assert_array_equal(denoised, expected)
    assert not np.array_equal(denoised, chains)
    traced = tf.function(lambda d: langevin.annealed_langevin(*args, denoise=d))
    np.testing.assert_allclose(traced(tf.constant(1)).numpy(), denoised, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(traced(tf.constant(0)).numpy(), chains)


def test_ncsn_samples_are_denoised_by_default_and_denoise_0_is_the_plain_sampler():
    """`denoise=0` gives the chains of annealed Langevin dynamics bit for bit (the
    sampler before the step existed), `denoise=1` (the default) those chains after
    the denoising step, eagerly and in a graph with the option as an input (as
    the exported `sample` signature takes it); the model argument sets the
    default; other values are clear errors. The step's arithmetic, in the
    model's compiled chains or eagerly here, may round differently: 1e-6."""
    model = zoo.get("ncsn", dataset="moons", hidden_units=8, num_hidden=1, sigmas=[1.0, 0.1],
                    num_steps=3)
    assert model.sample_options["denoise"].default == 1
    seed = tf.constant([5, 6])
    start = model.uniform_noise(8, tf.random.experimental.stateless_fold_in(seed, 0))
    chains = langevin.annealed_langevin(
        model.score, start, model.ladder, model.step_size, model.num_steps,
        tf.random.experimental.stateless_fold_in(seed, 1), model.noise, model.bounds)
    denoised = langevin.project(langevin.denoise_step(model.score, chains, model.ladder[-1]),
                                model.bounds)
    np.testing.assert_array_equal(model.sample(8, seed=seed, denoise=0), chains)
    assert not np.array_equal(denoised, chains)
    np.testing.assert_allclose(model.sample(8, seed=seed), denoised, rtol=1e-6, atol=1e-6)
    graph = tf.function(lambda d: model.sample(8, seed, denoise=d))
    np.testing.assert_array_equal(graph(tf.constant(0)), chains)
    np.testing.assert_allclose(graph(tf.constant(1)), denoised, rtol=1e-6, atol=1e-6)
    off = zoo.get("ncsn", dataset="moons", hidden_units=8, num_hidden=1, sigmas=[1.0, 0.1],
                  denoise=False)
    assert off.sample_options["denoise"].default == 0 and off.get_config()["denoise"] is False
    with pytest.raises(ValueError, match=r"expected denoise .*1.*got 2"):
        model.sample(2, seed=0, denoise=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="denoise"):
        graph(tf.constant(-1))
    with pytest.raises(ValueError, match="NCSN: expected denoise True or False, got 'yes'"):
        zoo.get("ncsn", dataset="moons", denoise="yes")
