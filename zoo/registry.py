"""Name -> model class, with one preset configuration per dataset.

A model module registers itself with :func:`register`::

    @register("realnvp", presets={"moons": {...}, "digits": {...}})
    class RealNVP(FlowModel): ...

and users build one with ``zoo.get("realnvp", dataset="digits", **overrides)``. A
preset holds the model's hyperparameters; the data's shape and number of levels
come from the dataset (``zoo.datasets.info``), never from the preset.
"""

import dataclasses
import importlib
import importlib.metadata

# Modules that register models are found through this entry-point group: the
# zoo's own (setup.py) and those of any installed package, e.g. in its setup.py
#     entry_points={"zoo.models": ["my_model = my_package.my_model"]}
ENTRY_POINT_GROUP = "zoo.models"
_loaded = False  # the entry points' modules imported (once per process)


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    presets: dict
    training: dict
    default_dataset: str

    @property
    def family(self):
        return self.cls.family

    @property
    def losses(self):
        """The loss terms; of the default settings where they depend on them (a
        GAN's distance)."""
        names = self.cls.loss_names
        return tuple(self.cls.default_loss_names() if isinstance(names, property) else names)

    def training_for(self, dataset):
        """Training defaults (batch_size, epochs, learning_rate, ...) for `dataset`."""
        self.config_for(dataset)
        return dict(self.training.get(dataset or self.default_dataset, {}))

    def no_preset(self, dataset):
        """The error message for a `dataset` without a preset: the presets, and the
        ones close to `dataset` (a typo)."""
        from zoo import datasets

        return (f"model {self.name!r} has no preset for dataset {dataset!r}; presets: "
                f"{sorted(self.presets)}.{datasets.did_you_mean(dataset, self.presets)}")

    def config_for(self, dataset):
        """The constructor arguments for `dataset`: its data shape and levels, then
        the preset; or a clear error listing the presets."""
        from zoo import datasets

        if dataset is None:
            dataset = self.default_dataset
        if dataset not in self.presets:
            raise ValueError(f"{self.no_preset(dataset)} Pass dataset= one of those, or "
                             "build the class directly with your own config.")
        info = datasets.info(dataset)
        return {"data_shape": info.shape, "num_levels": info.num_levels,
                **self.presets[dataset]}


_REGISTRY = {}


def register(name, *, presets, training=None, default_dataset=None):
    """Class decorator: registers a model under `name`.

    The class says its family, likelihood and loss terms itself (``family``,
    ``likelihood``, ``loss_names``).

    Args:
        name: the name users pass to ``zoo.get`` and ``zoo train``.
        presets: dataset name -> constructor arguments (without ``data_shape``
            and ``num_levels``, which come from the dataset).
        training: dataset name -> training defaults (batch_size, epochs,
            learning_rate, steps_per_epoch) used by ``zoo train``.
        default_dataset: the dataset of ``zoo.get(name)``; the first preset if None.
    """

    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is registered twice")
        restated = sorted(k for p in presets.values() for k in p
                          if k in ("data_shape", "num_levels"))
        if restated:
            raise ValueError(f"model {name!r}: presets restate {restated}, which come "
                             "from the dataset")
        _REGISTRY[name] = Entry(
            name=name,
            cls=cls,
            presets=dict(presets),
            training=dict(training or {}),
            default_dataset=default_dataset or next(iter(presets)),
        )
        cls.registry_name = name
        return cls

    return wrap


def model_modules():
    """The modules registered under :data:`ENTRY_POINT_GROUP`, the zoo's first."""
    found = {ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if not any(m.startswith("zoo.") for m in found):
        raise ImportError(
            f"the zoo's models are found through its package metadata (entry points of the "
            f"group {ENTRY_POINT_GROUP!r}), and none is installed: install the zoo with "
            f"`pip install -e .` in its folder (`make install` does)")
    return sorted(found, key=lambda m: (not m.startswith("zoo."), m))


def load_all():
    """Imports every model module (which registers its classes): those of the
    :data:`ENTRY_POINT_GROUP` entry points, the zoo's own and other installed
    packages'. ``import zoo`` does it; it runs once per process."""
    global _loaded
    if _loaded:
        return
    for module in model_modules():
        import_module(module)
    _loaded = True


def import_module(module):
    """Imports `module` (a model module outside the zoo: ``zoo train --import``),
    which registers its models; a clear error if it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name and module.startswith(e.name):  # the module itself, not one it imports
            raise ValueError(f"cannot import the model module {module!r}: no module named "
                             f"{e.name!r} (is its package installed, or its folder on "
                             f"PYTHONPATH?)") from None
        raise


def entry(name):
    """The registry entry for `name`, or a ValueError naming the known models."""
    load_all()
    if name not in _REGISTRY:
        from zoo.datasets import did_you_mean

        raise ValueError(
            f"unknown model {name!r}; known models: {sorted(_REGISTRY)}."
            + did_you_mean(name, _REGISTRY)
        )
    return _REGISTRY[name]


def list_models():
    """All registered entries, sorted by family then name."""
    load_all()
    return sorted(_REGISTRY.values(), key=lambda e: (e.family, e.name))


def get(name, dataset=None, **overrides):
    """Builds model `name` with its preset for `dataset`, updated by `overrides`.

    Args:
        name: a registered model name (see ``zoo list``).
        dataset: the dataset whose preset to use; the model's default if None.
        **overrides: constructor arguments that replace the preset's.
    Returns:
        An unbuilt ``keras.Model`` (call ``compile`` and ``fit`` on it).
    Raises:
        ValueError: an unknown model or dataset, or an override the model refuses;
            an integer parameter given a number that is not one (``num_classes=2.5``).
    """
    e = entry(name)
    config = e.config_for(dataset)
    config.update(overrides)
    model = e.cls(**config)
    built = model.get_config() if overrides else {}
    for key, value in overrides.items():
        if _truncated(value, built.get(key)):
            raise ValueError(f"{e.cls.__name__}: expected {key} to be an integer, got {value!r}")
    return model


def _truncated(given, kept):
    """True if the number `given` (or a number in the list `given`) is not an
    integer but the model keeps an integer for it (``int(10.7)``: 10)."""
    if isinstance(given, (list, tuple)) and isinstance(kept, (list, tuple)) \
            and len(given) == len(kept):
        return any(_truncated(g, k) for g, k in zip(given, kept))
    return isinstance(given, float) and isinstance(kept, int) and not isinstance(kept, bool) \
        and given != kept
