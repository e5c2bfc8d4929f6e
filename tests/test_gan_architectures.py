"""GAN architectures (zoo/gan/dcgan.py, stylegan.py, biggan.py, diffusion_gan.py) and
controllable generation: each piece against its definition, and each bad input of
issue #32 a clear error (in Python, as one line on the command line, and in the
exported signatures). The contract over each model is in test_contract*.py."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
import zoo_cli as cli

TINY_DCGAN = dict(latent_dim=4, filters=4)


def zoo_command(*argv):
    return cli.main([str(a) for a in argv])


def one_error_line(capsys, expected):
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("zoo: warning:")]
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    assert expected in lines[0], err


def files(folder):
    return sorted(os.path.relpath(os.path.join(r, n), folder)
                  for r, _, names in os.walk(folder) for n in names)


# ------------------------------------------------------------------ interpolation
def test_interpolation_endpoints_are_the_seeds_samples_and_the_path_is_linear():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    strip = np.asarray(model.interpolate(3, 9, steps=5))
    assert strip.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(strip[0], model.sample(1, seed=3)[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], model.sample(1, seed=9)[0], atol=1e-5)
    z = np.asarray(model.interpolation_latents(3, 9, steps=5))
    np.testing.assert_allclose(z[2], (z[0] + z[-1]) / 2, atol=1e-6)


def test_spherical_interpolation_keeps_to_the_great_circle():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    a, b = np.array([1.0, 0, 0, 0], np.float32), np.array([0, 2.0, 0, 0], np.float32)
    z = np.asarray(model.interpolation_latents(a, b, steps=3, spherical=True))
    np.testing.assert_allclose(z[0], a, atol=1e-6)
    np.testing.assert_allclose(z[-1], b, atol=1e-6)
    # halfway: 45 degrees between them, the norm halfway between 1 and 2
    np.testing.assert_allclose(z[1], 1.5 * np.array([1, 1, 0, 0]) / np.sqrt(2), atol=1e-6)


@pytest.mark.parametrize("a, b, expected", [
    (1.5, 2, "got shape ()"),
    ([1.0, 2.0], 2, "got shape (2,)"),
    ("one", 2, "got 'one'"),
    ([np.nan] * 4, 2, "NaN/Inf"),
])
def test_interpolation_endpoints_that_are_neither_seeds_nor_latents_are_refused(a, b, expected):
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    with pytest.raises(ValueError, match="expected an endpoint that is a seed") as e:
        model.interpolate(a, b)
    assert expected in str(e.value)


def test_interpolation_of_an_unconditional_model_refuses_a_label():
    model = zoo.get("dcgan", dataset="digits", **TINY_DCGAN)
    with pytest.raises(ValueError, match="unconditional"):
        model.interpolate(1, 2, label=3)


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("runs") / "dcgan-digits"
    assert zoo_command("train", "dcgan", "--dataset", "digits", "--set", "latent_dim=4",
                       "--set", "filters=4", "--steps-per-epoch", 2, "--batch-size", 16,
                       "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    return run


def test_sample_interpolate_writes_a_strip(dcgan_run, tmp_path):
    out = tmp_path / "strip.png"
    assert zoo_command("sample", dcgan_run, "--interpolate", "3,9", "--steps", 6,
                       "--spherical", "--out", out) == 0
    width, height = Image.open(out).size
    assert width > 5 * height  # one row of six tiles


@pytest.mark.parametrize("argv, expected", [
    (["--interpolate", "3"], "expected two seeds A,B"),
    (["--interpolate", "3,x"], "expected two seeds A,B"),
    (["--interpolate", "1,2,3"], "expected two seeds A,B"),
    (["--interpolate", "3,-4"], "expected two seeds A,B"),
    (["--interpolate", "3,4", "--option", "label=1"], "no sampler option 'label'"),
    (["--steps", "4"], "--steps and --spherical go with --interpolate"),
])
def test_bad_interpolation_on_the_command_line_is_one_line(dcgan_run, argv, expected, capsys):
    before = files(dcgan_run)
    assert zoo_command("sample", dcgan_run, *argv) == 2
    one_error_line(capsys, expected)
    assert files(dcgan_run) == before


# ------------------------------------------------------------------ StyleGAN
TINY_STYLEGAN = dict(latent_dim=4, filters=4, mapping_layers=1)


@pytest.fixture(scope="module")
def stylegan():
    """A tiny StyleGAN the tests only read (building one takes seconds)."""
    return zoo.get("stylegan", dataset="digits", **TINY_STYLEGAN)


def test_modulated_convolution_with_demodulation_keeps_unit_variance():
    from zoo.nn.modulated_conv import ModulatedConv2D

    layer = ModulatedConv2D(16, 3)
    x = tf.random.stateless_normal((512, 7, 7, 8), seed=[1, 2])
    w = 3.0 * tf.random.stateless_normal((512, 5), seed=[3, 4])  # styles far from 1
    y = np.asarray(layer(x, w))[:, 1:-1, 1:-1]  # away from the zero padding
    assert abs(np.mean(y)) < 0.02
    assert np.var(y) == pytest.approx(1.0, abs=0.03)
    plain = np.asarray(ModulatedConv2D(16, 3, demodulate=False)(x, w))
    assert not np.var(plain) == pytest.approx(1.0, abs=0.3)  # what demodulation changes


def test_every_layer_sees_the_mapping_networks_style_and_mixing_swaps_those_after_crossover(
        stylegan):
    model = stylegan
    g = model.generator_network
    z1 = tf.random.stateless_normal((3, 4), seed=[0, 1])
    z2 = tf.random.stateless_normal((3, 4), seed=[0, 2])
    w1, w2 = np.asarray(g.mapping(z1)), np.asarray(g.mapping(z2))
    np.testing.assert_array_equal(np.asarray(g.styles(z1)), np.repeat(w1[:, None], 6, 1))
    for crossover in range(7):
        ws = np.asarray(g.styles(z1, mix_z=z2, crossover=crossover))
        np.testing.assert_array_equal(ws[:, :crossover], np.repeat(w1[:, None], crossover, 1))
        np.testing.assert_array_equal(ws[:, crossover:],
                                      np.repeat(w2[:, None], 6 - crossover, 1))
    # at sampling: crossover 6 is seed 3's image, 0 mix seed 5's style throughout
    one = np.asarray(model.sample(2, seed=3))
    np.testing.assert_array_equal(np.asarray(model.sample(2, seed=3, mix_seed=5, crossover=6)),
                                  one)
    mixed = np.asarray(model.sample(2, seed=3, mix_seed=5, crossover=3))
    assert not np.allclose(mixed, one)
    ws5 = g.styles(tf.random.stateless_normal((2, 4), seed=[5, 0x5EED]))
    noise = tf.random.experimental.stateless_fold_in(model.stateless_seed(3), 2)
    np.testing.assert_allclose(np.asarray(model.sample(2, seed=3, mix_seed=5, crossover=0)),
                               np.asarray(model.to_data_space(g.synthesis(ws5, noise))),
                               atol=1e-5)


def test_truncation_one_is_none_and_zero_is_the_mean_styles_image():
    model = zoo.get("stylegan", dataset="digits", **TINY_STYLEGAN)
    g = model.generator_network
    g.w_avg.assign([0.5, -1.0, 0.25, 2.0])
    np.testing.assert_array_equal(np.asarray(model.sample(4, seed=1, truncation=1.0)),
                                  np.asarray(model.sample(4, seed=1)))
    mean_styles = tf.repeat(g.w_avg[None, None], 6, axis=1)
    noise = tf.random.experimental.stateless_fold_in(model.stateless_seed(1), 2)
    expected = np.asarray(model.to_data_space(g.synthesis(tf.tile(mean_styles, [4, 1, 1]),
                                                          noise)))
    np.testing.assert_allclose(np.asarray(model.sample(4, seed=1, truncation=0.0)), expected,
                               atol=1e-5)
    half = np.asarray(g.styles(tf.ones((1, 4)), truncation=0.5))[0, 0]
    np.testing.assert_allclose(half, 0.5 * (np.asarray(g.w_avg) + np.asarray(
        g.mapping(tf.ones((1, 4))))[0]), atol=1e-6)


@pytest.mark.parametrize("options, expected", [
    (dict(truncation=1.5), "expected truncation in [0, 1], got 1.5"),
    (dict(truncation=-0.1), "expected truncation in [0, 1], got -0.1"),
    (dict(crossover=7), "expected crossover in [0, 6], got 7"),
    (dict(crossover=-1), "expected crossover in [0, 6], got -1"),
    (dict(mix_seed=-2), "expected mix_seed > -2"),
    (dict(label=1), "unknown option(s) ['label']"),
])
def test_bad_sampler_options_are_clear_errors(options, expected, stylegan):
    model = stylegan
    with pytest.raises((ValueError, TypeError)) as e:
        model.sample(2, seed=0, **options)
    assert expected in str(e.value)


def test_bad_sampler_options_fail_inside_the_exported_signature(tmp_path, stylegan):
    model = stylegan
    version = zoo.savedmodels.export(model, str(tmp_path / "export"))
    sample = tf.saved_model.load(str(version)).signatures["sample"]
    good = dict(n=tf.constant(2), seed=tf.constant(1), truncation=tf.constant(0.5),
                mix_seed=tf.constant(4), crossover=tf.constant(2))
    np.testing.assert_allclose(sample(**good)["samples"],
                               model.sample(2, seed=1, truncation=0.5, mix_seed=4, crossover=2),
                               atol=1e-5)
    for name, value, expected in [("truncation", 1.5, "expected truncation in [0, 1]"),
                                  ("truncation", -0.5, "expected truncation in [0, 1]"),
                                  ("crossover", 9, "expected crossover in [0, 6]")]:
        bad = {**good, name: tf.constant(value, good[name].dtype)}
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected.replace("[", r"\[")):
            sample(**bad)


def minibatch_std_reference(x, group_size, num_features):
    """The official code's steps in numpy: example n in group n mod (N / G)."""
    n, h, w, c = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.reshape(g, n // g, h, w, num_features, c // num_features)
    std = np.sqrt(np.mean(np.square(y - y.mean(axis=0)), axis=0) + 1e-8)
    feature = np.tile(std.mean(axis=(1, 2, 4)), (g, 1))  # (N, F)
    return np.concatenate([x, np.broadcast_to(feature[:, None, None], (n, h, w, num_features))],
                          axis=-1)


@pytest.mark.parametrize("batch, group_size, num_features", [
    (8, 4, 1), (8, 4, 2), (6, 4, 1), (3, 4, 1), (7, 4, 1), (1, 4, 1), (12, 3, 4)])
def test_minibatch_std_is_the_official_computation(batch, group_size, num_features):
    from zoo.nn.minibatch_std import MinibatchStd

    x = np.random.default_rng(batch).normal(size=(batch, 3, 2, 4)).astype(np.float32)
    x[batch // 2:] *= 3.0  # groups of another spread
    layer = MinibatchStd(group_size, num_features)
    out = np.asarray(layer(x))
    assert out.shape == (batch, 3, 2, 4 + num_features)
    np.testing.assert_allclose(out, minibatch_std_reference(x, group_size, num_features),
                               rtol=1e-5, atol=1e-6)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, 3, 2, 4))])
    np.testing.assert_allclose(np.asarray(traced(x)), out, rtol=1e-6, atol=1e-7)
    if batch == 8 and num_features == 1:
        # groups {n, n + 2, n + 4, n + 6}: examples 0 and 1 are in different groups
        assert out[0, 0, 0, -1] != out[1, 0, 0, -1]
        np.testing.assert_array_equal(out[::2, ..., -1], np.broadcast_to(out[0, ..., -1],
                                                                         (4, 3, 2)))
    assert np.asarray(layer(x[:0])).shape == (0, 3, 2, 4 + num_features)


def test_minibatch_std_round_trips_and_refuses_bad_settings(tmp_path):
    import keras
    from zoo.nn.minibatch_std import MinibatchStd

    layer = MinibatchStd(2, 2, name="mbstd")
    clone = MinibatchStd.from_config(layer.get_config())
    assert (clone.group_size, clone.num_features, clone.name) == (2, 2, "mbstd")
    inputs = keras.Input((3, 2, 4))
    model = keras.Model(inputs, MinibatchStd(2, 2)(inputs))
    path = str(tmp_path / "mbstd.keras")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(6, 3, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(x)),
                               np.asarray(model(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="expected group_size >= 1"):
        MinibatchStd(0)
    with pytest.raises(ValueError, match="C divisible by num_features=3"):
        MinibatchStd(4, 3)(x)


def test_stylegan_critic_has_the_minibatch_std_unless_turned_off():
    model = zoo.get("stylegan", dataset="digits", **TINY_STYLEGAN)
    critic = model.critic_network
    assert critic.mbstd.group_size == 4 and model.get_config()["mbstd_group_size"] == 4
    y = tf.random.stateless_normal((8, 8, 8, 1), seed=[0, 3])
    scores = np.asarray(model.scores(y))
    # the score of example 0 depends on its group (examples 0, 2, 4, 6), not on the others
    moved = tf.tensor_scatter_nd_update(y, [[2]], 5.0 * y[2:3])
    assert np.asarray(model.scores(moved))[0] != scores[0]
    other = tf.tensor_scatter_nd_update(y, [[1]], 5.0 * y[1:2])
    np.testing.assert_allclose(np.asarray(model.scores(other))[[0, 2, 4, 6]], scores[[0, 2, 4, 6]],
                               rtol=1e-6)
    plain = zoo.get("stylegan", dataset="digits", mbstd_group_size=0, **TINY_STYLEGAN)
    assert plain.critic_network.mbstd is None
    assert plain.critic_network.count_params() < critic.count_params()
    np.testing.assert_allclose(np.asarray(plain.scores(other))[0], np.asarray(plain.scores(y))[0],
                               rtol=1e-6)  # each example on its own
    with pytest.raises(ValueError, match="expected mbstd_group_size >= 0"):
        zoo.get("stylegan", dataset="digits", mbstd_group_size=-1, **TINY_STYLEGAN)


def test_stylegan_trains_with_lazy_r1_and_path_lengths():
    model = zoo.get("stylegan", dataset="digits", regularizer_interval=2,
                    path_length_interval=2, **TINY_STYLEGAN)
    model.compile(**model.training_optimizers(1e-3))
    x = tf.random.stateless_uniform((8, 8, 8, 1), seed=[0, 1], maxval=16.0)
    penalties, means = [], []
    for _ in range(4):  # eagerly: a compiled step takes minutes to trace on 2 cores
        logs = model.train_step(x)
        penalties.append(float(logs["r1_penalty"]))
        means.append(float(model.path_length_mean))
    assert np.all(np.isfinite([float(v) for v in logs.values()]))
    assert penalties[0] > 0  # step 0 is due: the penalty times the interval
    # The running mean of the path lengths moves on the due generator steps (0 and
    # 2) only; it is assigned outside the lazy tf.cond (inside, MirroredStrategy
    # refused the replicas' synchronised assignment).
    assert 0 < means[0] == means[1] != means[2] == means[3]


# ------------------------------------------------------------------ BigGAN
TINY_BIGGAN = dict(latent_dim=6, filters=4, embedding_dim=3)


def test_orthogonal_regularization_is_zero_for_an_orthogonal_kernel():
    from zoo.gan.regularizers import orthogonal_penalty

    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(27, 8)))
    kernel = tf.constant(q.reshape(3, 3, 3, 8), tf.float32)
    assert float(orthogonal_penalty([kernel])) == pytest.approx(0.0, abs=1e-10)
    assert float(orthogonal_penalty([2.0 * kernel])) == pytest.approx(0.0, abs=1e-9)  # any norm
    skewed = kernel + 0.1
    gram = np.asarray(tf.reshape(skewed, [27, 8])).T @ np.asarray(tf.reshape(skewed, [27, 8]))
    assert float(orthogonal_penalty([skewed])) == pytest.approx(
        np.sum(np.square(gram - np.diag(np.diag(gram)))), rel=1e-5)


def test_conditional_batch_norm_of_one_class_is_batch_norm_with_its_gain_and_bias():
    from zoo.nn.conditional_batch_norm import ConditionalBatchNorm
    import keras

    x = tf.random.stateless_normal((16, 4, 4, 5), seed=[0, 1]) * 3.0 + 1.0
    embedding = tf.constant([[0.3, -1.2, 0.7]])  # the one class's
    cbn = ConditionalBatchNorm()
    cbn.build(x.shape, (16, 3))
    cbn.gain.kernel.assign(tf.random.stateless_normal((3, 5), seed=[2, 3]))
    cbn.bias.kernel.assign(tf.random.stateless_normal((3, 5), seed=[4, 5]))
    gain = 1.0 + embedding @ cbn.gain.kernel
    bias = embedding @ cbn.bias.kernel
    bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    bn.build(x.shape)
    bn.gamma.assign(gain[0])
    bn.beta.assign(bias[0])
    c = tf.repeat(embedding, 16, axis=0)
    for training in (True, False):
        np.testing.assert_allclose(cbn(x, c, training=training), bn(x, training=training),
                                   atol=1e-5)


def test_biggan_truncation_one_is_none_and_smaller_psi_shrinks_z():
    model = zoo.get("biggan", dataset="digits", **TINY_BIGGAN)
    np.testing.assert_array_equal(np.asarray(model.sample(3, seed=2, truncation=1.0, label=4)),
                                  np.asarray(model.sample(3, seed=2, label=4)))
    z = tf.random.stateless_normal((3, 6), seed=model.stateless_seed(2))
    labels = tf.fill([3], 4)
    np.testing.assert_allclose(np.asarray(model.sample(3, seed=2, label=4)),
                               np.asarray(model.generate(z, labels)), atol=1e-5)
    zero = np.asarray(model.sample(3, seed=2, truncation=0.0, label=4))
    np.testing.assert_allclose(zero, np.asarray(model.generate(tf.zeros((3, 6)), labels)),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"expected truncation in \[0, 1\], got 2"):
        model.sample(3, seed=2, truncation=2)


@pytest.mark.slow  # eager steps of a spectrally normalised BigGAN: many small ops
def test_biggan_steps_with_orthogonal_regularization_and_its_ema():
    model = zoo.get("biggan", dataset="digits", **TINY_BIGGAN)
    assert model.generator_network.attention is not None and model.ema_decay > 0
    model.compile(**model.training_optimizers(1e-3))
    x = tf.random.stateless_uniform((8, 8, 8, 1), seed=[0, 1], maxval=16.0)
    labels = tf.range(8) % 10
    before = float(model.orthogonal_penalty())
    for _ in range(2):  # eagerly, as above
        logs = model.train_step((x, labels))
    assert np.all(np.isfinite([float(v) for v in logs.values()])) and before > 0
    unconditional = zoo.get("biggan", dataset="digits", num_classes=0, **TINY_BIGGAN)
    assert unconditional.generator_network.embedding is None
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.generate(tf.zeros((2, 6)), labels=[1, 2])


# ------------------------------------------------------------------ Diffusion-GAN
TINY_DIFFUSION = dict(latent_dim=4, filters=4, t_max=10)


def test_diffusion_gan_at_t_zero_is_its_base_gans_step():
    x = tf.random.stateless_uniform((8, 8, 8, 1), seed=[0, 1], maxval=16.0)
    for distance in ("non_saturating", "wasserstein_gp"):
        diffused = zoo.get("diffusion_gan", dataset="digits", t_min=0, distance=distance,
                           **TINY_DIFFUSION)
        base = zoo.get("gan", dataset="digits", latent_dim=4, filters=4, distance=distance)
        # The critics differ by the timestep projection alone, which sees t = 0 here.
        time_weights = diffused.critic_network.time_projection.weights
        shared = {name: [v for v in getattr(diffused, name).weights
                         if all(v is not w for w in time_weights)]
                  for name in ("generator_network", "critic_network")}
        for name, weights in shared.items():
            assert [v.path.split("/", 1)[1] for v in weights] == \
                [v.path.split("/", 1)[1] for v in getattr(base, name).weights]
            getattr(base, name).set_weights([np.asarray(v) for v in weights])
        time_before = [np.asarray(v) for v in time_weights]
        base.rng.state.assign(diffused.rng.state)
        for model in (diffused, base):
            model.compile(**model.training_optimizers(1e-3))
        logs = diffused.train_step(x), base.train_step(x)
        assert float(diffused.diffusion_T) == 0.0
        for key in logs[1]:
            np.testing.assert_allclose(float(logs[0][key]), float(logs[1][key]), rtol=1e-6)
        for name, weights in shared.items():
            for a, b in zip(weights, getattr(base, name).weights):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
        for a, b in zip(time_weights, time_before):
            np.testing.assert_array_equal(np.asarray(a), b)
        # with T > 0 the critic sees other data, at timesteps in [0, T]
        noisy = zoo.get("diffusion_gan", dataset="digits", t_min=10, distance=distance,
                        **TINY_DIFFUSION)
        y = noisy.to_model_space(x, noise=False)
        diffused_y, t = noisy.diffuse(y)
        assert not np.allclose(np.asarray(diffused_y), np.asarray(y))
        assert np.all((np.asarray(t) >= 0) & (np.asarray(t) <= 10))


@pytest.mark.parametrize("t_sampling, T", [("priority", 10.0), ("priority", 3.5),
                                           ("uniform", 10.0)])
def test_diffusion_gan_timesteps_follow_their_distribution(t_sampling, T):
    model = zoo.get("diffusion_gan", dataset="digits", t_sampling=t_sampling, **TINY_DIFFUSION)
    model.diffusion_T.assign(T)
    model.rng.state.assign([0, 7])
    n = 20_000
    t = np.asarray(model.draw_timesteps(n))
    top = int(T)
    weights = np.arange(top + 1.0) if t_sampling == "priority" else np.ones(top + 1)
    # within 0.01 of the probabilities: about 3.5 standard errors at n = 20,000
    np.testing.assert_allclose(np.bincount(t, minlength=top + 1) / n, weights / weights.sum(),
                               atol=0.01)
    assert t.min() >= 0 and t.max() <= top
    if t_sampling == "priority":
        assert t.min() == 1  # p(0) = 0


def test_diffusion_gan_critic_is_told_the_timestep():
    model = zoo.get("diffusion_gan", dataset="digits", **TINY_DIFFUSION)
    critic = model.critic_network
    critic.time_projection.kernel.assign(
        tf.random.stateless_normal(critic.time_projection.kernel.shape, seed=[1, 2]))
    y = tf.random.stateless_normal((4, 8, 8, 1), seed=[0, 3])
    unconditioned = np.asarray(critic(y))
    at = {t: np.asarray(critic(y, timesteps=tf.fill([4], t))) for t in (0, 1, 5, 10)}
    np.testing.assert_array_equal(at[0], unconditioned)  # phi(0) = 0
    for a, b in [(1, 5), (5, 10), (0, 1)]:
        assert np.all(np.abs(at[a] - at[b]) > 1e-6), (a, b)
    mixed = np.asarray(critic(y, timesteps=tf.constant([0, 1, 5, 10])))
    np.testing.assert_allclose(mixed[:, 0], [at[t][i, 0] for i, t in enumerate([0, 1, 5, 10])],
                               rtol=1e-6)  # each example at its own t
    assert model.get_config()["timestep_dim"] == 32
    blind = zoo.get("diffusion_gan", dataset="digits", timestep_dim=0, **TINY_DIFFUSION)
    assert blind.critic_network.time_projection is None
    with pytest.raises(ValueError, match="timesteps given to a critic without timestep"):
        blind.critic_network(y, timesteps=tf.fill([4], 1))


def test_diffusion_gan_grows_t_when_the_critic_overfits_and_checkpoints_it(tmp_path):
    import keras

    # d_target = -1: any r_d is above it, so T grows by t_step every 2 critic steps
    model = zoo.get("diffusion_gan", dataset="digits", t_min=2, d_target=-1.0, t_step=3.0,
                    adjust_interval=2, **TINY_DIFFUSION)
    model.compile(**model.training_optimizers(1e-3))
    x = tf.random.stateless_uniform((8, 8, 8, 1), seed=[0, 1], maxval=16.0)
    values = []
    for _ in range(6):
        model.train_step(x)
        values.append(float(model.diffusion_T))
    assert values == [2.0, 5.0, 5.0, 8.0, 8.0, 10.0]  # clipped at t_max
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert float(keras.saving.load_model(path).diffusion_T) == 10.0


@pytest.mark.parametrize("kwargs, expected", [
    (dict(distance="mmd_gan"), "expected a distance on scores"),
    (dict(t_min=20), "expected 0 <= t_min <= t_max"),
    (dict(d_target=2.0), "d_target in [-1, 1]"),
    (dict(t_sampling="linear"), "expected t_sampling in ['priority', 'uniform'], got 'linear'"),
    (dict(timestep_dim=-1), "expected timestep_dim >= 0"),
])
def test_bad_diffusion_gan_settings_are_named(kwargs, expected):
    with pytest.raises(ValueError) as e:
        zoo.get("diffusion_gan", dataset="digits", **{**TINY_DIFFUSION, **kwargs})
    assert expected in str(e.value)


@pytest.mark.parametrize("options, expected", [
    ({"truncation": 2}, "sampler option truncation: stylegan.sample: expected truncation in "
                        "[0, 1], got 2"),
    ({"crossover": 7}, "expected crossover in [0, 6], got 7"),
    ({"crossover": 1.5}, "sampler option crossover: expected an integer"),
    ({"label": 1}, "has no sampler option 'label'"),
])
def test_bad_sampler_options_of_a_run_are_one_line_errors(options, expected, stylegan):
    # what `zoo sample RUN --option ...` checks before anything is written
    from zoo import runs

    model = stylegan
    with pytest.raises(runs.RunError) as e:
        runs.check_sample_options(model, {"model": "stylegan"}, options)
    assert expected in str(e.value) and "\n" not in str(e.value)
