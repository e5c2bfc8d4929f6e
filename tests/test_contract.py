"""The model contract (docs/architecture.md), over every registered model.

The cases come from the registry, which holds a model defined in the test folder
as a user would (tests/user_models/my_models.py, imported as ``zoo train --import``
does), and no test names a family: TINY gives each registered model the datasets it
is tested on, with overrides that make it tiny, and a registered model without an
entry fails ``test_every_registered_model_has_a_case``. A model's first case is its
primary one. Fit steps, jit, ``.keras`` reload and export are checked in
test_contract_training.py and test_contract_processes.py (one fresh process for all
cases of a check), three files so that pytest-xdist's workers share them. To keep
the default suite short, some cases run some checks only in the slow suite
(``pytest -m slow``); each file's sets say which, and why.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from helpers import raw_batch
from zoo.gan.distances import DISTANCES

# A model package of a user's, outside the zoo (docs/architecture.md, "Add a model").
USER_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_models")
sys.path.insert(0, USER_MODELS)
zoo.registry.import_module("my_models")

TINY = {
    "diagonal_gaussian": [("moons", {})],
    "realnvp": [("moons", dict(hidden_units=8, num_couplings=2)),
                # class-conditional through the base (a class prior): any flow can be
                ("moons", dict(hidden_units=8, num_couplings=2, num_classes=3)),
                ("digits", dict(hidden_units=4, num_blocks=1, couplings_per_scale=1,
                                final_couplings=2))],
    "nice": [("moons", dict(hidden_units=8, num_hidden=1, num_couplings=2)),
             ("digits", dict(hidden_units=8, num_hidden=1))],
    "glow": [("digits", dict(hidden_units=4, num_steps=1)),
             ("moons", dict(hidden_units=8, num_steps=2))],
    "maf": [("moons", dict(num_layers=2, hidden_units=8, num_hidden=1)),
            ("digits", dict(num_layers=2, hidden_units=8, num_hidden=1)),
            ("moons", dict(num_layers=2, hidden_units=8, num_hidden=1, batch_norm=True))],
    "iaf": [("moons", dict(num_layers=2, hidden_units=8, num_hidden=1)),
            ("digits", dict(num_layers=2, hidden_units=8, num_hidden=1))],
    "planar": [("moons", dict(num_layers=2))],
    "radial": [("moons", dict(num_layers=2))],
    "ffjord": [("moons", dict(hidden_units=8, num_hidden=1, num_steps=2))],
    "nsf": [("moons", dict(num_layers=2, hidden_units=8, num_hidden=1, num_bins=4)),
            ("digits", dict(variant="autoregressive", num_layers=2, hidden_units=8,
                            num_hidden=1, num_bins=4))],
    "wgan_gp": [("digits", dict(latent_dim=4, filters=4, n_critic=2)),
                ("moons", dict(hidden_units=8, num_hidden=1, n_critic=2)),
                ("moons", dict(hidden_units=8, num_hidden=1, n_critic=2, ema_decay=0.9))],
    # GANs as distances: one case per distance of "gan" (all but the first are slow
    # cases), and one per registered name.
    "gan": [("moons", dict(hidden_units=8, num_hidden=1, distance=d)) for d in DISTANCES],
    "wgan": [("digits", dict(latent_dim=4, filters=4, n_critic=2))],
    "wgan_lp": [("moons", dict(hidden_units=8, num_hidden=1, n_critic=2))],
    "fgan": [("moons", dict(hidden_units=8, num_hidden=1, distance="f_pearson"))],
    "sngan": [("digits", dict(latent_dim=4, filters=4, num_classes=10)),  # projection critic
              ("digits", dict(latent_dim=4, filters=4, ema_decay=0.9))],
    "gmmn": [("digits", dict(latent_dim=4, filters=4))],
    "mmd_gan": [("moons", dict(hidden_units=8, num_hidden=1, critic_outputs=3, n_critic=2))],
    "sliced_gan": [("moons", dict(hidden_units=8, num_hidden=1, num_projections=4))],
    "max_sliced_gan": [("digits", dict(latent_dim=4, filters=4))],
    "sobolev_gan": [("moons", dict(hidden_units=8, num_hidden=1, n_critic=2))],
    "swgan": [("digits", dict(latent_dim=4, filters=4, n_critic=2))],
    # GAN architectures (zoo/gan/dcgan.py, stylegan.py, biggan.py, diffusion_gan.py)
    "dcgan": [("digits", dict(latent_dim=4, filters=4))],
    "stylegan": [("digits", dict(latent_dim=4, filters=4, mapping_layers=1,
                                 regularizer_interval=2, path_length_interval=2))],
    "diffusion_gan": [("digits", dict(latent_dim=4, filters=4, t_min=2, t_max=10,
                                      adjust_interval=2))],
    "biggan": [("digits", dict(latent_dim=6, filters=4, embedding_dim=3, num_classes=10)),
               ("digits", dict(latent_dim=6, filters=4, embedding_dim=3, num_classes=0,
                               ema_decay=0.0))],
    "vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8)),
            ("digits", dict(latent_dim=2, filters=4, hidden_units=8, num_classes=3)),
            ("digits", dict(latent_dim=2, filters=4, hidden_units=8, observation="bernoulli")),
            ("digits", dict(latent_dim=2, filters=4, hidden_units=8, observation="gaussian"))],
    "beta_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, kl_warmup_steps=3))],
    "gumbel_vae": [("digits", dict(num_variables=2, num_categories=3, filters=4,
                                   hidden_units=8))],
    "ladder_vae": [("digits", dict(latent_dim=2, top_latent_dim=2, filters=4, hidden_units=8))],
    "iwae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8,
                             num_importance_samples=3))],
    "mixture_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, num_components=3))],
    "vamp_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, num_components=3))],
    "planar_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, num_flows=2))],
    "iaf_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, num_flows=2,
                                flow_hidden_units=8, context_units=4))],
    "aae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, discriminator_units=8))],
    "vae_gan": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, critic_filters=4))],
    "vq_vae": [("digits", dict(latent_dim=2, num_embeddings=4, filters=4, hidden_units=4,
                               num_residual_blocks=1)),
               ("digits", dict(latent_dim=2, num_embeddings=4, filters=4, hidden_units=4,
                               num_residual_blocks=1, ema=True))],
    # A first stage is a trained model; here an untrained tiny VAE built from its
    # config (zoo.get(..., first_stage=model) copies a trained one's weights).
    "two_stage_vae": [("digits", dict(num_couplings=2, hidden_units=8, num_blocks=1,
                                      first_stage={"model": "vae", "config": {
                                          **zoo.registry.entry("vae").config_for("digits"),
                                          "latent_dim": 2, "filters": 4,
                                          "hidden_units": 8}}))],
    "pixelcnn": [("digits", dict(filters=4, num_blocks=1, output_units=4, first_kernel=3))],
    "gated_pixelcnn": [("digits", dict(filters=4, num_layers=2, output_units=4, num_classes=10)),
                       ("digits", dict(filters=4, num_layers=2, output_units=4))],
    "pixelcnn_pp": [("digits", dict(filters=4, num_resnet=1, num_scales=2, num_components=2))],
    "ebm": [("moons", dict(hidden_units=8, num_hidden=1, buffer_size=16, num_steps=2,
                           grid_points=16)),
            ("digits", dict(filters=4, num_downsamplings=1, buffer_size=16, num_steps=2)),
            ("moons", dict(hidden_units=8, num_hidden=1, num_steps=2, grid_points=16,
                           short_run=True))],
    "jem": [("digits", dict(num_classes=10, filters=4, num_downsamplings=1, buffer_size=16,
                            num_steps=2))],
    "ncsn": [("digits", dict(filters=4, num_noise_levels=3, num_steps=2)),
             ("moons", dict(hidden_units=8, num_hidden=1, num_noise_levels=3, num_steps=2,
                            objective="sliced"))],
    "transformer": [("digits", dict(width=8, num_layers=1, num_heads=2)),  # Image GPT
                    ("fortunes", dict(width=8, num_layers=1, num_heads=2))],
    "wavenet": [("digits", dict(residual_channels=4, skip_channels=8, num_layers=2,
                                num_stacks=1)),
                ("fortunes", dict(residual_channels=4, skip_channels=8, num_layers=2,
                                  num_stacks=1))],
    "vq_vae_prior": [("digits", dict(filters=4, num_layers=2, output_units=8,
                                     first_stage={"model": "vq_vae", "config": {
                                         **zoo.registry.entry("vq_vae").config_for("digits"),
                                         "latent_dim": 2, "num_embeddings": 4, "filters": 4,
                                         "hidden_units": 4, "num_residual_blocks": 1}}))],
    "pixel_vae": [("digits", dict(latent_dim=2, filters=4, hidden_units=8, decoder_filters=4,
                                  decoder_layers=1, decoder_units=4))],
    "ddpm": [("digits", dict(timesteps=4, channels=4, channel_mults=(1,), num_res_blocks=1)),
             ("moons", dict(timesteps=4, hidden_units=8, num_hidden=1, num_classes=3))],
    "iddpm": [("moons", dict(timesteps=4, hidden_units=8, num_hidden=1)),
              ("digits", dict(timesteps=4, channels=4, channel_mults=(1,), num_res_blocks=1,
                              num_classes=10))],  # digits' labels are 0..9
    # Tiny untrained first stages built from their configs, as two_stage_vae's: a
    # VAE's latent vectors (an MLP, a bound), a VQ-VAE's latent grid (a U-Net, none).
    "latent_diffusion": [
        ("digits", dict(timesteps=4, hidden_units=8, num_hidden=1, first_stage={
            "model": "vae", "config": {**zoo.registry.entry("vae").config_for("digits"),
                                       "latent_dim": 2, "filters": 4, "hidden_units": 8}})),
        # (T = 8: its first data signature, encode, gets num_steps 7)
        ("digits", dict(timesteps=8, channels=4, num_res_blocks=1, schedule="cosine",
                        first_stage={"model": "vq_vae", "config": {
                            **zoo.registry.entry("vq_vae").config_for("digits"),
                            "latent_dim": 2, "num_embeddings": 4, "filters": 4,
                            "hidden_units": 4, "num_residual_blocks": 1}}))],
    "sr_diffusion": [("digits", dict(timesteps=4, channels=4, channel_mults=(1,),
                                     num_res_blocks=1, bank_size=4))],
}


def case_id(name, dataset, overrides):
    named = [str(v) for v in overrides.values() if isinstance(v, str)]
    named += [k for k, v in overrides.items() if v is True or k in ("ema_decay", "num_classes")]
    return "-".join([name, dataset, *named])


# Cases whose checks run in the slow suite only, to keep the default one short:
# autoregressive flows over digits' 64 dimensions, whose sampling (MAF, NSF) or
# density (IAF) takes 64 sequential passes, and the second datasets of models whose
# own test files check them there (test_realnvp.py, test_nice_glow.py,
# test_autoregressive_planar.py, test_neural_spline.py, test_wgan_gp.py).
SLOW_CASES = {"maf-digits", "iaf-digits", "nsf-digits-autoregressive", "realnvp-digits",
              "nice-digits", "glow-moons", "wgan_gp-moons",
              # every distance but the first, and the registered GANs, whose distances
              # test_gan_distances.py checks
              *(f"gan-moons-{d}" for d in list(DISTANCES)[1:]),
              "wgan-digits", "wgan_lp-moons", "fgan-moons-f_pearson", "sngan-digits-ema_decay",
              "mmd_gan-moons", "sliced_gan-moons", "max_sliced_gan-digits", "sobolev_gan-moons",
              "swgan-digits",
              # the VAE variants whose pieces their own files check (test_vae_variants.py,
              # test_gumbel_vae.py, test_ladder_vae.py, test_vq_vae.py); by default the
              # contract runs on a flow posterior (iaf_vae) and integer codes (vq_vae)
              "vae-digits-gaussian", "beta_vae-digits", "iwae-digits", "mixture_vae-digits",
              "vamp_vae-digits", "planar_vae-digits", "ladder_vae-digits", "vae_gan-digits",
              "vq_vae-digits-ema", "aae-digits", "gumbel_vae-digits",
              # the unconditional gated PixelCNN, whose network test_autoregressive.py checks
              "gated_pixelcnn-digits",
              # the energy models' options, whose pieces test_energy.py checks
              "ebm-digits", "ebm-moons-short_run", "ncsn-moons-sliced",
              # text, whose pieces test_sequences.py checks
              "transformer-fortunes", "wavenet-fortunes",
              # the unconditional BigGAN (test_gan_architectures.py builds it)
              "biggan-digits-num_classes-ema_decay",
              # conditional diffusion cases: test_diffusion.py checks labels and guidance
              "ddpm-moons-num_classes", "iddpm-digits-num_classes",
              # a VQ-VAE first stage: test_latent_diffusion.py checks its pieces
              "latent_diffusion-digits-cosine"}

CASES = [(name, dataset, overrides, i == 0)
         for name, cases in TINY.items() for i, (dataset, overrides) in enumerate(cases)]
IDS = [case_id(*c[:3]) for c in CASES]
PRIMARY = [c for c in CASES if c[3]]
SLOW = pytest.mark.slow
EVERY_CASE = [pytest.param(c, id=i, marks=SLOW if i in SLOW_CASES else ())
              for c, i in zip(CASES, IDS)]


def build(name, dataset, overrides, primary=True):
    """The case's tiny model (`primary` is the case's flag, unused here)."""
    return zoo.get(name, dataset=dataset, **overrides)


_BUILT = {}


def built(case):
    """The case's model, built once per process, for tests that only read it (its
    weights, its rng state and its compiled state stay untouched)."""
    key = case_id(*case[:3])
    if key not in _BUILT:
        _BUILT[key] = build(*case)
    return _BUILT[key]


def perturb(model, scale=0.05, seed=0):
    """Moves weights off zero initialisations so every gradient path is open."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype("float32"))


def all_outputs(model, seed=11):
    """Every serving signature's outputs on fixed inputs, as numpy."""
    from helpers import all_signature_inputs

    out = {}
    for sig, inputs in all_signature_inputs(model, seed).items():
        fn, specs = model.serving_signatures()[sig]
        for key, value in fn(*[inputs[s.name] for s in specs]).items():
            out[f"{sig}/{key}"] = np.asarray(value)
    return out


@pytest.fixture(params=EVERY_CASE)
def case(request):
    return request.param


def test_every_registered_model_has_a_case():
    registered = {e.name for e in zoo.list_models()}
    assert set(TINY) == registered, "give every registered model a case in TINY"
    for name, dataset, _, _ in CASES:
        assert dataset in zoo.registry.entry(name).presets, (name, dataset)


def assert_case_ids(ids):
    """Every id of a set that selects cases (slow ones, default ones) is a case's."""
    unknown = sorted(set(ids) - set(IDS))
    assert not unknown, f"no such cases: {unknown} (case ids: {IDS})"


def test_slow_case_ids_are_cases():
    assert_case_ids(SLOW_CASES)


def test_every_module_that_registers_a_model_is_installed():
    """setup.py lists, as entry points, the zoo's modules with a line starting
    `@register(`; an install older than a new module misses it."""
    import re

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
    registering = set()
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".py") and re.search(r"^@register\(", open(path).read(), re.M):
                relative = os.path.relpath(path[:-len(".py")], os.path.dirname(root))
                registering.add(relative.replace(os.sep, "."))
    missing = registering - set(zoo.registry.model_modules())
    assert not missing, f"not installed as entry points: {sorted(missing)} (run `make install`)"


def test_the_user_model_is_registered_and_found_like_built_in_ones():
    """A model module outside the zoo registers itself on import (zoo train --import);
    the zoo's own modules are found through their entry points."""
    assert zoo.registry.entry("diagonal_gaussian").cls.__module__ == "my_models"
    assert "zoo.flows.realnvp" in zoo.registry.model_modules()
    with pytest.raises(ValueError, match="cannot import the model module 'no_such_models'"):
        zoo.registry.import_module("no_such_models")


def test_says_what_it_is(case):
    name, dataset, overrides, _ = case
    entry = zoo.registry.entry(name)
    model = built(case)
    assert isinstance(model, keras.Model) and isinstance(model, zoo.base.GenerativeModel)
    assert model.family == entry.family and isinstance(model.family, str) and model.family
    assert model.likelihood in zoo.base.LIKELIHOODS
    if overrides.get("distance", getattr(entry.cls, "default_distance", None)) == \
            getattr(entry.cls, "default_distance", None):  # a GAN's losses are its distance's
        assert tuple(model.loss_names) == tuple(entry.losses)
    assert model.data_shape == zoo.datasets.info(dataset).shape  # from the dataset
    x = raw_batch(model)
    if model.likelihood == "none":
        with pytest.raises(TypeError, match="has no likelihood"):
            model.nll(x)
        return
    nll = model.nll(x, seed=3).numpy()
    assert nll.shape == (4,) and np.all(np.isfinite(nll))
    np.testing.assert_array_equal(nll, model.nll(x, seed=3).numpy())  # seeded
    if model.likelihood == "exact":
        np.testing.assert_allclose(nll, -model.log_prob(x).numpy(), rtol=1e-6)


def test_shapes_and_sample_seed(case):
    model = built(case)
    a = model.sample(3, seed=5).numpy()
    assert a.shape == (3,) + model.data_shape
    np.testing.assert_array_equal(a, model.sample(3, seed=5).numpy())
    assert not np.array_equal(a, model.sample(3, seed=6).numpy())
    terms = model.compute_losses(tf.constant(raw_batch(model)), training=False)
    assert set(terms) == set(model.loss_names)
    for value in terms.values():
        assert value.shape == () and np.isfinite(value.numpy())


XLA_CASES = [p for p in EVERY_CASE if zoo.registry.entry(p.values[0][0]).cls.xla_sampling]


@pytest.mark.parametrize("case", XLA_CASES, ids=[p.id for p in XLA_CASES])
def test_sampling_traced_with_a_fixed_n_compiles_with_xla(case):
    """In a tf.function, sample(n) with an int n runs its deterministic part under
    XLA and gives the eager samples (to float32 round-off: the random draw stays
    outside XLA, whose generator differs); with a tensor n, as in the exported
    signature, it stays a plain graph."""
    model = built(case)
    eager = model.sample(5, seed=3).numpy()
    tolerance = 1e-5 * (1 + np.abs(eager).max())
    model._xla.functions.clear()
    traced = tf.function(lambda: model.sample(5, seed=3))().numpy()
    assert model._xla.functions, "no XLA-compiled function was made"
    np.testing.assert_allclose(traced, eager, rtol=0, atol=tolerance)
    model._xla.functions.clear()
    dynamic = tf.function(lambda n: model.sample(n, seed=3),
                          input_signature=[tf.TensorSpec([], tf.int32)])(5).numpy()
    assert not model._xla.functions
    np.testing.assert_allclose(dynamic, eager, rtol=0, atol=tolerance)


def test_sample_options(case):
    model = built(case)
    with pytest.raises(TypeError, match="unknown option.*'steps'"):
        model.sample(2, seed=0, steps=3)
    for name, option in model.sample_options.items():
        default = model.sample(2, seed=0).numpy()
        np.testing.assert_array_equal(
            default, model.sample(2, seed=0, **{name: option.default}).numpy())
        if option.above is not None:
            for bad in (option.above, option.above - 1):
                with pytest.raises(ValueError, match=f"expected {name} > "):
                    model.sample(2, seed=0, **{name: bad})
        for bound, bad in ((option.at_least, -1), (option.at_most, 1)):
            if bound is not None:  # the bound itself is allowed, beyond it not
                model.sample(2, seed=0, **{name: bound})
                with pytest.raises(ValueError, match=f"expected {name} "):
                    model.sample(2, seed=0, **{name: bound + bad})


def test_gradient_reaches_every_weight(case):
    # Seeded: an unseeded initialisation made this test depend on the tests run before
    # it in the worker. 16 examples, not 4: with 4, a tiny ReLU layer (nsf's 8 units on
    # one coordinate) could have every unit off on every example (all four inputs of
    # one sign, every weight of the other): no gradient by chance, not by a bug.
    keras.utils.set_random_seed(0)
    model = build(*case)
    perturb(model)
    x = tf.constant(raw_batch(model, n=16))
    with tf.GradientTape(persistent=True) as tape:
        terms = model.compute_losses(x, training=True)
    # Term by term: a sum of terms may cancel (the minimax GAN's two losses share
    # the generated batch's score with opposite signs).
    reached = {id(v): False for v in model.trainable_weights}
    for term in terms.values():
        for v, g in zip(model.trainable_weights, tape.gradient(term, model.trainable_weights)):
            reached[id(v)] |= g is not None and bool(np.any(g.numpy() != 0))
    for v in model.trainable_weights:
        assert reached[id(v)], f"no loss term has a gradient for {v.path}"


def test_training_draws_from_the_random_stream(case):
    """The step's noise comes from model.rng: the same state (the stream's and the
    other non-trainable weights', e.g. batch-norm averages) gives the same losses,
    and a step that draws noise moves the stream on."""
    model = build(*case)
    x = tf.constant(raw_batch(model))
    variables = model.weights  # Glow's data-dependent init and batch norms change them
    state = [v.numpy() for v in variables]
    stream = model.rng.state.numpy()
    first = {k: v.numpy() for k, v in model.compute_losses(x, training=True).items()}
    moved = not np.array_equal(model.rng.state.numpy(), stream)
    for v, value in zip(variables, state):
        v.assign(value)
    model.rng.state.assign(stream)
    again = {k: v.numpy() for k, v in model.compute_losses(x, training=True).items()}
    assert first == again
    assert moved == model.draws_training_noise


def test_config_round_trip(case):
    model = built(case)
    config = model.get_config()
    json.dumps(config)  # plain values only
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def first_data_method(model):
    """The first serving signature that takes data (log_prob, elbo, critic...),
    or for a model that takes none (a GAN without a critic) the first that takes
    latents (``generate``), with the kind of input it takes."""
    for kind, name, shape in (("data", "x", model.data_shape),
                              ("latent", "z", tuple(model.latent_shape))):
        for sig, (fn, specs) in model.serving_signatures().items():
            if specs[0].shape[1:] == shape and specs[0].name == name:
                def call(x, fn=fn, specs=specs):
                    # A seed, or one (valid) class label per example.
                    batch = len(x) if getattr(x, "ndim", 0) >= 1 else 1
                    return fn(x, *[np.zeros(batch, np.int32) if s.shape.rank == 1
                                   else np.asarray(7, np.int32) for s in specs[1:]])
                return sig, call, kind
    raise AssertionError("no serving signature takes data or latents")


def test_bad_inputs_give_clear_errors(case):
    model = built(case)
    sig, fn, kind = first_data_method(model)
    good = raw_batch(model, 2) if kind == "data" else \
        np.zeros((2,) + tuple(model.latent_shape), "float32")
    fn(good)  # fine
    assert all(v.shape[0] == 0 for v in fn(good[:0]).values())  # an empty batch: empty
    wrong_shape = np.zeros((2,) + tuple(d + 1 for d in good.shape[1:]), "float32")
    shape = r"shape \(batch,\)" if kind == "data" else \
        rf"z of shape \(batch, {', '.join(map(str, model.latent_shape))}\)"
    with pytest.raises(ValueError, match=f"expected {shape}"):
        fn(wrong_shape)
    with pytest.raises(ValueError, match=f"expected {shape}"):
        fn(good[0])  # no batch dimension
    with pytest.raises(TypeError, match="expected a float"):
        fn(np.full(good.shape, "a"))
    with pytest.raises(TypeError, match=f"expected a float tensor of {shape}"):
        fn(None)
    nan = good.copy()
    nan[0, ...] = np.nan
    with pytest.raises(ValueError, match="expected finite values"):
        fn(nan)
    if model.num_levels is not None and kind == "data":
        what = "symbols" if model.data_kind == "sequences" else "raw pixel values"
        with pytest.raises(ValueError, match=f"expected {what}"):
            fn(good + 10 * model.num_levels)
    for n in (0, -1, None, 2.5, True, tf.constant(-1), tf.constant(0)):
        with pytest.raises(ValueError, match="expected n >= 1"):
            model.sample(n, seed=0)
    with pytest.raises(ValueError, match="expected seed"):
        model.sample(2, seed=2**40)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'realnpv'.*Did you mean"):
        zoo.get("realnpv")
    with pytest.raises(ValueError, match="no preset for dataset 'cifar10'"):
        zoo.get("realnvp", dataset="cifar10")
