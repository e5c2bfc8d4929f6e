"""Two-stage models: a model trained on a trained, frozen model (its first stage)."""

from zoo import registry
from zoo.base import GenerativeModel


class TwoStage:
    """A mixin of :class:`~zoo.base.GenerativeModel` for a model that takes a
    trained model as its frozen first stage (a prior over a VQ-VAE's codes,
    diffusion on an autoencoder's latents).

    A class sets ``first_stage_kinds``, the registered models it takes, and
    extends :meth:`check_first_stage` (calling ``super()``) with its own checks.
    Its constructor sets ``self.first_stage_model`` from
    :meth:`make_first_stage` (a copy, frozen as a sub-layer with ``trainable =
    False``); ``first_stage`` is then that model's config as ``get_config``
    writes it, and ``value_range`` the first stage's.
    :func:`zoo.runs.load_first_stage` reads ``first_stage_kinds`` and calls
    :meth:`check_first_stage` on a run's checkpoint.
    """

    # The registered models this model takes as its first stage.
    first_stage_kinds = ()
    mixed_precision_refusal = "its frozen first stage computes in the precision it was trained in"

    @classmethod
    def first_stage_kinds_text(cls):
        """``first_stage_kinds`` as messages name them: ``'vae' or 'vq_vae'``."""
        return " or ".join(map(repr, cls.first_stage_kinds))

    @classmethod
    def check_first_stage(cls, model, data_shape, num_levels):
        """A ValueError saying what is wrong if `model` cannot be the first stage of
        a model of `data_shape` and `num_levels`: it must be a registered model of
        ``first_stage_kinds`` on the same data. A class extends it (with
        ``super()``) with its own checks."""
        name = getattr(model, "registry_name", None)
        if not isinstance(model, GenerativeModel) or name not in cls.first_stage_kinds:
            got = repr(name) if isinstance(model, GenerativeModel) else type(model).__name__
            raise ValueError(f"{cls.__name__}: expected a first stage of model "
                             f"{cls.first_stage_kinds_text()}, got {got}")
        if tuple(model.data_shape) != tuple(data_shape) or model.num_levels != num_levels:
            raise ValueError(
                f"{cls.__name__}: expected a first stage of data_shape {tuple(data_shape)} "
                f"and num_levels {num_levels} (the same dataset), got {model.data_shape} "
                f"and {model.num_levels}")

    @classmethod
    def make_first_stage(cls, first_stage, data_shape, num_levels):
        """A new model of the first stage of a model of `data_shape` and
        `num_levels`, checked by :meth:`check_first_stage`: a copy of a model's
        weights (the caller's model is left as it was), or built from
        ``{"model": name, "config": config}`` (the weights then come from a
        checkpoint)."""
        if isinstance(first_stage, GenerativeModel):
            cls.check_first_stage(first_stage, data_shape, num_levels)
            model = type(first_stage).from_config(first_stage.get_config())
            model.set_weights(first_stage.get_weights())
            return model
        if not (isinstance(first_stage, dict) and set(first_stage) == {"model", "config"}
                and isinstance(first_stage["model"], str)
                and isinstance(first_stage["config"], dict)):
            raise ValueError(
                f"{cls.__name__}: expected first_stage to be a trained model of "
                f"{cls.first_stage_kinds_text()} or "
                f'{{"model": name, "config": {{...}}}}, got {str(first_stage)[:200]}')
        if first_stage["model"] not in cls.first_stage_kinds:
            raise ValueError(f"{cls.__name__}: expected a first stage of model "
                             f"{cls.first_stage_kinds_text()}, got {first_stage['model']!r}")
        model = registry.entry(first_stage["model"]).cls.from_config(first_stage["config"])
        cls.check_first_stage(model, data_shape, num_levels)
        return model

    @property
    def first_stage(self):
        """The first stage's config, as ``get_config`` writes it."""
        return {"model": self.first_stage_model.registry_name,
                "config": self.first_stage_model.get_config()}

    @property
    def value_range(self):
        return self.first_stage_model.value_range
