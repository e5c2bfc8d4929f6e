"""The autoregressive models (PixelCNN, Gated PixelCNN, PixelCNN++): causal order
(raster, then channel), receptive fields and blind spots, normalisation, the
compiled sampler against a plain loop, completion, bad input."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.autoregressive.base import AutoregressiveModel
from zoo.distributions import Categorical, DiscretizedLogisticMixture

# Tiny settings of each model (filters divisible by 3, for colour data).
TINY = {
    "pixelcnn": dict(filters=6, num_blocks=1, output_units=6, first_kernel=3),
    "gated_pixelcnn": dict(filters=6, num_layers=2, output_units=6),
    "pixelcnn_pp": dict(filters=6, num_resnet=1, num_scales=2, num_components=2, dropout=0.0),
}
MODELS = list(TINY)
SLOW = pytest.mark.slow


def some_slow(names, slow):
    """`names` as parameters, those in `slow` marked slow (the default suite keeps
    one model per check where the others add only time)."""
    return [pytest.param(n, marks=SLOW if n in slow else ()) for n in names]


def make(name, data_shape, num_levels, seed=0, **overrides):
    """The model `name` built tiny on `data_shape`, its weights moved off their
    initial values (zero biases would hide dependencies)."""
    model = zoo.registry.entry(name).cls(data_shape=data_shape, num_levels=num_levels,
                                         **{**TINY[name], **overrides})
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + 0.2 * rng.standard_normal(v.shape).astype("float32"))
    return model


def levels(shape, num_levels, seed=0):
    return np.random.default_rng(seed).integers(0, num_levels, shape).astype("float32")


def test_the_family_contract():
    for name in MODELS:
        entry = zoo.registry.entry(name)
        assert issubclass(entry.cls, AutoregressiveModel)
        assert entry.family == "autoregressive" and entry.cls.likelihood == "discrete"
        assert {"digits", "fashion_mnist"} <= set(entry.presets)


# Every model on colour data by default (type A's centre then masks the channels
# before; on grey data it masks the pixel), and on grey data PixelCNN's.
@pytest.mark.parametrize("name, data_shape", [
    pytest.param(name, shape, id=f"{name}-{kind}",
                 marks=SLOW if kind == "grey" and name != "pixelcnn" else ())
    for name in MODELS for kind, shape in (("grey", (4, 4, 1)), ("colour", (4, 4, 3)))])
def test_perturbing_a_dimension_changes_no_earlier_conditional(name, data_shape):
    """Dimension j (raster order, then channel) changed: every conditional
    before j is the same, bit for bit; some from j on change."""
    num_levels = 5
    model = make(name, data_shape, num_levels)
    x = levels((1,) + data_shape, num_levels)
    size = int(np.prod(data_shape))
    batch = np.repeat(x, size + 1, axis=0).reshape(size + 1, size)
    for j in range(size):  # example j + 1 has dimension j changed
        batch[j + 1, j] = (batch[j + 1, j] + 1 + j % 3) % num_levels
    log_probs = model.conditional_log_probs(batch.reshape((size + 1,) + data_shape)).numpy()
    assert log_probs.shape == (size + 1, size)
    for j in range(size):
        changed = np.nonzero(log_probs[j + 1] != log_probs[0])[0]
        assert changed.size and changed.min() >= j, (j, changed)


def field(model, row, col, shape=(10, 10, 1)):
    """Whether each pixel reaches the parameters of pixel (row, col): a nonzero
    gradient for some example of a random batch (a ReLU off for one example
    does not close a path for all)."""
    x = tf.constant(levels((16,) + shape, model.num_levels, seed=1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(model.params(x)[:, row, col])
    return np.any(tape.gradient(out, x).numpy() != 0, axis=(0, 3))


def test_gated_pixelcnn_has_no_blind_spot():
    """Every pixel before (r, c) in its receptive field reaches it: the L rows
    above across their whole width, and the pixels to its left in its row."""
    layers, r, c = 3, 6, 5
    model = make("gated_pixelcnn", (10, 10, 1), 4, num_layers=layers)
    expected = np.zeros((10, 10), bool)
    expected[r - layers:r, c - layers:c + layers + 1] = True
    expected[r, c - layers:c] = True
    np.testing.assert_array_equal(field(model, r, c), expected)


def test_pixelcnn_blind_spot_is_above_and_to_the_right():
    """PixelCNN misses the pixels above and to the right of the diagonal
    (van den Oord et al. 2016b, Fig. 1): with a k x k mask-A layer and n 3x3
    mask-B layers, offset (dr < 0, dc) reaches the pixel only if
    dc <= -dr + k // 2 - 1, though the field spans dc up to k // 2 + n."""
    k, n, r, c = 5, 2, 6, 5
    model = make("pixelcnn", (10, 10, 1), 4, first_kernel=k, num_blocks=n)
    expected = np.zeros((10, 10), bool)
    for dr, dc in itertools.product(range(-(k // 2 + n), 1), range(-(k // 2 + n), k // 2 + n + 1)):
        inside = 0 <= r + dr < 10 and 0 <= c + dc < 10
        if inside and (dr < 0 and dc <= -dr + k // 2 - 1 or dr == 0 and dc < 0):
            expected[r + dr, c + dc] = True
    got = field(model, r, c)
    np.testing.assert_array_equal(got, expected)
    blind = [(r - 1, c + dc) for dc in range(k // 2 + 1, k // 2 + n + 1)]
    assert not any(got[p] for p in blind)  # before (r, c) in raster order, and unseen,
    assert all(got[r - 2, col] for _, col in blind[:1])  # while the row above sees there


@pytest.mark.parametrize("name", MODELS)
def test_probabilities_of_every_2x2_binary_image_sum_to_one(name):
    model = make(name, (2, 2, 1), 2)
    every = np.array(list(itertools.product([0.0, 1.0], repeat=4)), "float32")
    total = np.exp(model.log_prob(every.reshape(16, 2, 2, 1)).numpy().astype("float64")).sum()
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def naive_samples(model, n, seed, temperature, labels=None):
    """Sampling as a plain Python loop: the whole network once per dimension,
    each drawn from its tempered conditional by its own uniforms of the
    observation model's noise, drawn from `seed` before the loop."""
    x = np.zeros((n,) + model.data_shape, "float32")
    obs = model.observation_model
    noise = obs.noise([n, model.event_size], seed)
    for i in range(model.event_size):
        params = model.ordered_params(model.params(tf.constant(x), labels))[:, i]
        drawn = obs.sample_from_noise(obs.temper(params, temperature), noise[:, i:i + 1])
        x.reshape(n, -1)[:, i] = drawn.numpy()[:, 0]
    return x


# The conditional gated PixelCNN's sampler is checked by default below.
@pytest.mark.parametrize("name", some_slow(MODELS, {"gated_pixelcnn", "pixelcnn_pp"}))
def test_compiled_sampler_equals_a_python_loop(name):
    model = make(name, (4, 2, 1), 6, seed=2)
    samples = model.sample(3, seed=5, temperature=0.8).numpy()
    seed = model.stateless_seed(5)
    np.testing.assert_array_equal(samples, naive_samples(model, 3, seed, 0.8))
    # one compiled loop, under XLA where the model's xla_sampling says so
    assert ("generate" if model.xla_sampling else "generate/graph") in model._xla.functions
    assert np.all(samples == np.round(samples)) and samples.min() >= 0 and samples.max() <= 5


def test_conditional_sampler_draws_the_label_it_is_given():
    model = make("gated_pixelcnn", (3, 4, 1), 6, num_classes=3)
    samples = model.sample(2, seed=5, label=2).numpy()
    seed = model.stateless_seed(5)
    np.testing.assert_array_equal(samples, naive_samples(model, 2, seed, 1.0,
                                                         tf.constant([2, 2])))


@pytest.mark.parametrize("name", some_slow(MODELS, {"pixelcnn", "pixelcnn_pp"}))
def test_completion_keeps_the_known_values_bit_for_bit(name):
    model = make(name, (4, 4, 1), 5)
    x = levels((3, 4, 4, 1), 5, seed=3)
    mask = np.zeros_like(x)
    mask[:, :2] = 1.0  # the top half known
    mask[0, 3, 3] = 1.0
    done = model.complete(x, mask, seed=4).numpy()
    np.testing.assert_array_equal(done[mask == 1], x[mask == 1])
    assert np.all(done == np.round(done)) and done.min() >= 0 and done.max() <= 4
    # Nothing known: the samples of the same seed.
    np.testing.assert_array_equal(model.complete(x, np.zeros_like(x), seed=4).numpy(),
                                  model.sample(3, seed=4).numpy())


# Gated PixelCNN by default (its compile is the shortest, 8 s); PixelCNN++'s mixture (two
# uniforms a value) in the slow suite, and under XLA in test_distributions.py by default.
@pytest.mark.parametrize("name", some_slow(MODELS, {"pixelcnn", "pixelcnn_pp"}))
def test_the_xla_loop_draws_what_the_plain_graph_loop_draws(name):
    """With ``xla_sampling`` on (off by default: at zoo sample's 64 images XLA
    lost, bench/autoregressive_sampling.py), the loop runs under XLA and draws the
    plain graph's levels for the same seed, in sampling and completion: the same
    uniforms, parameters equal to float rounding (fixed weights here; a uniform
    within rounding of a boundary of its inverse CDF would draw the next level)."""
    keras.utils.set_random_seed(3)
    model = make(name, (4, 2, 1), 6, seed=1)
    x, mask = levels((2, 4, 2, 1), 6, seed=2), np.zeros((2, 4, 2, 1), np.float32)
    mask[:, :2] = 1.0
    plain = model.sample(3, seed=5, temperature=0.8).numpy()
    completed = model.complete(x, mask, seed=4).numpy()
    model.xla_sampling = True
    np.testing.assert_array_equal(model.sample(3, seed=5, temperature=0.8).numpy(), plain)
    np.testing.assert_array_equal(model.complete(x, mask, seed=4).numpy(), completed)
    assert set(model._xla.functions) == {"generate/graph", "generate"}


def test_temperature_tempers_each_observation_model():
    params = tf.constant(np.random.default_rng(0).standard_normal((2, 12)), tf.float32)
    mixture = DiscretizedLogisticMixture(17, num_components=4)
    categorical = Categorical(12)
    for obs in (mixture, categorical):
        np.testing.assert_array_equal(obs.temper(params, 1.0).numpy(), params.numpy())
    np.testing.assert_allclose(categorical.temper(params, 0.5).numpy(), 2 * params.numpy())
    logits, loc, log_scale = mixture.components(mixture.temper(params, 0.5))
    logits0, loc0, log_scale0 = mixture.components(params)
    np.testing.assert_allclose(logits.numpy(), 2 * logits0.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(loc.numpy(), loc0.numpy())
    np.testing.assert_allclose(log_scale.numpy(), log_scale0.numpy() + np.log(0.5), rtol=1e-6)


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "signature"])
def test_bad_input_gives_clear_errors(traced):
    """Values that are not integer levels or outside them, and a mask of the
    wrong shape: each a clear error, eagerly and inside the serving signatures'
    graphs (graph assertions; the complete signature's mask is among the
    contract's export probes, test_contract_processes.py)."""
    model = make("pixelcnn", (4, 4, 1), 5)
    signatures = model.serving_signatures()

    graphs = {}

    def call(sig, *args):
        fn, specs = signatures[sig]
        if traced:
            if sig not in graphs:
                graphs[sig] = tf.function(fn, input_signature=specs)
            fn = graphs[sig]
            args = [tf.constant(a, s.dtype) for a, s in zip(args, specs)]
        return fn(*args)

    errors = (ValueError, tf.errors.InvalidArgumentError)
    x = levels((2, 4, 4, 1), 5)
    call("log_prob", x)
    for sig in ("log_prob", "conditional_log_probs"):
        with pytest.raises(errors, match="expected integer pixel levels"):
            call(sig, np.minimum(x, 3.0) + 0.5)
        with pytest.raises(errors, match=r"expected raw pixel values in \[0, 4\]"):
            call(sig, x + 5.0)
    if traced:  # the complete signature's mask: the contract's export probes
        return
    mask = np.ones_like(x)
    call("complete", x, mask, 3, 1.0)
    with pytest.raises(errors, match="expected integer pixel levels"):
        call("complete", np.minimum(x, 3.0) + 0.25, mask, 3, 1.0)
    with pytest.raises(ValueError, match=r"expected mask of shape \(batch, 4, 4, 1\)"):
        model.complete(x, np.ones((2, 4, 3, 1), "float32"), seed=3)
    with pytest.raises(errors, match="expected a mask of x.{0,2}s shape"):
        call("complete", x, mask[:1], 3, 1.0)
    with pytest.raises(errors, match="expected a mask of 0"):
        call("complete", x, mask * 0.5, 3, 1.0)


def test_bad_settings_give_clear_errors():
    with pytest.raises(ValueError, match=r"expected data_shape \(H, W, C\)"):
        zoo.get("pixelcnn", data_shape=(16,), num_levels=4)
    with pytest.raises(ValueError, match="expected an odd first_kernel"):
        zoo.get("pixelcnn", dataset="digits", first_kernel=4)
    with pytest.raises(ValueError, match="expected num_levels >= 2"):
        zoo.get("gated_pixelcnn", data_shape=(4, 4, 1), num_levels=1)
    with pytest.raises(ValueError, match="expected filters divisible by the data's 3 channels"):
        zoo.get("gated_pixelcnn", data_shape=(4, 4, 3), num_levels=4, filters=4)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*\\(num_scales - 1\\) = 4"):
        zoo.get("pixelcnn_pp", data_shape=(6, 6, 1), num_levels=4, num_scales=3)
    with pytest.raises(ValueError, match="expected 0 <= dropout < 1"):
        zoo.get("pixelcnn_pp", dataset="digits", dropout=1.0)
    with pytest.raises(ValueError, match="cannot be class-conditional"):
        zoo.get("pixelcnn", dataset="digits", num_classes=10)
