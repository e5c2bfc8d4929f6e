"""Checkpoints written by zoo 0.1 load in this version and give what 0.1 gave.

tests/data/zoo_0_1 holds small checkpoints saved by zoo 0.1 (written by its
make.py from a checkout of that version) and the samples and log-densities zoo 0.1
computed from them. Since 0.2 a model holds a random stream whose state checkpoints
save, and the VAE's `likelihood` argument is called `observation`.
"""

import json
import logging
import os

import keras
import numpy as np
import pytest

import zoo  # noqa: F401  (registers the model classes)

DATA = os.path.join(os.path.dirname(__file__), "data", "zoo_0_1")
EXPECTED = json.load(open(os.path.join(DATA, "expected.json")))


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_zoo_0_1_checkpoint_loads_with_its_weights_and_optimizer_state(key, caplog):
    expected = EXPECTED[key]
    with caplog.at_level(logging.WARNING, logger="zoo"):
        model = keras.models.load_model(os.path.join(DATA, key + ".keras"))
    assert "holds no random-stream state" in caplog.text
    # To a few float32 ulps, not bit for bit: oneDNN picks its convolution and
    # matmul kernels by the CPU's instruction set, and on another CPU than the
    # one that wrote these files 12 of the GAN's 256 pixels differed by 1-2 ulps
    # (2e-7 relative). A weight loaded wrongly moves them by orders of magnitude more.
    np.testing.assert_allclose(np.asarray(model.sample(4, seed=1)), expected["sample"],
                               rtol=1e-6, atol=1e-6)
    if "log_prob" in expected:
        x = np.asarray(expected["x"], np.float32)
        np.testing.assert_allclose(np.asarray(model.log_prob(x)), expected["log_prob"],
                                   rtol=1e-6, atol=1e-6)
    # Two training steps were taken and counted (by the critic's optimizer in a GAN,
    # whose generator waits n_critic steps).
    assert max(int(o.iterations.numpy()) for o in model.all_optimizers()) == 2


def test_zoo_0_1_vae_observation_argument_is_read_from_likelihood():
    model = keras.models.load_model(os.path.join(DATA, "vae_digits.keras"))
    assert model.observation == "logistic"
    assert model.likelihood == "bound"
