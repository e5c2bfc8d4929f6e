"""How a model's samplers are traced: under XLA where it wins, and as the plain
graphs of the serving signatures that TF Serving runs."""

import functools
import inspect

import tensorflow as tf


class CompiledFunctions:
    """A model's cache of compiled ``tf.function``s: a plain object, so that
    neither Keras nor a SavedModel tracks (or exports) what it holds; `serving`
    is true while a serving signature is traced (no XLA there)."""

    def __init__(self):
        self.functions = {}
        self.serving = False


class Serving:
    """A mixin of :class:`~zoo.base.GenerativeModel`: the cache of compiled
    samplers (:meth:`xla_where_traced`, under XLA where ``xla_sampling`` allows)
    and the serving signatures, ``sample`` and the model's data signatures, each
    a plain graph (:meth:`serving_signatures`), with one scalar input per
    sampler option (:meth:`with_option_inputs`). The model makes ``self._xla``
    (a :class:`CompiledFunctions`) in its constructor.
    """

    # Whether the deterministic part of ``draw_samples`` runs under XLA when sampling
    # is traced with a fixed n, or a sequential sampler's loop at every call outside
    # the serving signatures (see :meth:`xla_where_traced`); set by families (and
    # models) whose samplers were checked to compile, to give the same samples and
    # to run faster so.
    xla_sampling = False

    def xla_where_traced(self, name, fn, *tensors, loop=False):
        """``fn(*tensors)``, compiled with XLA (``jit_compile``) when this runs
        inside a ``tf.function`` on tensors of fully known shape, as ``sample(n)``
        with a Python int ``n`` does in a user's graph; the model's
        ``xla_sampling`` must allow it. XLA fuses a flow's elementwise ops: its
        sampler ran 1.2-6x faster than as a plain graph on a 2-core CPU, for every
        flow on 2-D points and on digits.

        Otherwise `fn` runs as is: eagerly, where XLA's compile for each new shape
        (about 1 s) costs more than it saves, and with a batch size known only at
        run time, as in the exported ``sample`` signature, which stays a plain
        graph for TF Serving. `fn` must be deterministic (XLA draws other random
        numbers than TF's kernels for the same seed) and is cached under `name`
        for the life of the model.

        A sequential sampler's loop (`loop`: D network passes for a draw, where a
        compile pays at any batch size) is compiled at every call: under XLA
        where ``xla_sampling`` allows, eagerly and traced at any batch size (XLA
        compiles each new one when it runs), else as a plain ``tf.function`` when
        called eagerly; inside the serving signatures (:meth:`serving_signatures`)
        it stays a plain graph. `tensors` may then hold None (an unused input).
        """
        xla = self.xla_sampling and not self._xla.serving
        if loop:
            if tf.inside_function() and not xla:
                return fn(*tensors)
            key = name if xla else f"{name}/graph"
            if key not in self._xla.functions:
                self._xla.functions[key] = tf.function(fn, jit_compile=xla,
                                                       reduce_retracing=True)
            return self._xla.functions[key](*tensors)
        if not (xla and tf.inside_function()
                and all(t.shape.is_fully_defined() for t in tensors)):
            return fn(*tensors)
        if name not in self._xla.functions:
            self._xla.functions[name] = tf.function(fn, jit_compile=True, reduce_retracing=True)
        return self._xla.functions[name](*tensors)

    def serving_signatures(self):
        """Every serving signature: the first of ``data_signatures()``, ``sample``
        (``n``, ``seed`` and one input per sampler option, with its default), then
        the others, and ``complete`` for a model that can complete."""
        data = dict(self.data_signatures())
        if self.can_complete:
            data["complete"] = self.complete_signature()
        first = next(iter(data))
        signatures = {first: data.pop(first), "sample": self.sample_signature(), **data}
        return {name: (self.serving_graph(fn), specs) for name, (fn, specs) in signatures.items()}

    def serving_graph(self, fn):
        """`fn` traced as a serving signature: every sampler loop in it a plain
        graph (:meth:`xla_where_traced`), which TF Serving runs without XLA."""

        @functools.wraps(fn)  # (its __signature__ too: the options' defaults)
        def serving(*args, **kwargs):
            before, self._xla.serving = self._xla.serving, True
            try:
                return fn(*args, **kwargs)
            finally:
                self._xla.serving = before

        return serving

    def sample_signature(self):
        """``sample(n, seed, *options)`` -> ``{"samples": ...}``, with the options'
        defaults as the Python defaults (which the SignatureDef records)."""
        names = list(self.sample_options)

        def sample(n, seed, *values):
            return {"samples": self.sample(n, seed, **dict(zip(names, values)))}

        return self.with_option_inputs(sample, [tf.TensorSpec([], tf.int32, name="n"),
                                                tf.TensorSpec([], tf.int32, name="seed")])

    def with_option_inputs(self, fn, specs, options=None):
        """(`fn`, `specs` and one scalar input per option of `options`, default the
        sampler options), `fn`'s signature naming them, with the options'
        defaults (which the SignatureDef records)."""
        options = self.sample_options if options is None else options
        names = list(options)
        specs = specs + [tf.TensorSpec([], options[k].dtype, name=k) for k in names]
        defaults = {k: tf.constant(options[k].default, options[k].dtype) for k in names}
        fn.__signature__ = _signature(specs, defaults)
        return fn, specs

    def data_spec(self, name="x"):
        return tf.TensorSpec((None,) + self.data_shape, tf.float32, name=name)


def _signature(specs, defaults=None):
    """An ``inspect.Signature`` naming a function's inputs after `specs` (TF takes the
    SignatureDef's input names, and their defaults, from it)."""
    defaults = defaults or {}
    return inspect.Signature([
        inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=defaults.get(s.name, inspect.Parameter.empty))
        for s in specs
    ])
