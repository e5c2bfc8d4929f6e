"""RealNVP: invertibility and log|det J| against a brute-force Jacobian."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.flows.steps.channel_split import ChannelSplit
from zoo.flows.steps.coupling import AffineCoupling, MaskedAffineCouplingBijector
from zoo.flows.steps.squeeze import Squeeze
from zoo.preprocessing import logit_bijector

TINY_2D = dict(hidden_units=8, num_couplings=4)
TINY_IMAGE = dict(hidden_units=4, num_blocks=1, couplings_per_scale=2, final_couplings=2)


def perturb(model, scale=0.1, seed=0):
    """Moves every weight off its (often zero) initialisation."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))
    return model


def brute_force_log_det(fn, x):
    """log|det d fn(x) / dx| per example, from the autodiff Jacobian and slogdet."""
    x = tf.convert_to_tensor(x, tf.float64)
    out = []
    for row in x:
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(row)
            y = fn(tf.cast(row[None], tf.float32))
            y = tf.cast(y, tf.float64)
        jac = tape.jacobian(y, row, experimental_use_pfor=False)
        d = int(np.prod(row.shape))
        sign, logdet = np.linalg.slogdet(jac.numpy().reshape(d, d))
        assert sign != 0, "the Jacobian is singular"
        out.append(logdet)
    return np.array(out)


@pytest.fixture(scope="module")
def moons_model():
    return perturb(zoo.get("realnvp", dataset="moons", **TINY_2D))


@pytest.fixture(scope="module")
def digits_model():
    return perturb(zoo.get("realnvp", dataset="digits", **TINY_IMAGE), scale=0.05)


def digits_batch(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 17, (n, 8, 8, 1)) + rng.uniform(size=(n, 8, 8, 1))).astype("float32")


def test_round_trips_2d(moons_model):
    x = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
    # .numpy() in between: a new tensor, so nothing cached from the first pass is reused.
    np.testing.assert_allclose(moons_model.decode(moons_model.encode(x).numpy()), x, atol=1e-5)
    z = np.random.default_rng(2).standard_normal((16, 2)).astype("float32")
    np.testing.assert_allclose(moons_model.encode(moons_model.decode(z).numpy()), z, atol=1e-5)


def test_round_trips_image(digits_model):
    x = digits_batch()
    np.testing.assert_allclose(digits_model.decode(digits_model.encode(x).numpy()), x, atol=1e-3)
    z = np.random.default_rng(2).standard_normal((3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(digits_model.encode(digits_model.decode(z).numpy()), z, atol=1e-3)


def test_whole_flow_log_det_matches_brute_force_2d(moons_model):
    x = np.random.default_rng(3).standard_normal((4, 2))
    bij = moons_model.bijector
    expected = brute_force_log_det(bij.inverse, x)
    got = bij.inverse_log_det_jacobian(tf.constant(x, tf.float32), event_ndims=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_log_prob_is_change_of_variables_with_the_brute_force_log_det(digits_model):
    x = digits_batch(2)
    bij = digits_model.bijector  # preprocessing (scaling + logit) included
    log_det = brute_force_log_det(bij.inverse, x)
    got = bij.inverse_log_det_jacobian(tf.constant(x), event_ndims=3).numpy()
    np.testing.assert_allclose(got, log_det, rtol=1e-4, atol=1e-2)
    z = digits_model.encode(x).numpy().reshape(2, -1)
    log_normal = -0.5 * np.sum(z**2, 1) - 0.5 * z.shape[1] * np.log(2 * np.pi)
    np.testing.assert_allclose(digits_model.log_prob(x), log_normal + log_det, rtol=1e-4)


@pytest.mark.parametrize("mask_type,shape", [("channel", (2,)), ("checkerboard", (4, 4, 2)),
                                             ("channel", (2, 2, 4))])
def test_coupling_layer_log_det(mask_type, shape):
    layer = AffineCoupling(shape, mask_type, 1, hidden_units=8, num_blocks=1)
    rng = np.random.default_rng(4)
    for v in layer.trainable_weights:
        v.assign(0.3 * rng.standard_normal(v.shape).astype("float32"))
    bij = layer.bijector()
    x = rng.standard_normal((3,) + shape).astype("float32")
    expected = brute_force_log_det(bij.forward, x)
    got = bij.forward_log_det_jacobian(tf.constant(x, tf.float32), event_ndims=len(shape))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    y = bij.forward(tf.constant(x, tf.float32))
    fresh = tf.constant(y.numpy())  # a new tensor: the inverse is computed, not cached
    np.testing.assert_allclose(layer.bijector().inverse(fresh), x, atol=1e-5)
    np.testing.assert_allclose(
        layer.bijector().inverse_log_det_jacobian(fresh, event_ndims=len(shape)), -got,
        rtol=1e-5, atol=1e-5)
    # The cached path (the inverse of this bijector's own output) agrees.
    np.testing.assert_allclose(bij.inverse(y), x, atol=1e-5)
    # Only the unmasked half changes.
    changed = y.numpy() != x
    assert not np.any(changed & (layer.mask > 0)), "the masked half must pass through"
    assert np.any(changed), "the coupling did nothing"


@pytest.mark.parametrize("channels,parity,num_blocks", [(2, 0, 2), (2, 1, 2), (5, 0, 1),
                                                       (5, 1, 1), (3, 1, 0)])
def test_vector_coupling_of_halves_is_the_masked_coupling(channels, parity, num_blocks):
    """On vectors the coupling moves only its free half (eqs. 4-5, its network's
    first layer restricted to the fixed inputs): the same transform and log-dets
    as the masked formula (eq. 9) on the same weights, odd sizes too."""
    layer = AffineCoupling((channels,), "channel", parity, hidden_units=8, num_blocks=num_blocks)
    rng = np.random.default_rng(channels + 10 * parity + 100 * num_blocks)
    for v in layer.trainable_weights:
        v.assign(0.5 * rng.standard_normal(v.shape).astype("float32"))
    masked = MaskedAffineCouplingBijector(layer.mask, layer.shift_and_log_scale, 1)
    assert not isinstance(layer.bijector(), MaskedAffineCouplingBijector)
    x = tf.constant(rng.standard_normal((6, channels)).astype("float32"))
    y = masked.forward(x)
    assert np.abs(y.numpy() - x.numpy()).max() > 1e-2  # the weights move something
    fresh = lambda t: tf.constant(t.numpy())  # noqa: E731  (no cached pass reused)
    np.testing.assert_allclose(layer.bijector().forward(fresh(x)), y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bijector().inverse(fresh(y)), x, rtol=1e-5, atol=1e-5)
    for bij_log_det, masked_log_det, at in (
            ("forward_log_det_jacobian", masked.forward_log_det_jacobian, x),
            ("inverse_log_det_jacobian", masked.inverse_log_det_jacobian, y)):
        np.testing.assert_allclose(getattr(layer.bijector(), bij_log_det)(fresh(at), 1),
                                   masked_log_det(fresh(at), 1), rtol=1e-5, atol=1e-6)


def test_squeeze_and_channel_split():
    x = np.random.default_rng(5).standard_normal((2, 4, 4, 2)).astype("float32")
    sq = Squeeze()
    y = sq.forward(x)
    assert y.shape == (2, 2, 2, 8)
    np.testing.assert_array_equal(Squeeze().inverse(tf.constant(y.numpy())), x)
    np.testing.assert_allclose(brute_force_log_det(sq.forward, x), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected even H and W.*\(3, 4, 2\)"):
        sq.forward(np.zeros((2, 3, 4, 2), "float32"))
    with pytest.raises(ValueError, match=r"expected channels divisible by 4.*\(2, 2, 6\)"):
        sq.inverse(np.zeros((2, 2, 2, 6), "float32"))
    inner = logit_bijector(17)  # any volume-changing bijector
    split = ChannelSplit(inner, num_factored=1)
    x = np.random.default_rng(6).uniform(1, 16, (2, 2, 2, 2)).astype("float32")
    y = split.forward(x)
    np.testing.assert_array_equal(y[..., :1], x[..., :1])
    expected = brute_force_log_det(split.forward, x)
    got = split.forward_log_det_jacobian(x, event_ndims=3)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    fresh = ChannelSplit(logit_bijector(17), num_factored=1)
    np.testing.assert_allclose(fresh.inverse(tf.constant(y.numpy())), x, rtol=1e-5)


def test_density_integrates_to_one_on_2d_grid(moons_model):
    edge = np.linspace(-8, 8, 401)
    xx, yy = np.meshgrid(edge, edge)
    grid = np.stack([xx.ravel(), yy.ravel()], 1).astype("float32")
    density = np.exp(moons_model.log_prob(grid).numpy())
    mass = density.sum() * (edge[1] - edge[0]) ** 2
    assert abs(mass - 1.0) < 0.02, mass


def test_bits_per_dim_counts_the_preprocessing(digits_model):
    x = digits_batch(2)
    z = digits_model.encode(x)
    # log p(x) = log N(z) + log|dz/dx|, where dz/dx includes the 1/17 scaling and logit.
    flow_only = digits_model.flow_bijector().inverse_log_det_jacobian(
        logit_bijector(17).forward(x), event_ndims=3)
    pre = logit_bijector(17).forward_log_det_jacobian(x, event_ndims=3)
    log_normal = -0.5 * tf.reduce_sum(tf.reshape(z, [2, -1]) ** 2, 1) - 32 * np.log(2 * np.pi)
    expected_bpd = -(log_normal + flow_only + pre) / (64 * np.log(2))
    np.testing.assert_allclose(digits_model.bits_per_dim(x), expected_bpd, rtol=1e-5)
    assert np.all(pre.numpy() < 0)  # shrinking 17 levels into (0, 1) lowers the density


def test_sample_temperature_and_errors(moons_model):
    a = moons_model.sample(200, seed=1, temperature=1.0).numpy()
    b = moons_model.sample(200, seed=1, temperature=0.5).numpy()
    assert b.std() < a.std()
    with pytest.raises(ValueError, match="temperature > 0"):
        moons_model.sample(4, temperature=0.0)
    with pytest.raises(ValueError, match="n >= 1"):
        moons_model.sample(0)


def test_image_shape_errors():
    with pytest.raises(ValueError, match="divisible by 4"):
        zoo.get("realnvp", dataset="digits", data_shape=(6, 6, 1), num_scales=3)
    with pytest.raises(ValueError, match="expected shape"):
        zoo.get("realnvp", dataset="digits", **TINY_IMAGE).log_prob(np.zeros((2, 8, 8, 3)))


def test_fit_lowers_nll_on_moons():
    from sklearn.datasets import make_moons

    x = (make_moons(4096, noise=0.1, random_state=0)[0] * 2 + [-1, -0.2]).astype("float32")
    keras.utils.set_random_seed(0)
    model = zoo.get("realnvp", dataset="moons", hidden_units=32, num_couplings=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = -np.mean(model.log_prob(x[:1024]))
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(4096, seed=0).batch(256).repeat()
    model.fit(ds, steps_per_epoch=300, epochs=1, verbose=0)
    after = -np.mean(model.log_prob(x[:1024]))
    assert after < before - 0.5, (before, after)
    assert after < 3.0  # the entropy of this density is about 2.39 nats


def test_log_prob_follows_weight_updates_on_the_same_tensor(moons_model):
    """TFP caches bijector results per tensor: a weight update must not be hidden."""
    x = tf.constant(np.random.default_rng(5).standard_normal((4, 2)).astype("float32"))
    before = moons_model.log_prob(x).numpy()
    weights = [w.numpy() for w in moons_model.trainable_weights]
    for w in moons_model.trainable_weights:
        w.assign_add(tf.fill(w.shape, 0.05))
    try:
        after = moons_model.log_prob(x).numpy()
        fresh = moons_model.log_prob(tf.identity(x)).numpy()
    finally:
        for w, value in zip(moons_model.trainable_weights, weights):
            w.assign(value)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, fresh, rtol=1e-6)


def test_log_prob_runs_each_coupling_network_once(digits_model):
    """TFP asks for inverse and log-det separately: the caches must share one pass."""
    graph = tf.function(digits_model.log_prob).get_concrete_function(
        tf.TensorSpec((None, 8, 8, 1), tf.float32)).graph
    convs_in_graph = sum(op.type == "Conv2D" for op in graph.get_operations())
    conv_layers = sum(isinstance(layer, keras.layers.Conv2D)
                      for layer in digits_model._flatten_layers())
    assert conv_layers > 0 and convs_in_graph == conv_layers


@pytest.mark.parametrize("name,dataset,overrides", [
    ("realnvp", "digits", TINY_IMAGE),  # masked couplings, channel split, squeeze
    ("realnvp", "moons", TINY_2D),  # couplings of halves
    ("nsf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1, num_bins=4)),
    ("maf", "moons", dict(num_layers=2, hidden_units=8, num_hidden=1)),
    ("planar", "moons", dict(num_layers=2)),
])
def test_eager_calls_leave_no_bijector_alive(name, dataset, overrides):
    """TFP's cache of results is global and holds a bijector while a tensor it has
    seen lives: a bijector's own cache must not hold those tensors, or every eager
    log_prob and sample keeps its bijectors (``zoo train``'s probe and sample grid
    grew a digits RealNVP's memory by 1 MB an epoch)."""
    import gc

    from zoo.flows.steps.bijector import LayerBijector

    def alive():
        gc.collect()
        return sum(isinstance(o, LayerBijector) for o in gc.get_objects())

    model = zoo.get(name, dataset=dataset, **overrides)
    x = model.sample(4, seed=0)
    model.log_prob(x)
    before = alive()
    for seed in range(3):
        model.log_prob(model.sample(4, seed=seed))
    assert alive() <= before  # fewer where an earlier test's bijectors went meanwhile
