"""Input checks at the public boundary of the models (docs/architecture.md).

Plain functions. Each takes the prefix of its messages (``"<model>.<method>"``)
and says in them what was expected. Dtypes and static shapes are checked
whenever a function runs, also while it is traced. Values (finite, in range,
integer levels, class labels, code indices, counts) are checked by :func:`check`:
with numpy when running eagerly, and with a graph assertion inside traced
functions, such as the exported signatures, whose inputs are known only at run
time.
"""

import functools

import numpy as np
import tensorflow as tf

INT32_MAX = 2**31 - 1


def traced(value):
    """Whether `value` is a graph tensor: its values exist only when the graph runs."""
    return tf.is_tensor(value) and not tf.executing_eagerly()


def asserted(x, ok, message):
    """`x`, computed only after the graph assertion `ok` holds (else `message`)."""
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(x)


def check(x, holds, asserts, message, eager_message=None, got=None, error=ValueError):
    """`x`, once one condition on its values holds.

    When `x` is a graph tensor (:func:`traced`), the condition is the boolean
    tensor ``asserts(x)``, and the returned `x` is computed after a graph
    assertion of it, which fails with `message`. Otherwise it is ``holds(values)``
    of `x`'s values as a numpy array; if false, `error` is raised with
    `eager_message` (default `message`) and, when given, ``", got " +
    got(values)``: what the values were. `x` is returned as it came. A caller
    that knows which case it is in may leave the other condition None.
    """
    if traced(x):
        return asserted(x, asserts(x), message)
    values = np.asarray(x.numpy() if tf.is_tensor(x) else x, dtype=object if x is None else None)
    if not holds(values):
        text = eager_message or message
        raise error(text if got is None else f"{text}, got {got(values)}")
    return x


def check_batch(x, prefix, event_shape, value_range=(-np.inf, np.inf), what="x",
                integers=False, values=True):
    """A batch of shape ``(batch,) + event_shape`` in `value_range`, as float32.

    Dtype and static shape are checked whenever this runs (also while tracing).
    Values (finiteness, range, integers) are checked with numpy when running
    eagerly, and inside traced graphs (exported signatures) with graph
    assertions, together with the dynamic shape, unless `values` is False (the
    training step's own input). `what` names the batch in messages (``"x"``,
    ``"raw pixel values"`` and ``"symbols"`` are data; others, like ``"z"``, are named).
    """
    data = what in ("x", "raw pixel values", "symbols")
    expected = (f"shape (batch,) + {tuple(event_shape)}" if data else
                f"{what} of shape (batch, {', '.join(map(str, event_shape))})")
    of = "" if data else f" in {what}"
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{prefix}: expected a float tensor of {expected}, "
                        f"got {type(x).__name__}")
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float, list)):
        raise TypeError(
            f"{prefix}: expected one tensor of {expected}, got a {type(x).__name__} of "
            f"{len(x)} elements (labels? use a pipeline of images only)"
        )
    if not tf.is_tensor(x):
        x = np.asarray(x)
    dtype = tf.as_dtype(x.dtype)
    if not (dtype.is_floating or dtype.is_integer) or dtype.is_bool:
        kind = "a float (or integer) tensor" if data else f"a float tensor {what}"
        raise TypeError(f"{prefix}: expected {kind}, got dtype {dtype.name}")
    shape = tuple(x.shape)
    if len(shape) != len(event_shape) + 1 or any(
        s is not None and s != d for s, d in zip(shape[1:], event_shape)
    ):
        raise ValueError(f"{prefix}: expected {expected}, got {shape}")
    x = tf.cast(x, tf.float32)
    if traced(x) and not values:
        return x
    low, high = value_range
    if traced(x):  # the dynamic shape; eagerly, the static one is the shape
        rank = len(event_shape) + 1
        x = asserted(x, tf.cond(tf.equal(tf.rank(x), rank),
                                lambda: tf.reduce_all(tf.equal(tf.shape(x)[1:], event_shape)),
                                lambda: tf.constant(False)),
                     f"{prefix}: expected {expected}")
    x = check(x, lambda a: np.all(np.isfinite(a)), lambda t: tf.reduce_all(tf.math.is_finite(t)),
              f"{prefix}: expected finite values{of}",
              got=lambda a: f"{int(np.sum(~np.isfinite(a)))} NaN/Inf entries")
    if np.isfinite(low) or np.isfinite(high) or not traced(x):
        x = check(x, lambda a: not a.size or (a.min() >= low and a.max() <= high),
                  lambda t: tf.reduce_all((t >= low) & (t <= high)),
                  f"{prefix}: expected {what} in [{low:g}, {high:g}]",
                  got=lambda a: f"[{a.min()}, {a.max()}]")
    if integers:
        levels = "symbols" if what == "symbols" else "pixel levels"
        x = check(x, lambda a: np.array_equal(a, np.round(a)),
                  lambda t: tf.reduce_all(tf.equal(t, tf.round(t))),
                  f"{prefix}: expected integer {levels}",
                  eager_message=f"{prefix}: expected integer {levels} (the model is of "
                                "the discrete data)",
                  got=lambda a: "non-integer values")
    return x


def check_mask(mask, x, prefix, event_shape):
    """A completion mask for the batch `x`: `x`'s shape, every value 0 (generate)
    or 1 (keep), as float32; checked eagerly, or by graph assertions."""
    mask = check_batch(mask, prefix, event_shape, (0.0, 1.0), what="mask")
    mask = check(mask, lambda a: np.all((a == 0) | (a == 1)),
                 lambda t: tf.reduce_all((t == 0.0) | (t == 1.0)),
                 f"{prefix}: expected a mask of 0 (generate) and 1 (keep) only",
                 got=lambda a: "other values")
    return check(mask, lambda a: a.shape[0] == np.shape(x)[0],
                 lambda t: tf.equal(tf.shape(t)[0], tf.shape(x)[0]),
                 f"{prefix}: expected a mask of x's shape (one per example)",
                 got=lambda a: f"{a.shape[0]} masks for {np.shape(x)[0]} examples")


def validate_count(n, prefix):
    """A sample count: an int >= 1 (eager), or an int tensor checked >= 0 in graphs."""
    if traced(n):
        if not n.dtype.is_integer or n.shape.rank not in (0, None):
            raise TypeError(f"{prefix}: expected an integer scalar n, got "
                            f"{n.dtype.name} of shape {n.shape}")
        n = tf.cast(n, tf.int32)
    n = check(n, lambda v: v.ndim == 0 and v.dtype.kind in "iu" and 1 <= int(v) <= INT32_MAX,
              lambda t: t >= 0, f"{prefix}: expected n >= 0",
              eager_message=f"{prefix}: expected n >= 1 (an integer)", got=lambda _: repr(n))
    return n if traced(n) else int(np.asarray(n.numpy() if tf.is_tensor(n) else n))


def check_int(value, name, prefix, at_least=1, none=False, hint="", error=ValueError):
    """A Python (or numpy) int setting `name` >= `at_least` (None too where
    `none`), returned as an int (or None); else `error` ("{prefix}: expected
    {name} to be an int >= {at_least}{hint}, got ..."). Booleans are not ints here."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < at_least:
        raise error(f"{prefix}: expected {name} to be an int >= {at_least}"
                    + (" or None" if none else "") + f"{hint}, got {value!r}")
    return int(value)


def expected_number(name, above=None, below=None, at_least=None, at_most=None):
    """What the values of a number `name` bounded by `above` and `below` (and
    `at_least`, `at_most`, bounds it may equal) must be, for error messages."""
    if at_least is not None and at_most is not None and above is None and below is None:
        return f"{name} in [{at_least:g}, {at_most:g}]"
    bounds = [f"{name} > {above:g}"] if above is not None else []
    bounds += [f"{name} >= {at_least:g}"] if at_least is not None else []
    bounds += [f"{name} < {below:g}"] if below is not None else []
    bounds += [f"{name} <= {at_most:g}"] if at_most is not None else []
    return " and ".join(bounds) or f"a finite {name}"


def check_number(value, name, prefix, dtype="float32", above=None, below=None, at_least=None,
                 at_most=None):
    """A scalar `name` (a ``SampleOption``) greater than `above`, smaller than
    `below`, at least `at_least` and at most `at_most` (None: no bound): a finite
    Python number (eager), or a tensor of `dtype` checked within its bounds by a
    graph assertion."""
    expected = expected_number(name, above, below, at_least, at_most)
    if traced(value):
        value = tf.cast(value, dtype)

        def within(t):
            ok = tf.constant(True)
            if above is not None:
                ok = tf.logical_and(ok, tf.greater(t, tf.cast(above, dtype)))
            if below is not None:
                ok = tf.logical_and(ok, tf.less(t, tf.cast(below, dtype)))
            if at_least is not None:
                ok = tf.logical_and(ok, tf.greater_equal(t, tf.cast(at_least, dtype)))
            if at_most is not None:
                ok = tf.logical_and(ok, tf.less_equal(t, tf.cast(at_most, dtype)))
            return ok

        return check(value, None, within, f"{prefix}: expected {expected}")
    array = np.asarray(value.numpy() if tf.is_tensor(value) else value,
                       dtype=object if value is None else None)
    if array.ndim != 0 or array.dtype.kind not in "iuf":
        raise TypeError(f"{prefix}: expected {name} to be a number, got {value!r}")
    number = array.item()
    return check(number, lambda v: np.isfinite(v) and (above is None or v > above)
                 and (below is None or v < below) and (at_least is None or v >= at_least)
                 and (at_most is None or v <= at_most), None, f"{prefix}: expected {expected}",
                 got=lambda _: repr(value))


def check_labels(labels, batch, num_classes, prefix):
    """`labels` as int32 (batch,) in ``[0, num_classes)``, one per example of a
    batch of `batch` examples (an int, or a scalar tensor in graphs): checked
    eagerly, or by a graph assertion; else a clear error."""
    expected = f"labels: integers of shape (batch,) in [0, {num_classes})"
    message = f"{prefix}: expected {expected} (one per example)"
    if traced(labels):
        if not labels.dtype.is_integer or labels.shape.rank not in (1, None):
            raise ValueError(f"{prefix}: expected {expected}, got "
                             f"{labels.dtype.name} of shape {labels.shape}")
        labels = tf.cast(labels, tf.int32)
        batch = tf.cast(batch, tf.int32)

        def one_per_example(labels):
            # Only ops whose results keep their rank whatever the input's: an
            # exported signature's graph is specialised to its spec's rank
            # (tf.rank, reshapes and reduction axes), while a caller may feed
            # any. The shape is (batch,) iff its max, sum and product are all
            # `batch`; tf.where counts the labels out of range.
            shape = tf.shape(labels)
            outside = tf.where(tf.expand_dims((labels < 0) | (labels >= num_classes), 0))
            return tf.reduce_all(tf.stack([
                tf.reduce_max(tf.concat([shape, [-1]], 0)) == batch,
                tf.reduce_sum(shape) == batch, tf.reduce_prod(shape) == batch,
                tf.shape(outside)[0] == 0]))

        return check(labels, None, one_per_example, message)
    array = np.asarray(labels.numpy() if tf.is_tensor(labels) else labels)
    check(array, lambda a: a.dtype.kind in "iu" and a.ndim == 1 and a.shape[0] == int(batch)
          and not np.any(a < 0) and not np.any(a >= num_classes), None, message,
          got=lambda a: f"{a.dtype.name} of shape {a.shape}"
          + (f" with values in [{a.min()}, {a.max()}]" if a.size and a.dtype.kind in "iuf"
             else ""))
    return tf.constant(array, tf.int32)


def check_codes(codes, prefix, grid, num_codes):
    """A batch of code indices ``(batch,) + grid`` of an integer dtype in
    ``[0, num_codes)``, as int32: checked eagerly, or with graph assertions
    inside traced functions; else an error naming what was expected."""
    shaped = f"codes of shape (batch, {', '.join(map(str, grid))})"
    if codes is None or isinstance(codes, (str, bytes, dict, float, int)):
        raise TypeError(f"{prefix}: expected integer {shaped}, got {type(codes).__name__}")
    if not tf.is_tensor(codes):
        codes = np.asarray(codes)
    kind = codes.dtype.kind if isinstance(codes, np.ndarray) else None
    integer = kind in ("i", "u") if kind else (codes.dtype.is_integer
                                                and codes.dtype != tf.bool)
    if not integer:
        name = codes.dtype.name if hasattr(codes.dtype, "name") else str(codes.dtype)
        raise TypeError(f"{prefix}: expected integer {shaped} (an integer dtype: the "
                        f"indices of codebook vectors), got dtype {name}")
    shape = tuple(codes.shape)
    rank = len(grid) + 1
    if len(shape) != rank or any(s is not None and s != d for s, d in zip(shape[1:], grid)):
        raise ValueError(f"{prefix}: expected {shaped}, got shape {shape}")
    if not tf.executing_eagerly():  # checked when the graph runs, even if given as numpy
        codes = tf.convert_to_tensor(codes)
        codes = asserted(codes, tf.cond(tf.equal(tf.rank(codes), rank),
                                        lambda: tf.reduce_all(tf.equal(tf.shape(codes)[1:],
                                                                       grid)),
                                        lambda: tf.constant(False)),
                         f"{prefix}: expected {shaped}")
    codes = check(codes, lambda a: not a.size or (a.min() >= 0 and a.max() < num_codes),
                  lambda t: tf.reduce_all((t >= 0) & (t < num_codes)),
                  f"{prefix}: expected code indices in [0, {num_codes})",
                  got=lambda a: f"values in [{a.min()}, {a.max()}]")
    return tf.cast(codes, tf.int32)


def stateless_seed(seed, prefix):
    """A stateless seed (shape [2] int32) from an int/tensor seed, random if None."""
    if seed is None:
        return tf.random.uniform([2], maxval=INT32_MAX, dtype=tf.int32)
    if not tf.is_tensor(seed):
        values = np.asarray(seed)
        if values.dtype.kind not in "iu" or values.shape not in ((), (2,)) \
                or np.any(np.abs(values) > INT32_MAX):
            raise ValueError(f"{prefix}: expected seed to be an integer in "
                             f"[-2**31 + 1, 2**31 - 1] (or two), or None, got {seed!r}")
    seed = tf.cast(seed, tf.int32)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0x5EED, tf.int32)])
    return seed


def on_batches(kind):
    """Decorates a public method whose first argument is a batch of data (`kind`
    "data") or of latents ("latent"): an empty batch gives an empty result.

    The method runs on one example of zeros and its outputs are cut to the batch's
    size, 0 (eagerly, and with a ``tf.cond`` inside graphs), since many layers
    cannot take a batch of none (convolutions, reshapes by -1); other batched
    arguments (class labels) that are empty then become one zero each. Anything
    else goes to the method as it came, which checks it.
    """
    def one_if_empty(value, empty):
        if value is None or isinstance(value, (str, bytes)):
            return value
        if tf.is_tensor(value) and not tf.executing_eagerly():
            if value.shape.rank in (0, None):
                return value
            one = tf.zeros(tf.concat([[1], tf.shape(value)[1:]], 0), value.dtype)
            return tf.cond(tf.logical_and(empty, tf.equal(tf.size(value), 0)),
                           lambda: one, lambda: value)
        array = np.asarray(value)
        if empty and array.ndim >= 1 and array.shape[0] == 0:
            return np.zeros((1,) + array.shape[1:], array.dtype)
        return value

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, x, *args, **kwargs):
            event = tuple(self.data_shape if kind == "data" else self.latent_shape)
            if x is None or isinstance(x, (str, bytes)):
                return method(self, x, *args, **kwargs)
            if not tf.is_tensor(x):
                x = np.asarray(x)
            shape = tuple(x.shape)
            if len(shape) != len(event) + 1 or shape[1:] != event:
                return method(self, x, *args, **kwargs)
            one = tf.zeros((1,) + event, tf.float32)
            if tf.is_tensor(x) and not tf.executing_eagerly():
                size = tf.shape(x)[0]
                empty = tf.equal(size, 0)
                x = tf.cond(empty, lambda: one, lambda: tf.cast(x, tf.float32))
                args = [one_if_empty(a, empty) for a in args]
                outputs = method(self, x, *args, **kwargs)
                return tf.nest.map_structure(lambda y: y[:size], outputs)
            if shape[0] == 0:
                args = [one_if_empty(a, True) for a in args]
                return tf.nest.map_structure(lambda y: y[:0], method(self, one, *args, **kwargs))
            return method(self, x, *args, **kwargs)
        return wrapper
    return decorate
