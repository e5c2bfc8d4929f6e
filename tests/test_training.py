"""A killed run resumes bit for bit: the data order, the step's random numbers and
the optimizer all continue from the checkpoint as if the run had never stopped."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import events
from zoo import runs, training

SETTINGS = dict(epochs=2, steps_per_epoch=3, batch_size=16, verbose=0)
MODELS = {
    # Dequantization noise in every step.
    "nice": ("digits", dict(hidden_units=8, num_hidden=1)),
    # Latents, dequantization and interpolation noise; two optimizers; n_critic.
    "wgan_gp": ("digits", dict(latent_dim=4, filters=4, n_critic=2)),
    # Diffusion-GAN: timesteps and diffusion noise from the stream, its T a weight.
    "diffusion_gan": ("digits", dict(latent_dim=4, filters=4, t_min=2, t_max=10,
                                     adjust_interval=2)),
}

# Trains in a fresh process and kills it (SIGKILL) in the middle of epoch 2, after
# epoch 1's checkpoint was written.
KILLED = r"""
import json, os, signal, sys
import keras
from zoo import training

class KillMidEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

name, dataset, out, overrides, settings = json.loads(sys.argv[1])
training.train(name, dataset, out, overrides=overrides, callbacks=[KillMidEpoch()], **settings)
"""


def state(model):
    """Every weight (the random stream's state included) and optimizer variable."""
    return [np.asarray(v) for v in model.weights] + [
        np.asarray(v) for optimizer in model.all_optimizers() for v in optimizer.variables]


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


# NICE by default (a flow with dequantization noise from the random stream); the
# GANs' two optimizers and schedule in the slow suite.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n != "nice"
                                  else n for n in MODELS])
def test_killed_run_resumes_bit_for_bit(name, tmp_path, data_dir):
    dataset, overrides = MODELS[name]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    training.train(name, dataset, straight, overrides=overrides, data_dir=data_dir, **SETTINGS)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "ZOO_DATA_DIR": data_dir}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, json.dumps([name, dataset, killed, overrides, SETTINGS])],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert runs.checkpoint_files(killed) == ["epoch_0001.keras"]
    assert [r["epoch"] for r in runs.read_history(killed)] == [1]

    result = training.train(name, None, killed, resume=True, data_dir=data_dir, verbose=0)
    assert result.epoch == 2 and result.finished

    a, _, _ = runs.load_checkpoint(straight)
    b, _, _ = runs.load_checkpoint(killed)
    assert len(state(a)) == len(state(b))
    for x, y in zip(state(a), state(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(np.asarray(a.rng.state), [0, 0])
    assert without_seconds(runs.read_history(straight)) == \
        without_seconds(runs.read_history(killed))

    # TensorBoard reads the killed run's logs whole: every epoch once, as if it had
    # never stopped (the killed process's event files end at its last flush).
    for folder in ("train", "validation"):
        want = events(os.path.join(straight, "logs", folder))
        got = events(os.path.join(killed, "logs", folder))
        for tag in ("epoch_loss", "samples"):
            if tag not in want:  # the validation run has no pictures
                assert tag not in got
                continue
            assert [s for s, _ in got[tag][1]] == [0, 1]
            for (_, x), (_, y) in zip(want[tag][1], got[tag][1]):
                np.testing.assert_array_equal(x, y)


def test_validation_changes_no_bit_of_the_training(tmp_path, data_dir):
    """A VAE's test step draws its posterior samples from the random stream; the
    validation inside `fit` puts the stream back, so a run trains the same bits
    whether it evaluates the test split every epoch or never."""
    overrides = dict(latent_dim=2, filters=4, hidden_units=8)
    models = []
    for every in (0, 1):
        out = str(tmp_path / f"every{every}")
        training.train("vae", "digits", out, overrides=overrides, data_dir=data_dir,
                       validate_every=every, **SETTINGS)
        models.append(runs.load_checkpoint(out)[0])
        validated = ["val_loss" in r for r in runs.read_history(out)]
        assert validated == [bool(every)] * SETTINGS["epochs"]
    a, b = models
    for x, y in zip(state(a), state(b)):
        np.testing.assert_array_equal(x, y)
