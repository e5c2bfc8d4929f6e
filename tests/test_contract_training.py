"""The model contract's training checks, over every registered model (cases from
test_contract.py): a fit step on the tfds pipeline, a jit-compiled one, and (slow) the
``.keras`` save -> reload round trip in this process."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from helpers import training_batch
from test_contract import CASES, IDS, SLOW, all_outputs, assert_case_ids, build, perturb


# The fit steps of NSF, Glow and FFJORD, whose first trace is long, run in the slow
# suite: their own test files fit them (test_neural_spline.py, test_nice_glow.py,
# test_ffjord.py). So do those of the GANs registered under a distance's name but
# gmmn (the critic-free step) and sngan (the conditional one): test_gan_distances.py
# checks their distances. And those of the VAE variants that test_vae_variants.py,
# test_ladder_vae.py and test_vq_vae.py train or step (iaf_vae's flow is checked
# there; vq_vae fits by default).
FIT_SLOW = {"nsf-moons", "glow-digits", "ffjord-moons", "mmd_gan-moons", "sliced_gan-moons",
            "max_sliced_gan-digits", "sobolev_gan-moons", "swgan-digits", "wgan-digits",
            "wgan_lp-moons", "fgan-moons-f_pearson", "beta_vae-digits", "iwae-digits",
            "mixture_vae-digits", "vamp_vae-digits", "planar_vae-digits", "ladder_vae-digits",
            "vae_gan-digits", "iaf_vae-digits", "aae-digits", "gumbel_vae-digits",
            # flows whose own files fit them on moons (test_realnvp.py,
            # test_autoregressive_planar.py)
            "realnvp-moons", "maf-moons", "planar-moons", "radial-moons",
            # PixelCNN++, whose step (two streams of shifted convolutions down and up)
            # takes long to trace; PixelCNN and the gated one fit by default
            "pixelcnn_pp-digits",
            # trained on moons by test_energy.py
            "ebm-moons",
            # PixelVAE, whose step is the VAE's bound over a Gated PixelCNN decoder
            # (the vae and gated_pixelcnn cases fit by default); vq_vae_prior fits
            "pixel_vae-digits",
            # GAN architectures whose compiled steps take long to trace (lazy
            # penalties, path lengths): test_gan_architectures.py steps them
            "stylegan-digits", "biggan-digits-num_classes",
            # SR3's U-Net on an image and its upsampled low resolution (ddpm-digits fits
            # the U-Net by default)
            "sr_diffusion-digits"}


@pytest.mark.parametrize("case", [
    pytest.param(c, id=i, marks=SLOW if not c[3] or i in FIT_SLOW else ())
    for c, i in zip(CASES, IDS)])
def test_fit_step_on_tfds_pipeline(case, data_dir):
    name, dataset, overrides, _ = case
    model = build(*case)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    labelled = bool(getattr(model, "num_classes", 0))
    ds = zoo.datasets.load(dataset, "train", batch_size=16, take=64, data_dir=data_dir,
                           with_labels=labelled)
    history = model.fit(ds, epochs=1, verbose=0)
    for key, values in history.history.items():
        assert np.isfinite(values[-1]), key
    result = model.evaluate(zoo.datasets.load(dataset, "test", batch_size=16, take=32,
                                              data_dir=data_dir, with_labels=labelled),
                            verbose=0, return_dict=True)
    assert set(result) == set(model.loss_names)


# XLA-compiled by default: a flow of MADE steps and the VAE; the others (the ODE
# solver's among them) in the slow suite. Glow's jit step (affine couplings on
# vectors) and the GAN's are tested in test_nice_glow.py and test_wgan_gp.py.
JIT_DEFAULT = {"maf-moons", "vae-digits"}


@pytest.mark.parametrize("case", [pytest.param(c, id=i, marks=() if i in JIT_DEFAULT else SLOW)
                                  for c, i in zip(CASES, IDS)])
def test_jit_compiled_fit_step(case):
    model = build(*case)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    ds = tf.data.Dataset.from_tensor_slices(training_batch(model, 32)).batch(16)
    history = model.fit(ds, epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())


# In this process; by default the fresh process of test_contract_processes.py does it.
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_keras_save_reload_equal(case, tmp_path):
    model = build(*case)
    perturb(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_array_equal(reloaded.rng.state.numpy(), model.rng.state.numpy())
    before, after = all_outputs(model), all_outputs(reloaded)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_case_id_lists_are_cases():
    for ids in (FIT_SLOW, JIT_DEFAULT):
        assert_case_ids(ids)
