"""Every bijector layer of ``zoo.flows.steps`` through one shared check.

:func:`check_bijector_layer` (after keras-hub's ``TestCase.run_layer_test``) takes
a layer whose ``bijector()`` is a TFP bijector and checks, with its weights moved
off their (often identity) initialisation: both round trips, the forward log-det
against slogdet of the autodiff Jacobian, the inverse log-det against the same
brute force and against minus the forward's at the image, and the config round
trip (a clone from ``get_config()`` with the same weights is the same bijector).
:data:`STEP_CASES` holds a tiny case per layer class, and
:func:`test_every_bijector_layer_has_a_case` fails when a bijector layer of the
package has none.

Every direction is computed by a new bijector instance, and every tensor handed
from one direction to the other is a new one (:func:`fresh`): TFP caches a
bijector's results by input tensor, so otherwise an "inverse" could return the
cached input without inverting anything.
"""

import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass, field

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import zoo.flows.steps
from helpers import brute_force_log_det, perturb_weights
from zoo.flows.steps.act_norm import ActNorm
from zoo.flows.steps.additive_coupling import AdditiveCoupling
from zoo.flows.steps.autoregressive_affine import AutoregressiveAffine
from zoo.flows.steps.batch_norm import BatchNormBijectorLayer
from zoo.flows.steps.coupling import AffineCoupling
from zoo.flows.steps.diagonal_scaling import DiagonalScaling
from zoo.flows.steps.glow_affine_coupling import GlowAffineCoupling
from zoo.flows.steps.invertible_conv_1x1 import InvertibleConv1x1
from zoo.flows.steps.learned_prior_split import LearnedPriorSplit
from zoo.flows.steps.planar import PlanarTransform
from zoo.flows.steps.radial import RadialTransform
from zoo.flows.steps.spline_autoregressive import SplineAutoregressive
from zoo.flows.steps.spline_coupling import SplineCoupling

tfb = tfp.bijectors

# Float32 round-off: each output is computed in float32 (eps 1.2e-7) through a
# few tens of operations, so 1e-5 relative (about 100 ulps) is round-off, not slack.
RTOL = ATOL = 1e-5
# The brute-force log-det differentiates the float32 map, and slogdet of a D x D
# Jacobian adds up D relative errors of its pivots: 1e-4 for D <= 32.
LOG_DET_RTOL = LOG_DET_ATOL = 1e-4
# The planar inverse is iterative, but 40 bisection steps and a Newton step solve
# its scalar equation to float32 round-off, so RTOL/ATOL hold for it too: the
# round-off of a = w^T z + b grows as 1 / (1 + c) only as c = w^T u_hat nears -1
# (measured: 2.4e-7 over ten seeds at the case's scale 0.5, c about 0.75; 5e-6 at
# c = -1.00). One bisection step instead misses by 1e-3 and fails.

# A clone with the same weights runs the same float32 operations on the same inputs.
CLONE_RTOL = CLONE_ATOL = 1e-6


def fresh(tensor):
    """A new tensor with the same values: TFP's bijector cache cannot recognise it."""
    return tf.constant(np.asarray(tensor))


def _default_bijector(layer):
    return layer.bijector()


def _per_example(log_det, n):
    """A log-det as one number per example (constant Jacobians give a scalar)."""
    return np.broadcast_to(np.asarray(log_det), (n,))


def check_bijector_layer(layer, x, rtol=RTOL, atol=ATOL, log_det_rtol=LOG_DET_RTOL,
                         log_det_atol=LOG_DET_ATOL, scale=0.1, seed=0,
                         make_bijector=_default_bijector):
    """Checks a bijector layer on the batch `x`; returns the layer (perturbed).

    1. Builds the layer if needed and moves its trainable weights off their
       initialisation (:func:`perturb_weights`, N(0, `scale`^2)); the layer must
       then do something (the bijector moves `x`).
    2. Round trips ``inverse(forward(x))`` and ``forward(inverse(x))`` give `x`
       back (`rtol`, `atol`), each direction a new bijector on a fresh tensor.
    3. ``forward_log_det_jacobian(x)`` is slogdet of the autodiff Jacobian of the
       forward, per example (:func:`brute_force_log_det`); the inverse log-det at
       the image ``y = forward(x)`` is minus it (`rtol`, `atol`) and slogdet of the
       inverse's own Jacobian at ``y`` (`log_det_rtol`, `log_det_atol`).
    4. ``type(layer).from_config(layer.get_config())`` (a JSON-serialisable config,
       a registered class) built and given the layer's weights has the same
       config and gives the same outputs and log-dets in both directions.
    5. None of this changed the layer's weights (non-trainable state included:
       no moving average or data-dependent init may be updated by these calls).

    `make_bijector(layer)` makes the bijector (default ``layer.bijector()``), for
    layers whose ``bijector`` takes arguments. `x` is a float32 batch of a few
    examples; its trailing axes are the event.
    """
    x = tf.constant(np.asarray(x, np.float32))
    event_ndims = x.shape.rank - 1
    n = int(x.shape[0])

    def make():
        return make_bijector(layer)

    # 1. Build and perturb.
    if not layer.built:
        layer.build((None,) + tuple(x.shape[1:]))
    assert layer.built, f"{layer.name}: not built"
    assert layer.trainable_weights, f"{layer.name}: no trainable weights to check"
    perturb_weights(layer, scale, seed)
    weights = [np.array(w) for w in layer.get_weights()]

    # 2. Round trips.
    y = make().forward(x)
    assert y.shape == x.shape, f"forward changed the shape: {x.shape} -> {y.shape}"
    assert np.all(np.isfinite(y)), "forward gave non-finite values"
    assert np.max(np.abs(y - x)) > 1e-3, "the layer does (almost) nothing: nothing is tested"
    np.testing.assert_allclose(make().inverse(fresh(y)), x, rtol=rtol, atol=atol,
                               err_msg="inverse(forward(x)) != x")
    x_inv = make().inverse(fresh(x))
    np.testing.assert_allclose(make().forward(fresh(x_inv)), x, rtol=rtol, atol=atol,
                               err_msg="forward(inverse(x)) != x")

    # 3. Log-dets.
    fldj = _per_example(make().forward_log_det_jacobian(fresh(x), event_ndims=event_ndims), n)
    np.testing.assert_allclose(fldj, brute_force_log_det(make().forward, x),
                               rtol=log_det_rtol, atol=log_det_atol,
                               err_msg="forward log-det != slogdet of the Jacobian")
    ildj = _per_example(make().inverse_log_det_jacobian(fresh(y), event_ndims=event_ndims), n)
    np.testing.assert_allclose(ildj, -fldj, rtol=rtol, atol=atol,
                               err_msg="inverse log-det at y = f(x) != -forward log-det at x")
    np.testing.assert_allclose(ildj, brute_force_log_det(make().inverse, fresh(y)),
                               rtol=log_det_rtol, atol=log_det_atol,
                               err_msg="inverse log-det != slogdet of the inverse's Jacobian")

    # 4. Config round trip.
    config = layer.get_config()
    json.dumps(config)  # a .keras file stores it as JSON
    registered = keras.saving.get_registered_name(type(layer))
    assert keras.saving.get_registered_object(registered) is type(layer), \
        f"{type(layer).__name__} is not registered as serializable"
    clone = type(layer).from_config(config)
    if not clone.built:
        clone.build((None,) + tuple(x.shape[1:]))
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == config, "the clone's config differs"

    def same(actual, expected, what):
        np.testing.assert_allclose(actual, expected, rtol=CLONE_RTOL, atol=CLONE_ATOL,
                                   err_msg=f"the clone's {what} differs")

    same(make_bijector(clone).forward(fresh(x)), y, "forward")
    same(make_bijector(clone).inverse(fresh(x)), x_inv, "inverse")
    same(_per_example(make_bijector(clone).forward_log_det_jacobian(
        fresh(x), event_ndims=event_ndims), n), fldj, "forward log-det")
    same(_per_example(make_bijector(clone).inverse_log_det_jacobian(
        fresh(y), event_ndims=event_ndims), n), ildj, "inverse log-det")

    # 5. The checks left the layer as it was.
    for before, after, w in zip(weights, layer.get_weights(), layer.weights):
        np.testing.assert_array_equal(after, before, err_msg=f"{w.path} changed")
    return layer


# ------------------------------------------------------------------- the cases
@dataclass
class StepCase:
    """One layer to check: `make()` builds it (seeded), `x` is its input batch,
    `options` are extra arguments of :func:`check_bijector_layer`."""

    id: str
    cls: type
    make: callable
    x: np.ndarray
    options: dict = field(default_factory=dict)


def seeded(factory):
    """`factory` with Keras' seeds fixed first (random initialisers: planar's w,
    radial's z0, the 1x1 convolution's rotation, the networks' kernels)."""

    def make():
        keras.utils.set_random_seed(0)
        return factory()

    return make


def normal(shape, seed, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype("float32")


def spline_points(n, d, seed, bound):
    """Normal points, some coordinates in the spline's identity tails outside
    [-bound, bound] (away from the boundary knots, where the slope is 1)."""
    x = normal((n, d), seed, scale=1.0)
    x[0, ::2] = 1.75 * bound
    x[1, 1::2] = -1.5 * bound
    return x


def act_norm(shape):
    """ActNorm after its data-dependent init on a shifted, scaled batch (so loc,
    log_scale and the `initialized` flag are all off their initial values); the
    checks then use the stored parameters (``bijector(data_init=False)``)."""
    layer = ActNorm(shape)
    batch = normal((8,) + shape, seed=10) * np.linspace(0.5, 3.0, shape[-1]) + 2.0
    layer.initialize_from(tf.constant(batch.astype("float32")))
    return layer


def batch_norm():
    """BatchNormBijectorLayer in evaluation mode (``batch_statistics`` False, the
    default), with its moving averages off zero mean and unit variance. With
    batch statistics the map depends on the whole batch, so it is no bijection of
    single examples: the model sets the flag only while tracing its training step
    (tests/test_autoregressive_planar.py checks that mode)."""
    layer = BatchNormBijectorLayer(3, momentum=0.9)
    layer.moving_mean.assign([0.5, -1.0, 2.0])
    layer.moving_variance.assign([0.3, 2.0, 4.0])
    assert not layer.batch_statistics
    return layer


# The next scales of LearnedPriorSplit.bijector(inner): a fixed volume-changing
# bijector on the kept half h (2 channels).
SPLIT_INNER = tfb.Chain([tfb.Scale(tf.constant([2.0, 0.5])), tfb.Shift(1.0)])

STEP_CASES = [
    StepCase("act_norm-vector", ActNorm, seeded(lambda: act_norm((3,))), normal((3, 3), 1)),
    StepCase("act_norm-image", ActNorm, seeded(lambda: act_norm((4, 4, 2))),
             normal((2, 4, 4, 2), 2)),
    StepCase("additive_coupling-even", AdditiveCoupling,
             seeded(lambda: AdditiveCoupling(4, 0, hidden_units=8, num_hidden=2)),
             normal((3, 4), 3), dict(scale=0.3)),
    StepCase("additive_coupling-odd", AdditiveCoupling,
             seeded(lambda: AdditiveCoupling(3, 1, hidden_units=8, num_hidden=1)),
             normal((3, 3), 4), dict(scale=0.3)),
    StepCase("autoregressive_affine", AutoregressiveAffine,
             seeded(lambda: AutoregressiveAffine(3, hidden_units=8, num_hidden=1,
                                                 input_order=[2, 3, 1])),
             normal((3, 3), 5), dict(scale=0.3)),
    StepCase("batch_norm", BatchNormBijectorLayer, seeded(batch_norm), normal((3, 3), 6),
             dict(scale=0.3)),
    StepCase("affine_coupling-vector", AffineCoupling,
             seeded(lambda: AffineCoupling((4,), "channel", 0, hidden_units=8, num_blocks=1)),
             normal((3, 4), 7), dict(scale=0.3)),
    StepCase("affine_coupling-checkerboard", AffineCoupling,
             seeded(lambda: AffineCoupling((4, 4, 2), "checkerboard", 1, hidden_units=4,
                                           num_blocks=1)),
             normal((2, 4, 4, 2), 8)),
    StepCase("affine_coupling-channel-image", AffineCoupling,
             seeded(lambda: AffineCoupling((2, 2, 4), "channel", 1, hidden_units=4,
                                           num_blocks=1)),
             normal((2, 2, 2, 4), 9)),
    StepCase("diagonal_scaling", DiagonalScaling, seeded(lambda: DiagonalScaling(3)),
             normal((3, 3), 11), dict(scale=0.5)),
    StepCase("glow_affine_coupling-vector", GlowAffineCoupling,
             seeded(lambda: GlowAffineCoupling((3,), hidden_units=8)), normal((3, 3), 12),
             dict(scale=0.3)),
    StepCase("glow_affine_coupling-image", GlowAffineCoupling,
             seeded(lambda: GlowAffineCoupling((4, 4, 2), hidden_units=4)),
             normal((2, 4, 4, 2), 13), dict(scale=0.3)),
    StepCase("invertible_conv_1x1-vector", InvertibleConv1x1,
             seeded(lambda: InvertibleConv1x1(3)), normal((3, 3), 14), dict(scale=0.3)),
    StepCase("invertible_conv_1x1-image", InvertibleConv1x1,
             seeded(lambda: InvertibleConv1x1(3)), normal((2, 2, 2, 3), 15), dict(scale=0.3)),
    StepCase("learned_prior_split", LearnedPriorSplit,
             seeded(lambda: LearnedPriorSplit((4, 4, 2))), normal((2, 4, 4, 2), 16),
             dict(scale=0.3)),
    StepCase("learned_prior_split-inner", LearnedPriorSplit,
             seeded(lambda: LearnedPriorSplit((2, 2, 4))), normal((2, 2, 2, 4), 17),
             dict(scale=0.3, make_bijector=lambda layer: layer.bijector(SPLIT_INNER))),
    StepCase("planar", PlanarTransform, seeded(lambda: PlanarTransform(3)), normal((3, 3), 18),
             dict(scale=0.5)),
    StepCase("radial", RadialTransform, seeded(lambda: RadialTransform(3)), normal((3, 3), 19),
             dict(scale=0.5)),
    StepCase("spline_autoregressive", SplineAutoregressive,
             seeded(lambda: SplineAutoregressive(3, hidden_units=8, num_hidden=1, num_bins=4,
                                                 bound=2.0, input_order=[3, 1, 2])),
             spline_points(3, 3, 20, bound=2.0), dict(scale=0.3)),
    StepCase("spline_coupling", SplineCoupling,
             seeded(lambda: SplineCoupling(5, 1, hidden_units=8, num_hidden=1, num_bins=4,
                                           bound=2.0)),
             spline_points(3, 5, 21, bound=2.0), dict(scale=0.3)),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=[c.id for c in STEP_CASES])
def test_bijector_layer(case):
    layer = case.make()
    assert type(layer) is case.cls, f"{case.id} builds a {type(layer).__name__}"
    check_bijector_layer(layer, case.x, **case.options)


# ------------------------------------------------------------------- coverage
def bijector_layer_classes():
    """{qualified name: class} of the Keras layers with a ``bijector`` attribute
    defined in the modules of zoo.flows.steps."""
    found = {}
    for info in pkgutil.iter_modules(zoo.flows.steps.__path__, zoo.flows.steps.__name__ + "."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (obj.__module__ == module.__name__ and issubclass(obj, keras.layers.Layer)
                    and hasattr(obj, "bijector")):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_bijector_layer_has_a_case():
    found = bijector_layer_classes()
    assert len(found) >= 13, f"the discovery finds too few layers: {sorted(found)}"
    covered = {case.cls for case in STEP_CASES}
    missing = sorted(name for name, cls in found.items() if cls not in covered)
    assert not missing, f"bijector layers without a case in STEP_CASES: {missing}"
    stale = sorted(c.__name__ for c in covered if c not in found.values())
    assert not stale, f"STEP_CASES classes that are no bijector layer of zoo.flows.steps: {stale}"
