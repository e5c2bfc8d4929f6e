"""Mixed precision: the networks compute in float16 or bfloat16, the rest in float32.

``precision`` is a constructor argument of every model (``zoo.get(name,
precision=...)``, ``zoo train --precision``), one of :data:`PRECISIONS`. Under
``mixed_float16`` or ``mixed_bfloat16`` each of the model's neural networks (the
Keras layers marked with :func:`network`: MLPs, MADEs, ResNets, encoders,
decoders, generators and critics) takes that Keras dtype policy: float32
weights, computation in the half type, and its outputs cast back to float32 at
its boundary. Everything else stays float32: bijector arithmetic and
log-determinants, likelihoods and ELBO terms, priors, gradient penalties and
every exported output. With ``mixed_float16`` the optimizers scale the loss
(``keras.optimizers.LossScaleOptimizer``: a dynamic scale, steps with
non-finite gradients skipped) so that small float16 gradients do not vanish.

Micikevicius et al. 2018, "Mixed Precision Training", https://arxiv.org/abs/1710.03740.
"""

import functools

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class PrecisionError(ValueError):
    """A precision that does not exist, or that a model cannot take."""


def network(cls):
    """Class decorator: instances of this Keras layer are a model's networks,
    which compute in a mixed policy when the model has one. Their ``call`` (and
    the methods named in a ``policy_methods`` class attribute, for networks that
    models also use piecewise) return float32."""
    cls.computes_in_policy = True
    return cls


def check(precision, model_class=None, name=None):
    """Raises PrecisionError unless `precision` is one of PRECISIONS and, if a
    model class is given, one it can take (a class that cannot says why in its
    ``mixed_precision_refusal``)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    refusal = getattr(model_class, "mixed_precision_refusal", None)
    if refusal and precision != "float32":
        raise PrecisionError(f"model {name or model_class.__name__!r} cannot take {precision}: "
                             f"{refusal}; use precision float32")


def networks(model):
    """The model's outermost network layers."""
    found = []

    def visit(layer):
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if getattr(child, "computes_in_policy", False):
                if all(child is not f for f in found):
                    found.append(child)
            else:
                visit(child)

    visit(model)
    return found


def _to_float32(value):
    if isinstance(value, (tf.Tensor, tf.Variable)) and value.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(value, tf.float32)
    return value


def apply(model, precision):
    """Gives each network of `model` the dtype policy `precision` (every layer in
    it), the outputs of its ``call`` (and ``policy_methods``) cast to float32.
    Nothing to do for float32."""
    check(precision, type(model))
    if precision == "float32":
        return
    for net in networks(model):
        for layer in net._flatten_layers(include_self=True, recursive=True):
            layer.dtype_policy = precision
        for name in getattr(net, "policy_methods", ("call",)):
            method = getattr(net, name)

            @functools.wraps(method)
            def float32_outputs(*args, _method=method, **kwargs):
                return tf.nest.map_structure(_to_float32, _method(*args, **kwargs))

            setattr(net, name, float32_outputs)


def loss_scaled(optimizer, precision):
    """`optimizer`, wrapped in a dynamic loss scale for ``mixed_float16``."""
    if precision != "mixed_float16" or isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


__all__ = ["PRECISIONS", "PrecisionError", "apply", "check", "loss_scaled", "network", "networks"]
