"""Diffusion models (zoo/diffusion): the forward process and the posterior against
their closed forms, the bound against its terms and against the closed form for a
Gaussian data distribution with the optimal denoiser, the samplers, DDIM's ODE,
completion, guidance, iDDPM's importance sampler, and bad input."""

import math

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.diffusion import schedules
from zoo.diffusion.ddpm import DDPM

MEAN, STD = 0.5, 0.8  # the 1-D Gaussian data distribution


class GaussianDDPM(DDPM):
    """DDPM on 1-D N(MEAN, STD^2) data whose network is the optimal denoiser:
    ``eps = (x_t - sqrt(abar) E[x_0 | x_t]) / sqrt(1 - abar)`` in closed form."""

    def network_output(self, xt, t, labels=None, averaged=False):
        # abar of integer and of fractional timesteps (the probability flow's)
        s = (tf.cast(t, tf.float32) + 1.0) / self.timesteps
        a = tf.exp(0.5 * self.continuous_log_alphas_cumprod(s))[:, None]
        b2 = 1.0 - tf.square(a)
        x0_hat = MEAN + a * STD**2 / (a**2 * STD**2 + b2) * (xt - a * MEAN)
        return (xt - a * x0_hat) / tf.sqrt(b2)


def gaussian_model(timesteps, **kwargs):
    return GaussianDDPM(data_shape=(1,), num_levels=None, timesteps=timesteps, hidden_units=4,
                        num_hidden=1, name="gaussian_ddpm", **kwargs)


def expected_bound(x0, table):
    """E over the forward noise of GaussianDDPM's bound at each x0 (nats), in
    closed form: the KL terms are coef1^2 E[(x0 - x0_hat)^2] / (2 beta~_t), the
    decoder's is that of N(x0_hat, beta~_1), with E[(x0 - x0_hat)^2] = (MEAN - x0)^2
    (1 - k a)^2 + k^2 b^2, k = a STD^2 / (a^2 STD^2 + b^2)."""
    abar = table["alphas_cumprod"]
    total = np.zeros_like(x0)
    for t in range(len(abar)):
        a, b2 = math.sqrt(abar[t]), 1.0 - abar[t]
        k = a * STD**2 / (a**2 * STD**2 + b2)
        err = (MEAN - x0) ** 2 * (1 - k * a) ** 2 + k**2 * b2
        if t == 0:
            var = math.exp(table["posterior_log_variance_clipped"][0])
            total += 0.5 * math.log(2 * math.pi * var) + err / (2 * var)
        else:
            total += table["posterior_mean_coef1"][t] ** 2 * err / (
                2 * table["posterior_variance"][t])
    a2, b2 = abar[-1], 1.0 - abar[-1]
    total += 0.5 * (a2 * x0**2 + b2 - 1.0 - math.log(b2))  # KL(q(x_T|x_0) || N(0, 1))
    return total


# ----------------------------------------------------------------- schedules
def test_forward_process_matches_the_step_by_step_closed_form():
    """q(x_t | x_0)'s mean and variance are those of t + 1 steps of
    x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) eps, by recursion."""
    for schedule in schedules.SCHEDULES:
        beta = schedules.betas(schedule, 20)
        table = schedules.tables(beta)
        x0 = tf.constant([[0.3], [-1.2]])
        coef, var = 1.0, 0.0
        for t in range(20):
            coef, var = coef * math.sqrt(1 - beta[t]), (1 - beta[t]) * var + beta[t]
            mean, variance, _ = schedules.q_mean_variance(x0, tf.constant([t, t]),
                                                          table["alphas_cumprod"])
            np.testing.assert_allclose(mean.numpy(), coef * x0.numpy(), rtol=1e-5)
            np.testing.assert_allclose(variance.numpy(), var, rtol=1e-5)
        noise = tf.constant([[0.5], [2.0]])
        xt = schedules.q_sample(x0, tf.constant([19, 19]), noise, table["alphas_cumprod"])
        np.testing.assert_allclose(xt.numpy(), coef * x0.numpy() + math.sqrt(var) * noise.numpy(),
                                   rtol=1e-5)


def test_posterior_matches_bayes_rule():
    """q(x_{t-1} | x_t, x_0) ~ q(x_t | x_{t-1}) q(x_{t-1} | x_0): precision and
    mean of the product of the two Gaussians."""
    beta = schedules.betas("linear", 10)
    table = schedules.tables(beta)
    abar = table["alphas_cumprod"]
    x0, xt = tf.constant([[0.7]]), tf.constant([[-0.4]])
    for t in range(1, 10):
        precision = 1 / (1 - abar[t - 1]) + (1 - beta[t]) / beta[t]
        mean = (math.sqrt(abar[t - 1]) * 0.7 / (1 - abar[t - 1])
                + math.sqrt(1 - beta[t]) * -0.4 / beta[t]) / precision
        got_mean, got_var, got_log_var = schedules.q_posterior(x0, xt, tf.constant([t]), table)
        np.testing.assert_allclose(got_mean.numpy(), [[mean]], rtol=1e-5)
        np.testing.assert_allclose(got_var.numpy(), [[1 / precision]], rtol=1e-5)
        np.testing.assert_allclose(got_log_var.numpy(), [[-math.log(precision)]], rtol=1e-5)


def test_ddim_with_eta_one_has_the_posterior_variance():
    table = schedules.tables(schedules.betas("cosine", 50))
    abar, prev = table["alphas_cumprod"][1:], table["alphas_cumprod_prev"][1:]
    sigma = schedules.ddim_sigma(tf.constant(abar), tf.constant(prev), 1.0).numpy()
    np.testing.assert_allclose(sigma**2, table["posterior_variance"][1:], rtol=1e-9)
    np.testing.assert_array_equal(schedules.ddim_sigma(tf.constant(abar), tf.constant(prev),
                                                       0.0).numpy(), 0.0)


def test_respaced_schedules_keep_the_alphas_of_their_timesteps():
    T = 100
    abar = schedules.tables(schedules.betas("linear", T))["alphas_cumprod"]
    for k in (1, 2, 7, 10, 100):
        kept = schedules.respaced_timesteps(T, k).numpy()
        assert len(kept) == k and kept[-1] == T - 1 and np.all(np.diff(kept) > 0)
        respaced = schedules.respaced_betas(abar, kept).numpy()
        np.testing.assert_allclose(np.cumprod(1 - respaced), abar[kept], rtol=1e-9)
    np.testing.assert_array_equal(schedules.respaced_timesteps(T, 10).numpy(),
                                  np.round(np.linspace(0, T - 1, 10)).astype(int))
    np.testing.assert_array_equal(schedules.respaced_timesteps(T, T).numpy(), np.arange(T))


def test_schedules_say_what_was_expected():
    with pytest.raises(ValueError, match=r"unknown noise schedule 'quadratic'; expected one "
                                         r"of \['linear', 'cosine'\]"):
        schedules.betas("quadratic", 10)
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        zoo.get("ddpm", dataset="moons", schedule="quadratic", timesteps=4)
    with pytest.raises(ValueError, match=r"expected timesteps: integers in \[0, 10\), got "
                                         r"values in \[0, 10\]"):
        schedules.check_timesteps([0, 10], 10, "here")
    with pytest.raises(ValueError, match=r"expected timesteps: integers in \[0, 10\)"):
        schedules.check_timesteps([-1], 10, "here")
    check = tf.function(lambda t: schedules.check_timesteps(t, 10, "here"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"integers in \[0, 10\)"):
        check(tf.constant([3, 12]))
    np.testing.assert_array_equal(check(tf.constant([0, 9])).numpy(), [0, 9])


# --------------------------------------------------------------------- bound
def test_the_bound_is_the_sum_of_its_terms():
    model = zoo.get("ddpm", dataset="moons", timesteps=3, hidden_units=8, num_hidden=1)
    x = np.random.default_rng(0).standard_normal((3, 2)).astype("float32")
    parts = model.bound_terms(x, seed=4)
    assert parts["terms"].shape == (3, 3)
    np.testing.assert_array_equal(parts["timesteps"].numpy(), np.tile(np.arange(3), (3, 1)))
    assert np.all(parts["terms"].numpy()[:, 1:] >= 0)  # KL terms
    np.testing.assert_allclose(model.nll(x, seed=4).numpy(),
                               parts["prior"].numpy() + parts["terms"].numpy().sum(1), rtol=1e-6)


def test_each_example_draws_its_own_timestep_in_each_stratum():
    """A stratified bound's examples are independent estimates, so that the
    standard error over them (zoo evaluate's) includes the strata's draws."""
    model = gaussian_model(20, bound_timesteps=4)
    x = np.full((64, 1), 0.5, np.float32)
    parts = model.bound_terms(x, seed=3)
    timesteps = parts["timesteps"].numpy()
    assert timesteps.shape == (64, 4)
    assert np.all(timesteps // 5 == np.arange(4))  # one in each stratum of 5
    assert len({tuple(row) for row in timesteps}) > 32
    np.testing.assert_allclose(model.nll(x, seed=3).numpy(),
                               parts["prior"].numpy() + parts["terms"].numpy().sum(1), rtol=1e-6)


@pytest.mark.slow  # 13 s alone on 2 cores (40 s on a loaded host)
def test_the_bound_of_the_optimal_denoiser_on_gaussian_data_is_its_closed_form():
    """Averaged over the forward noise, the bound of GaussianDDPM equals its
    expectation in closed form (to 4 standard errors), and is above the true NLL;
    its stratified estimate is unbiased."""
    model = gaussian_model(20)
    x0 = np.array([-0.5, 0.5, 1.7], np.float32)
    repeats = 2000
    x = np.repeat(x0, repeats)[:, None]
    nll = model.nll(x, seed=1).numpy().reshape(3, repeats)
    expected = expected_bound(x0.astype(np.float64), model.table)
    se = nll.std(axis=1) / math.sqrt(repeats)
    assert np.all(np.abs(nll.mean(1) - expected) < 4 * se + 1e-4), (nll.mean(1), expected, se)
    true_nll = 0.5 * math.log(2 * math.pi * STD**2) + (x0 - MEAN) ** 2 / (2 * STD**2)
    assert np.all(expected > true_nll)
    stratified = gaussian_model(20, bound_timesteps=4)
    estimates = np.stack([stratified.nll(x[::20], seed=s).numpy() for s in range(25)])
    estimates = estimates.reshape(25, 3, -1).transpose(1, 0, 2).reshape(3, -1)
    se = estimates.std(axis=1) / math.sqrt(estimates.shape[1])
    assert np.all(np.abs(estimates.mean(1) - expected) < 4 * se), (estimates.mean(1), expected)


# ------------------------------------------------------------------ samplers
@pytest.mark.parametrize("eta, timesteps, num_steps", [(0.0, 100, 50), (1.0, 1000, 1000)])
def test_samplers_of_the_optimal_denoiser_draw_the_data_distribution(eta, timesteps, num_steps):
    """DDIM (respaced) and DDPM's ancestral sampler (whose fixed variance beta~
    leaves out Var(x_0 | x_t): all of T = 1000 small steps) draw N(MEAN, STD^2)."""
    model = gaussian_model(timesteps)
    samples = model.sample(4000, seed=2, num_steps=num_steps, eta=eta).numpy()
    assert abs(samples.mean() - MEAN) < 0.05 and abs(samples.std() - STD) < 0.05


def test_ddim_encode_then_decode_returns_the_input():
    """DDIM's ODE, encoded and decoded over all T = 1000 steps (first-order steps:
    the error shrinks with the step)."""
    model = gaussian_model(1000)
    x = np.linspace(-1.5, 2.5, 9, dtype=np.float32)[:, None]
    z = model.encode(x).numpy()
    assert np.abs(z).max() < 4 and not np.allclose(z, x, atol=0.1)
    np.testing.assert_allclose(model.decode(z).numpy(), x, atol=1e-2)


@pytest.mark.slow  # about a minute: 100 RK4 steps, eagerly
def test_probability_flow_nll_of_an_exact_score_is_the_gaussian_nll():
    """With the exact score of Gaussian data, the probability flow's NLL of a point
    is that of the Gaussian marginal at the first timestep's noise level (to 0.01
    nats: the RK4 steps cross the kinks of the piecewise-linear log abar(s); it
    was 0.006 at 100 steps)."""
    model = gaussian_model(1000)
    x = np.array([[-1.0], [0.5], [2.0]], np.float32)
    abar = model.table["alphas_cumprod"][0]
    variance = abar * STD**2 + 1 - abar
    expected = 0.5 * np.log(2 * np.pi * variance) + (x[:, 0] - math.sqrt(abar) * MEAN) ** 2 / (
        2 * variance)
    got = model.probability_flow_nll(x, num_steps=100).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-2)


def tiny_images(**kwargs):
    model = zoo.get("ddpm", dataset="digits", timesteps=4, channels=4, channel_mults=(1,),
                    num_res_blocks=1, ema_decay=0.0, **kwargs)  # sampling sees the weights
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.05 * rng.standard_normal(v.shape).astype("float32"))
    return model


def test_a_stratified_bound_on_images_averages_over_the_first_thousand_examples():
    assert tiny_images(bound_timesteps=2).evaluation_defaults()["nll_examples"] == 1000
    assert tiny_images().evaluation_defaults()["nll_examples"] is None  # all T = 4 terms
    assert gaussian_model(20, bound_timesteps=4).evaluation_defaults()["nll_examples"] is None


@pytest.mark.slow  # 10-15 s: eager U-Net steps (the contract checks the export's)
def test_completion_keeps_the_known_pixels_bit_for_bit():
    model = tiny_images()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 17, (2, 8, 8, 1)).astype("float32")
    mask = rng.integers(0, 2, x.shape).astype("float32")
    out = model.complete(x, mask, seed=3, eta=0.5).numpy()
    np.testing.assert_array_equal(out[mask == 1], x[mask == 1])
    assert not np.array_equal(out[mask == 0], x[mask == 0])
    assert np.all((out >= 0) & (out <= 16))
    repainted = model.complete(x, mask, seed=3, eta=0.5, resample=2, jump=2).numpy()
    np.testing.assert_array_equal(repainted[mask == 1], x[mask == 1])
    assert not np.array_equal(repainted, out)
    assert np.all((repainted >= 0) & (repainted <= 16))


def get_schedule_jump(t_T, jump_length, jump_n_sample):
    """RePaint's official schedule (andreas128/RePaint, guided_diffusion/scheduler.py,
    ``get_schedule_jump`` with one sample per step and no second or third jumps),
    rebuilt as its loop: down one step at a time, and at each jump point up
    ``jump_length`` steps, ``jump_n_sample - 1`` times; -1 at the end."""
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, ts = t_T, []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    return ts + [-1]


def test_repaint_schedule_is_the_official_one():
    for num_steps in (1, 2, 5, 13):
        for jump in range(1, num_steps + 1):
            for resample in (1, 2, 3):
                expected = get_schedule_jump(num_steps, jump, resample)
                got = schedules.repaint_schedule(num_steps, resample, jump).numpy()
                np.testing.assert_array_equal(got, expected,
                                              err_msg=f"{num_steps}, {resample}, {jump}")
                jumps = len(range(0, num_steps - jump, jump))
                assert len(got) == num_steps + 1 + 2 * jump * (resample - 1) * jumps
    # the paper's setting: T = 250, j = 10, r = 10
    np.testing.assert_array_equal(schedules.repaint_schedule(250, 10, 10).numpy(),
                                  get_schedule_jump(250, 10, 10))
    traced = tf.function(schedules.repaint_schedule)(tf.constant(13), tf.constant(3),
                                                     tf.constant(4))
    np.testing.assert_array_equal(traced.numpy(), get_schedule_jump(13, 4, 3))


@pytest.fixture(scope="module")
def points_ddpm():
    """A perturbed ddpm on moons, T = 20 (above 16 timesteps its loops run
    compiled), and its complete signature's function and inputs."""
    model = zoo.get("ddpm", dataset="moons", timesteps=20, hidden_units=8, num_hidden=1,
                    ema_decay=0.0)
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    fn, specs = model.serving_signatures()["complete"]
    return model, specs, fn


def test_repaint_keeps_the_known_values_and_resample_one_is_the_replacement_method(
        points_ddpm):
    model, specs, _ = points_ddpm
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2)).astype("float32")
    mask = np.array([[1, 0], [0, 1]] * 3, np.float32)
    replaced = model.complete(x, mask, seed=3, eta=0.5).numpy()
    # the replacement method: the sampler's loop with the known values, no jumps
    seed = model.stateless_seed(3)
    z = tf.random.stateless_normal(x.shape, tf.random.experimental.stateless_fold_in(seed, 0))
    plain = tf.function(lambda z: model.run_sampler(
        z, tf.random.experimental.stateless_fold_in(seed, 1), 20, 0.5, known=(x, mask)))(z)
    np.testing.assert_array_equal(replaced, np.where(mask > 0.5, x, plain.numpy()))
    np.testing.assert_array_equal(model.complete(x, mask, seed=3, eta=0.5, resample=1,
                                                 jump=7).numpy(), replaced)
    repainted = model.complete(x, mask, seed=3, eta=0.5, resample=3, jump=5).numpy()
    np.testing.assert_array_equal(repainted[mask == 1], x[mask == 1])  # bit for bit
    assert np.all(np.isfinite(repainted))
    assert not np.array_equal(repainted[mask == 0], replaced[mask == 0])
    np.testing.assert_array_equal(
        model.complete(x, mask, seed=3, eta=0.5, resample=3, jump=5).numpy(), repainted)
    assert not np.array_equal(
        model.complete(x, mask, seed=4, eta=0.5, resample=3, jump=5).numpy(), repainted)
    assert [s.name for s in specs] == ["x", "mask", "seed", "num_steps", "eta", "resample",
                                       "jump"]  # (the contract checks the export's numbers)


def test_repaint_options_give_clear_errors(points_ddpm):
    model, specs, _ = points_ddpm
    x = np.zeros((2, 2), np.float32)
    mask = np.ones_like(x)
    for options, expected in [(dict(resample=0), r"expected resample in \[1, 1000\], got 0"),
                              (dict(resample=1001), r"expected resample in \[1, 1000\]"),
                              (dict(jump=0), "expected jump >= 1, got 0"),
                              (dict(jump=3, num_steps=2),
                               "expected jump <= num_steps, got jump=3 and num_steps=2"),
                              (dict(jump=21),
                               "expected jump <= num_steps, got jump=21 and num_steps=20")]:
        with pytest.raises(ValueError, match=f"ddpm.complete: {expected}"):
            model.complete(x, mask, seed=0, **options)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['resample'\]"):
        model.sample(2, seed=0, resample=2)  # completion's alone
    # traced, as in the complete signature: graph assertions (the contract's
    # export probes call the signature itself)
    checked = tf.function(lambda *values: model.check_options(
        dict(zip(["num_steps", "eta", "resample", "jump"], values)), "complete")["jump"])
    assert int(checked(np.int32(20), np.float32(1.0), np.int32(3), np.int32(20))) == 20
    for values, expected in [((2, 1.0, 1, 3), "expected jump <= num_steps"),
                             ((20, 1.0, 0, 1), r"expected resample in \[1, 1000\]"),
                             ((20, 1.0, 1, 0), "expected jump >= 1")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"ddpm.complete: {expected}"):
            checked(*(np.asarray(v, s.dtype.as_numpy_dtype) for v, s in zip(values, specs[3:])))


def test_guidance_zero_is_the_conditional_model_and_guidance_mixes_in_the_null_label():
    model = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                    num_classes=3, ema_decay=0.0)  # sampling sees the perturbed weights
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.3 * rng.standard_normal(v.shape).astype("float32"))
    seed = model.stateless_seed(5)
    labels = tf.fill([6], 1)
    x = tf.random.stateless_normal([6, 2], tf.random.experimental.stateless_fold_in(seed, 0))
    step_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    conditional = model.run_sampler(x, step_seed, 4, 1.0, None, labels).numpy()
    np.testing.assert_array_equal(model.sample(6, seed=5, label=1, guidance=0.0).numpy(),
                                  conditional)
    guided = model.sample(6, seed=5, label=1, guidance=2.0).numpy()
    assert not np.allclose(guided, conditional)
    # One step: (1 + w) eps(x, y) - w eps(x, null).
    t = tf.fill([6], 3)
    eps, _ = model.guided_eps(x, t, labels, tf.constant(2.0))
    cond = model.network_output(x, t, labels, averaged=True)
    null = model.network_output(x, t, tf.fill([6], 3), averaged=True)
    np.testing.assert_allclose(eps.numpy(), (3 * cond - 2 * null).numpy(), rtol=1e-5, atol=1e-6)


def test_importance_history_is_in_the_checkpoint(tmp_path):
    model = zoo.get("iddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                    history_length=2)
    model.compile(steps_per_execution=1)
    x = np.random.default_rng(0).standard_normal((64, 2)).astype("float32")
    model.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), epochs=2, verbose=0)
    counts = model.loss_counts.numpy()
    assert counts.sum() > 0 and np.all(counts >= 2)
    p = model.timestep_probabilities().numpy()
    assert not np.allclose(p, 0.25)  # the history decides, no longer uniform
    path = str(tmp_path / "m.keras")
    model.save(path)
    import keras
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.loss_history.numpy(), model.loss_history.numpy())
    np.testing.assert_array_equal(loaded.loss_counts.numpy(), counts)
    np.testing.assert_allclose(loaded.timestep_probabilities().numpy(), p)


@pytest.mark.parametrize("name", ["ddpm", "iddpm"])
def test_bound_on_images_clips_the_predicted_x0_as_the_sampler(name):
    """The bound is that of the model that samples (and the paper's code's
    calc_bpd_loop): on images each predicted x_0 is clipped to [-1, 1], so two
    outputs whose x_0 differ only beyond 1 give the same terms. Unclipped, the
    cosine schedule's last term (abar_{T-1} ~ 2e-9) multiplied an error of the
    noise by ~30 in the mean of a step of variance ~1: hundreds of nats."""
    images = zoo.get(name, dataset="digits", timesteps=4, channels=4, channel_mults=(1,),
                     num_res_blocks=1)
    points = zoo.get(name, dataset="moons", timesteps=4, hidden_units=8, num_hidden=1)
    for model, shape in [(images, (3, 8, 8, 1)), (points, (3, 2))]:
        rng = np.random.default_rng(0)
        x0 = tf.constant(rng.uniform(-1, 1, shape).astype("float32"))
        t = tf.constant([1, 2, 3])
        noise = tf.constant(rng.standard_normal(shape).astype("float32"))
        xt = schedules.q_sample(x0, t, noise, model.const("alphas_cumprod"))
        terms = []
        for beyond in (3.0, 5.0):
            eps = schedules.predict_eps(xt, t, tf.fill(shape, beyond),
                                        model.const("alphas_cumprod"))
            output = tf.concat([eps, tf.zeros(shape)], -1) if model.learned_variance else eps
            terms.append(model.term_at(x0, t, noise, output=output).numpy())
        if model is images:
            np.testing.assert_allclose(terms[0], terms[1], rtol=1e-5)
        else:
            assert np.all(terms[1] > terms[0])
        assert model.clips_x0 == (model is images)


def test_hybrid_loss_draws_uniform_timesteps_and_vlb_the_importance_sampler():
    """The paper's L_hybrid draws t uniformly (its code samples by the loss only with
    L_vlb alone): once the history was full, iddpm drew the hybrid loss's t by
    p_t ~ sqrt(E[L_t^2]) and weighted L_simple by 1 / (T p_t) too."""
    history = np.array([[100.0], [1.0], [1.0], [1.0]], np.float32)
    for objective in ("hybrid", "vlb"):
        chosen = {} if objective == "hybrid" else {"objective": objective}  # the default
        model = zoo.get("iddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                        history_length=1, **chosen)
        model.rng.initialize()
        model.loss_history.assign(history)
        model.loss_counts.assign(np.ones(4, np.float32))
        p = model.timestep_probabilities().numpy()
        np.testing.assert_allclose(p, 0.999 * history[:, 0] / 103 + 0.001 / 4, rtol=1e-6)
        t, weights = (v.numpy() for v in model.draw_training_timesteps(20_000))
        frequencies = np.bincount(t, minlength=4) / len(t)
        expected = np.full(4, 0.25) if objective == "hybrid" else p
        # within 4 standard errors (0.0035 at p = 1/2, n = 20,000)
        np.testing.assert_allclose(frequencies, expected, atol=0.014)
        np.testing.assert_allclose(weights, 1.0 / (4 * expected[t]), rtol=1e-6)
    with pytest.raises(ValueError, match="expected objective one of \\['hybrid', 'vlb'\\]"):
        zoo.get("iddpm", dataset="moons", timesteps=4, objective="kl")


def test_vlb_objective_trains_the_mean_by_the_bound_and_hybrid_freezes_it():
    """The hybrid loss's L_vlb reaches only v (the stop-gradient on the noise); with
    objective="vlb" the loss is the weighted L_vlb alone and trains the noise too."""
    x = np.random.default_rng(0).standard_normal((8, 2)).astype("float32")
    for objective in ("hybrid", "vlb"):
        model = zoo.get("iddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                        objective=objective)
        model.rng.initialize()
        out = model.denoiser_network.net.trainable_weights[-2]  # columns: eps (2), v (2)
        assert out.path.endswith("out/kernel") and out.shape == (9, 4)
        with tf.GradientTape() as tape:
            losses = model.compute_losses(x, training=True)
        grad = tape.gradient(losses["vlb"], out).numpy()
        assert np.abs(grad[:, 2:]).sum() > 0
        assert (np.abs(grad[:, :2]).sum() > 0) == (objective == "vlb")
        expected = losses["vlb"] if objective == "vlb" else losses["mse"] + 0.001 * losses["vlb"]
        np.testing.assert_allclose(losses["loss"].numpy(), expected.numpy(), rtol=1e-5)


def test_importance_draws_follow_their_probabilities_and_compile_with_xla():
    """iDDPM's timesteps come from RandomStream.categorical (inverse distribution
    function): stateless_categorical had no XLA kernel, so a jit_compile step failed."""
    from zoo.nn.random_stream import RandomStream

    weights = np.array([0.0, 1.0, 2.0, 0.0, 5.0, 0.0], np.float32)
    stream = RandomStream(seed=3)
    stream.initialize()
    draws = tf.function(lambda: stream.categorical(weights, 40_000), jit_compile=True)().numpy()
    frequencies = np.bincount(draws, minlength=len(weights)) / len(draws)
    # within 4 standard errors (0.0025 at p = 1/2, n = 40,000); zero weights never
    np.testing.assert_allclose(frequencies, weights / weights.sum(), atol=0.01)
    assert frequencies[[0, 3, 5]].sum() == 0


def test_resizes_compile_with_xla_and_equal_tf_image_resize():
    """The U-Net's nearest upsampling and SR3's bicubic conditioning image: the
    gradient of tf.image.resize's nearest method and its bicubic method have no XLA
    kernel on CPU, so jit_compile steps failed; zoo.nn.resize gives their values."""
    from zoo.nn import resize

    rng = np.random.default_rng(0)
    for size_in, size_out in [((4, 4), (7, 7)), ((4, 4), (8, 8)), ((2, 3), (3, 5)),
                              ((14, 14), (28, 28)), ((3, 3), (3, 3))]:
        x = tf.constant(rng.normal(size=(2,) + size_in + (3,)).astype("float32"))
        np.testing.assert_array_equal(resize.nearest(x, tf.constant(size_out)),
                                      tf.image.resize(x, size_out, "nearest"))
        np.testing.assert_allclose(resize.separable(x, size_out, "bicubic"),
                                   tf.image.resize(x, size_out, "bicubic"), atol=1e-6)
    x = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype("float32"))

    def loss(x, up):
        return tf.reduce_sum(tf.square(up(x)) * tf.range(7.0)[:, None, None])

    for ours, theirs in [(lambda x: resize.nearest(x, tf.shape(x)[1:3] * 2 - 1),
                          lambda x: tf.image.resize(x, (7, 7), "nearest")),
                         (lambda x: resize.separable(x, (7, 7)),
                          lambda x: tf.image.resize(x, (7, 7), "bicubic"))]:
        compiled = tf.function(lambda x: tf.gradients(loss(x, ours), x)[0], jit_compile=True)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(x, theirs)
        np.testing.assert_allclose(compiled(x), tape.gradient(value, x), atol=1e-5)


# ----------------------------------------------------------------- bad input
def test_bad_sampler_options_give_clear_errors():
    model = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1)
    for steps in (0, 5):
        with pytest.raises(ValueError, match="expected num_steps > 0 and num_steps < 5"):
            model.sample(2, seed=0, num_steps=steps)
    with pytest.raises(ValueError, match="expected eta >= 0, got -0.1"):
        model.sample(2, seed=0, eta=-0.1)
    with pytest.raises(ValueError, match="guidance needs a class-conditional model trained "
                                         "with label dropout"):
        model.sample(2, seed=0, guidance=1.0)
    with pytest.raises(ValueError, match="expected num_steps > 0 and num_steps < 5"):
        model.encode(np.zeros((2, 2), np.float32), num_steps=9)
    fn, specs = model.serving_signatures()["sample"]
    graph = tf.function(fn, input_signature=specs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected eta >= 0"):
        graph(tf.constant(2), tf.constant(0), tf.constant(2), tf.constant(-1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected num_steps > 0"):
        graph(tf.constant(2), tf.constant(0), tf.constant(0), tf.constant(1.0))
    conditional = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                          num_classes=3)
    with pytest.raises(ValueError, match=r"expected label > -2 and label < 3"):
        conditional.sample(2, seed=0, label=3)
    unguided = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                       num_classes=3, label_dropout=0.0)
    with pytest.raises(ValueError, match="got num_classes=3 and label_dropout=0.0"):
        unguided.sample(2, seed=0, guidance=1.0)


def test_bad_masks_and_arguments_give_clear_errors():
    model = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1)
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="mask"):
        model.complete(x, np.ones((2, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match="mask"):
        model.complete(x, np.full((2, 2), 0.5, np.float32), seed=0)
    with pytest.raises(ValueError, match="expected timesteps to be an int >= 1, got 0"):
        zoo.get("ddpm", dataset="moons", timesteps=0)
    with pytest.raises(ValueError, match="expected 0 <= label_dropout < 1, got 1.5"):
        zoo.get("ddpm", dataset="moons", timesteps=4, label_dropout=1.5)
    with pytest.raises(ValueError, match="expected history_length to be an int >= 1"):
        zoo.get("iddpm", dataset="moons", timesteps=4, history_length=0)


# ------------------------------------------------------------------ probability flow
def graph_size(fn, *specs):
    """The number of operations of `fn`'s traced graph (a loop's body counts once)."""
    return len(tf.function(fn).get_concrete_function(*specs).graph.get_operations())


def test_the_solver_loop_is_the_unrolled_steps_in_one_step_of_graph():
    """fixed_step_solve's tf.while_loop takes the unrolled steps' arithmetic, with
    a traced graph of one step whatever the steps (also a tensor)."""
    from zoo.flows.ffjord import fixed_step_solve

    def ode(t, state):
        x, y = state
        return -t * x + tf.sin(y), tf.cos(x) * y

    start = (tf.constant([0.3, -1.0]), tf.constant([2.0, 0.5]))
    unrolled = fixed_step_solve(ode, 0.1, start, [1.0], num_steps=7)
    looped = fixed_step_solve(ode, 0.1, start, [1.0], num_steps=7, unrolled=False)
    traced = tf.function(lambda n: fixed_step_solve(ode, 0.1, start, [1.0], num_steps=n,
                                                    unrolled=False))(tf.constant(7))
    for got in (looped, traced):
        np.testing.assert_allclose(got.times.numpy(), unrolled.times.numpy(), rtol=1e-6)
        for a, b in zip(got.states, unrolled.states):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

    def size(n, unrolled):
        return graph_size(lambda: fixed_step_solve(ode, 0.1, start, [1.0], num_steps=n,
                                                   unrolled=unrolled).states)

    assert size(2, False) == size(7, False) and size(2, True) < size(7, True)


def test_probability_flow_traces_one_step_whatever_the_steps():
    """Traced, the probability flow's graph holds one RK4 step (it took more than
    500 s to build at 100 steps when each step was a copy)."""
    model = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1)
    spec = tf.TensorSpec([None, 2], tf.float32)
    sizes = [graph_size(lambda x: model.probability_flow_nll(x, seed=1, num_steps=n), spec)
             for n in (1, 2)]
    assert sizes[0] == sizes[1]


def test_probability_flow_refuses_what_has_no_density_of_the_data():
    with pytest.raises(ValueError, match=r"probability_flow_nll: expected num_steps > 0, got 0"):
        zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8,
                num_hidden=1).probability_flow_nll(np.zeros((1, 2), np.float32), num_steps=0)
    conditional = zoo.get("ddpm", dataset="moons", timesteps=4, hidden_units=8, num_hidden=1,
                          num_classes=2, label_dropout=0.0)
    assert not conditional.has_probability_flow
    assert "probability_flow_examples" not in conditional.evaluation_defaults()
    with pytest.raises(ValueError, match="expected labels: a conditional model trained "
                                         "without label dropout"):
        conditional.probability_flow_nll(np.zeros((1, 2), np.float32))
    conditional.probability_flow_nll(np.zeros((1, 2), np.float32), labels=[1], num_steps=1)
    sr = zoo.get("sr_diffusion", dataset="digits", timesteps=4, channels=4, channel_mults=(1,),
                 num_res_blocks=1)
    assert not sr.has_probability_flow
    with pytest.raises(ValueError, match="not over the data alone"):
        sr.probability_flow_nll(np.zeros((1, 8, 8, 1), np.float32))


@pytest.mark.slow  # 15-35 s: eager U-Net steps and their gradients
def test_image_probability_flow_metrics_are_the_methods_mean():
    """On images: Hutchinson's trace over the first examples, bits/dim over 64 pixels."""
    model = tiny_images()
    x = np.random.default_rng(2).integers(0, 17, (5, 8, 8, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(x).batch(2)
    metrics = model.probability_flow_metrics(data, 3, num_steps=2, seed=4, batch_size=2)
    expected = np.concatenate([model.probability_flow_nll(x[:2], seed=[4, 0], num_steps=2),
                               model.probability_flow_nll(x[2:3], seed=[4, 1], num_steps=2)])
    np.testing.assert_allclose(metrics["nll_nats"], expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["bits_per_dim"], expected.mean() / (64 * math.log(2)),
                               rtol=1e-5)
    assert metrics["num_examples"] == 3 and metrics["num_steps"] == 2
    assert metrics["trace"].startswith("hutchinson") and "uniform" in metrics["dequantization"]
    with pytest.raises(ValueError, match="expected probability_flow_steps to be an int >= 1, "
                                         "got 0"):
        model.probability_flow_metrics(data, 3, num_steps=0)


@pytest.fixture(scope="module")
def tiny_moons_run(tmp_path_factory, data_dir):
    import zoo_cli

    run = tmp_path_factory.mktemp("runs") / "ddpm-moons"
    assert zoo_cli.main(["train", "ddpm", "--dataset", "moons", "--set", "timesteps=4",
                         "--set", "hidden_units=8", "--set", "num_hidden=1",
                         "--steps-per-epoch", "2", "--batch-size", "32", "--epochs", "1",
                         "--out", str(run), "--data-dir", data_dir]) == 0
    return run


def test_evaluate_reports_the_probability_flow_beside_the_bound(tiny_moons_run, data_dir,
                                                                capsys):
    import json

    import zoo_cli
    from zoo import datasets, runs

    capsys.readouterr()
    assert zoo_cli.main(["evaluate", str(tiny_moons_run), "--num-samples", "100",
                         "--batch-size", "1000", "--probability-flow-examples", "50", "--probability-flow-steps", "3",
                         "--data-dir", data_dir]) == 0
    assert "zoo: evaluate: probability flow (3 RK4 steps, exact trace): 50/50 examples" in \
        capsys.readouterr().err
    with open(tiny_moons_run / "metrics.json") as f:
        metrics = json.load(f)
    flow = metrics["probability_flow"]
    assert flow["num_examples"] == 50 and flow["num_steps"] == 3 and flow["trace"] == "exact"
    assert "bound" in metrics and metrics["likelihood"] == "bound"
    model, _, _ = runs.load_checkpoint(tiny_moons_run)
    test, _ = datasets.arrays("moons", "test", data_dir)
    expected = model.probability_flow_nll(test[:50], seed=[0, 0], num_steps=3).numpy()
    np.testing.assert_allclose(flow["nll_nats"], expected.mean(), rtol=1e-5)
    assert flow["bits_per_dim"] == pytest.approx(flow["nll_nats"] / (2 * math.log(2)))
    settings = {**model.evaluation_defaults(), "probability_flow_examples": 0}  # 0: none
    assert "probability_flow" not in model.extra_metrics(None, settings)


@pytest.mark.parametrize("flag, value, expected", [
    ("--probability-flow-examples", "-1", "expected a non-negative integer, got '-1'"),
    ("--probability-flow-examples", "x", "expected a non-negative integer, got 'x'"),
    ("--probability-flow-steps", "0", "expected a positive integer, got '0'"),
])
def test_evaluate_refuses_bad_probability_flow_options(flag, value, expected, tmp_path, capsys):
    import zoo_cli

    assert zoo_cli.main(["evaluate", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error:") and expected in err[0], err
