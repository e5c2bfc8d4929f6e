"""``zoo.validation``: the input checks, each eagerly (numpy, an error at the call)
and traced (a graph assertion, an error when the graph runs), with the messages
the models and their exported signatures give. The models' own cases are in
tests/test_contract.py (every signature, every bad input)."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import validation
from zoo.base import GenerativeModel, SampleOption

ASSERTION = tf.errors.InvalidArgumentError


def traced(fn, *specs):
    """`fn` as a graph whose inputs are known only when it runs, as in an export."""
    return tf.function(fn, input_signature=list(specs), autograph=False)


def positive(x):
    return validation.check(x, lambda a: np.all(a > 0), lambda t: tf.reduce_all(t > 0),
                            "f: expected x > 0", eager_message="f: expected x > 0 (eager)",
                            got=lambda a: f"min {a.min():g}")


def test_check_is_numpy_when_eager_and_an_assertion_when_traced():
    x = tf.constant([1.0, 2.0])
    assert positive(x) is x  # returned as it came
    assert positive(np.array([3.0])).tolist() == [3.0]
    with pytest.raises(ValueError, match=r"^f: expected x > 0 \(eager\), got min -1$"):
        positive(tf.constant([1.0, -1.0]))
    with pytest.raises(TypeError, match=r"^f: no$"):  # no `got`: the message alone
        validation.check(0, lambda v: v > 0, None, "f: no", error=TypeError)
    graph = traced(positive, tf.TensorSpec([None], tf.float32))
    np.testing.assert_array_equal(graph(tf.constant([1.0, 2.0])), [1.0, 2.0])
    with pytest.raises(ASSERTION, match=r"f: expected x > 0\]"):  # the graph's message
        graph(tf.constant([1.0, -1.0]))
    # Inside a traced function a value that is not a tensor is known: numpy.
    with pytest.raises(ValueError, match="got min -2"):
        traced(lambda: positive(np.array([-2.0])))()


def batch(x, **kwargs):
    return validation.check_batch(x, "m.f", (2,), **kwargs)


def test_check_batch_eagerly():
    assert batch(np.array([[1, 2]], np.int64)).dtype == tf.float32
    cases = [
        (None, TypeError, r"expected a float tensor of shape \(batch,\) \+ \(2,\), got NoneType"),
        ((np.zeros((1, 2)), np.zeros(1)), TypeError, r"expected one tensor of shape \(batch,\) "
                                                     r"\+ \(2,\), got a tuple of 2 elements"),
        (np.zeros((1, 2), bool), TypeError, r"expected a float \(or integer\) tensor, got "
                                            "dtype bool"),
        (np.zeros((1, 3)), ValueError, r"expected shape \(batch,\) \+ \(2,\), got \(1, 3\)"),
        (np.array([[np.nan, np.inf]]), ValueError, "expected finite values, got 2 NaN/Inf"),
    ]
    for x, error, message in cases:
        with pytest.raises(error, match=r"^m\.f: " + message):
            batch(x)
    with pytest.raises(ValueError, match=r"^m\.f: expected x in \[0, 3\], got \[-1.0, 1.0\]$"):
        batch(np.array([[-1.0, 1.0]]), value_range=(0, 3))
    with pytest.raises(ValueError, match=r"^m\.f: expected integer pixel levels \(the model is "
                                         r"of the discrete data\), got non-integer values$"):
        batch(np.array([[0.5, 1.0]]), integers=True)
    with pytest.raises(ValueError, match=r"^m\.f: expected finite values in z, got 1 NaN"):
        batch(np.array([[np.nan, 1.0]]), what="z")
    # Values are checked eagerly even for the training step's own input.
    with pytest.raises(ValueError, match="expected finite values"):
        batch(np.array([[np.nan, 1.0]]), values=False)
    assert batch(np.zeros((0, 2)), value_range=(0, 3)).shape == (0, 2)


def test_check_batch_traced():
    def checked(**kwargs):
        return traced(lambda x: batch(x, **kwargs), tf.TensorSpec([None, None], tf.float32))

    good = np.array([[1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(checked(value_range=(0, 3), integers=True)(good), good)
    cases = [
        (np.zeros((1, 3), np.float32), {}, r"expected shape \(batch,\) \+ \(2,\)\]"),
        (np.array([[np.nan, 1]], np.float32), {}, r"expected finite values\]"),
        (np.array([[4, 1]], np.float32), dict(value_range=(0, 3)), r"expected x in \[0, 3\]\]"),
        (np.array([[0.5, 1]], np.float32), dict(integers=True), r"expected integer pixel "
                                                                r"levels\]"),
    ]
    for x, kwargs, message in cases:
        with pytest.raises(ASSERTION, match=r"m\.f: " + message):
            checked(**kwargs)(x)
    # The training step's own input: dtype and static shape only.
    np.testing.assert_array_equal(
        checked(values=False)(np.array([[np.nan, 1]], np.float32)), [[np.nan, 1]])
    with pytest.raises(ValueError, match=r"expected shape \(batch,\) \+ \(2,\), got \(1, 3\)"):
        traced(batch, tf.TensorSpec([1, 3], tf.float32)).get_concrete_function()


def test_validate_count():
    assert validation.validate_count(3, "m.sample") == 3
    assert validation.validate_count(np.int64(2), "m.sample") == 2
    assert validation.validate_count(tf.constant(4), "m.sample") == 4
    for bad in (0, -1, 1.5, "3", None, [2], 2**31):
        with pytest.raises(ValueError, match=r"^m\.sample: expected n >= 1 \(an integer\), "
                                             rf"got {repr(bad).replace('[', '.')}"):
            validation.validate_count(bad, "m.sample")
    graph = traced(lambda n: validation.validate_count(n, "m.sample"),
                   tf.TensorSpec([], tf.int32))
    assert int(graph(tf.constant(0))) == 0  # in a graph, n = 0 gives zero samples
    with pytest.raises(ASSERTION, match=r"m\.sample: expected n >= 0\]"):
        graph(tf.constant(-1))
    with pytest.raises(TypeError, match=r"^m\.sample: expected an integer scalar n, got "
                                        r"float32 of shape \(\)"):
        traced(lambda n: validation.validate_count(n, "m.sample"),
               tf.TensorSpec([], tf.float32)).get_concrete_function()


def test_sample_options_are_checked_numbers():
    option = SampleOption(1.0, above=0.0, below=2.0)
    model = type("Model", (), {"name": "m"})()
    assert option.expected("t") == "t > 0 and t < 2"
    assert SampleOption(0.0).expected("t") == "a finite t"
    assert option.check(model, "t", np.float32(0.5)) == 0.5
    assert isinstance(option.check(model, "t", tf.constant(1)), int)
    for bad in (0.0, 2.0, float("nan"), np.inf):
        with pytest.raises(ValueError, match=rf"^m\.sample: expected t > 0 and t < 2, got "
                                             rf"{bad!r}$"):
            option.check(model, "t", bad)
    with pytest.raises(ValueError, match=r"^m\.sample: expected a finite t, got nan$"):
        SampleOption(0.0).check(model, "t", float("nan"))
    for bad in ("a", None, [1.0], np.zeros(2)):
        with pytest.raises(TypeError, match=r"^m\.sample: expected t to be a number, got "):
            option.check(model, "t", bad)
    graph = traced(lambda t: option.check(model, "t", t), tf.TensorSpec([], tf.float32))
    assert float(graph(tf.constant(1.5))) == 1.5
    with pytest.raises(ASSERTION, match=r"m\.sample: expected t > 0 and t < 2\]"):
        graph(tf.constant(2.0))
    labels = traced(lambda t: SampleOption(-1, "int32", above=-2, below=3).check(model, "l", t),
                    tf.TensorSpec([], tf.int32))
    assert int(labels(tf.constant(-1))) == -1
    with pytest.raises(ASSERTION, match=r"m\.sample: expected l > -2 and l < 3\]"):
        labels(tf.constant(3))


def test_check_labels():
    labels = validation.check_labels([0, 2], 2, 3, "m.f")
    assert labels.dtype == tf.int32 and labels.numpy().tolist() == [0, 2]
    expected = r"^m\.f: expected labels: integers of shape \(batch,\) in \[0, 3\) \(one per " \
               r"example\), got "
    for bad, got in [([0, 3], r"int64 of shape \(2,\) with values in \[0, 3\]$"),
                     ([0], r"int64 of shape \(1,\) with values in \[0, 0\]$"),
                     ([0.0, 1.0], r"float64 of shape \(2,\) with values in \[0.0, 1.0\]$"),
                     ([[0, 1]], r"int64 of shape \(1, 2\) with values in \[0, 1\]$"),
                     (np.zeros(0, int), r"int64 of shape \(0,\)$")]:
        with pytest.raises(ValueError, match=expected + got):
            validation.check_labels(np.asarray(bad), 2, 3, "m.f")
    graph = traced(lambda labels: validation.check_labels(labels, 2, 3, "m.f"),
                   tf.TensorSpec(None, tf.int64))
    assert graph(np.array([1, 2])).numpy().tolist() == [1, 2]
    for bad in ([1, 3], [-1, 0], [1], [[1, 2]], [1, 2, 0]):
        with pytest.raises(ASSERTION, match=r"m\.f: expected labels: .* \(one per example\)\]"):
            graph(np.array(bad))
    with pytest.raises(ValueError, match=r"^m\.f: expected labels: integers of shape "
                                         r"\(batch,\) in \[0, 3\), got float32 of shape"):
        traced(lambda labels: validation.check_labels(labels, 2, 3, "m.f"),
               tf.TensorSpec([None], tf.float32)).get_concrete_function()


def test_check_codes():
    def codes(c):
        return validation.check_codes(c, "m.decode", (2, 2), 5)

    good = np.array([[[0, 1], [4, 2]]], np.int64)
    assert codes(good).dtype == tf.int32 and codes(good).numpy().tolist() == good.tolist()
    assert codes(np.zeros((0, 2, 2), np.uint8)).shape == (0, 2, 2)
    with pytest.raises(ValueError, match=r"^m\.decode: expected code indices in \[0, 5\), got "
                                         r"values in \[1, 5\]$"):
        codes(good + 1)
    with pytest.raises(ValueError, match=r"^m\.decode: expected codes of shape \(batch, 2, 2\), "
                                         r"got shape \(1, 4\)$"):
        codes(np.zeros((1, 4), np.int32))
    with pytest.raises(TypeError, match=r"^m\.decode: expected integer codes of shape \(batch, "
                                        r"2, 2\) \(an integer dtype: .*\), got dtype float32$"):
        codes(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(TypeError, match=r"got int$"):
        codes(3)
    graph = traced(codes, tf.TensorSpec([None, None, None], tf.int32))
    assert graph(good.astype(np.int32)).numpy().tolist() == good.tolist()
    with pytest.raises(ASSERTION, match=r"m\.decode: expected code indices in \[0, 5\)\]"):
        graph(np.full((1, 2, 2), -1, np.int32))
    with pytest.raises(ASSERTION, match=r"m\.decode: expected codes of shape \(batch, 2, 2\)\]"):
        graph(np.zeros((1, 2, 3), np.int32))
    # Given as numpy inside a user's graph: still checked when the graph runs.
    with pytest.raises(ASSERTION, match=r"expected code indices in \[0, 5\)\]"):
        traced(lambda: codes(np.full((1, 2, 2), 7)))()


def test_stateless_seed():
    np.testing.assert_array_equal(validation.stateless_seed(3, "m"), [3, 0x5EED])
    np.testing.assert_array_equal(validation.stateless_seed([1, 2], "m"), [1, 2])
    assert validation.stateless_seed(None, "m").shape == (2,)
    for bad in (1.5, 2**31, [1, 2, 3], "1"):
        with pytest.raises(ValueError, match=r"^m: expected seed to be an integer in "
                                             r"\[-2\*\*31 \+ 1, 2\*\*31 - 1\] \(or two\), or "
                                             r"None, got "):
            validation.stateless_seed(bad, "m")


class Doubler:
    """A stand-in for a model: ``on_batches`` reads its ``data_shape``."""

    data_shape = (2,)
    calls = []

    @validation.on_batches("data")
    def double(self, x, labels=None):
        self.calls.append((tuple(x.shape), None if labels is None else tuple(labels.shape)))
        return 2 * tf.cast(x, tf.float32)


def test_on_batches_gives_an_empty_result_for_an_empty_batch():
    model = Doubler()
    assert model.double(np.zeros((0, 2)), np.zeros(0, np.int32)).shape == (0, 2)
    assert model.calls[-1] == ((1, 2), (1,))  # run on one example of zeros
    np.testing.assert_array_equal(model.double(np.ones((3, 2))), 2 * np.ones((3, 2)))
    graph = traced(model.double, tf.TensorSpec([None, 2], tf.float32))
    assert graph(np.zeros((0, 2), np.float32)).shape == (0, 2)
    np.testing.assert_array_equal(graph(np.ones((1, 2), np.float32)), [[2, 2]])
    # Another shape goes to the method as it came, which checks it.
    assert model.double(np.zeros((0, 3))).shape == (0, 3)
    assert model.calls[-1] == ((0, 3), None)


def test_the_model_checks_through_zoo_validation():
    """``GenerativeModel``'s checks are these functions, with the model's name."""
    model = zoo.get("realnvp", dataset="moons", num_couplings=1, hidden_units=4)
    assert isinstance(model, GenerativeModel) and model.name == "realnvp"
    with pytest.raises(ValueError, match=r"^realnvp\.f: expected shape \(batch,\) \+ \(2,\)"):
        model.check_batch(np.zeros((1, 3)), "f", (2,))
    with pytest.raises(ValueError, match=r"^realnvp\.nll: expected finite values, got 1 NaN"):
        model.nll(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"^realnvp\.sample: expected n >= 1"):
        model.sample(0)
    with pytest.raises(ValueError, match=r"^realnvp\.sample: expected temperature > 0, got -1"):
        model.sample(1, temperature=-1)
    with pytest.raises(ValueError, match=r"^realnvp: expected seed"):
        model.sample(1, seed=1.5)


def test_check_int_takes_ints_from_the_bound_and_rejects_bools_floats_and_none():
    assert validation.check_int(np.int64(3), "k", "m") == 3
    assert validation.check_int(0, "k", "m", at_least=0) == 0
    assert validation.check_int(None, "k", "m", none=True) is None
    for value in (True, 2.0, None, 0):
        with pytest.raises(ValueError, match=rf"^m: expected k to be an int >= 1, got {value!r}$"):
            validation.check_int(value, "k", "m")
    with pytest.raises(KeyError, match="k to be an int >= 2 or None, got 1"):
        validation.check_int(1, "k", "m", at_least=2, none=True, error=KeyError)
