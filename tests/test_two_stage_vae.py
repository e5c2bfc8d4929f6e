"""Two-stage models: ``zoo train two_stage_vae --first-stage RUN`` on a tiny VAE run,
the run's record of its first stage, a self-contained checkpoint and export, and
the first stages that are refused (one error line, nothing written)."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import zoo
from helpers import export_and_compare
from test_cli import diverge, one_error_line, read, zoo as run_zoo
from zoo import runs

TINY_VAE = ["--dataset", "digits", "--set", "latent_dim=2", "--set", "filters=4",
            "--set", "hidden_units=8", "--steps-per-epoch", "2", "--batch-size", "32"]
TINY_TWO_STAGE = ["--set", "num_couplings=2", "--set", "hidden_units=8", "--set", "num_blocks=1",
                  "--steps-per-epoch", "2", "--batch-size", "32"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, data_dir):
    """A finished one-epoch run of a tiny VAE on digits (2 steps of 32)."""
    run = tmp_path_factory.mktemp("runs") / "vae-digits"
    assert run_zoo("train", "vae", *TINY_VAE, "--epochs", 1, "--out", run,
                   "--data-dir", data_dir) == 0
    return run


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_two_stage_run_is_self_contained(vae_run, tmp_path, capsys, data_dir):
    first = shutil.copytree(vae_run, tmp_path / "vae")
    run = tmp_path / "two_stage"
    assert run_zoo("train", "two_stage_vae", "--first-stage", first, *TINY_TWO_STAGE,
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    checkpoint = first / "checkpoints" / "epoch_0001.keras"
    assert read(run / "run.json")["first_stage"] == {
        "run": str(first), "checkpoint": "epoch_0001.keras", "sha256": sha256(checkpoint)}
    vae = zoo.runs.load_model_file(str(checkpoint))
    model, _, _ = runs.load_checkpoint(run)
    assert not model.first_stage_model.trainable_weights
    for a, b in zip(model.first_stage_model.weights, vae.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)

    # Nothing needs the first stage's folder any more: resume, sample, evaluate,
    # export and compare the run without it.
    shutil.rmtree(first)
    assert run_zoo("train", "--out", run, "--resume", "--epochs", 2, "two_stage_vae") == 0
    assert read(run / "checkpoints" / "latest.json")["epoch"] == 2
    assert run_zoo("sample", run, "-n", 8) == 0
    assert run_zoo("evaluate", run, "--num-samples", 100) == 0
    metrics = read(run / "metrics.json")
    assert "nll_nats" not in metrics and np.isfinite(metrics["sample_quality"]["fid"])
    assert run_zoo("export", run, "--base", tmp_path / "exports") == 0
    assert os.path.isfile(tmp_path / "exports" / "two_stage_vae" / "1" / "saved_model.pb")
    assert run_zoo("compare", "digits", run, "--num-samples", 100,
                   "--out", tmp_path / "compared") == 0
    capsys.readouterr()

    # The export decodes through the first stage: reloaded without the zoo, in a
    # fresh process, its samples and signatures match the checkpoint's.
    model, _, _ = runs.load_checkpoint(run)
    export_and_compare(model, tmp_path / "fresh")


def damage(folder):
    with open(folder / "checkpoints" / "epoch_0001.keras", "r+b") as f:
        f.truncate(100)


def edit_run(key, value):
    def edit(folder):
        settings = read(folder / "run.json")
        settings[key] = value
        runs.write_json(str(folder / "run.json"), settings)
    return edit


@pytest.mark.parametrize("change, expected", [
    (shutil.rmtree, "first stage '{first}': no run folder at '{first}'"),
    (damage, "first stage '{first}': no checkpoint of '{first}' loads: "),
    (diverge, "first stage '{first}': checkpoint {first}/checkpoints/epoch_0002.keras holds "
              "non-finite weights"),
    (edit_run("dataset", "fashion_mnist"),
     "first stage '{first}' was trained on 'fashion_mnist', not on 'digits'"),
    (edit_run("model", "beta_vae"), "first stage '{first}' is a run of model 'beta_vae'; model "
                                    "'two_stage_vae' takes a first stage of model 'vae'"),
], ids=["missing", "damaged", "diverged", "other-dataset", "other-model"])
def test_a_bad_first_stage_is_one_error_line(change, expected, vae_run, tmp_path, capsys,
                                             data_dir):
    first = shutil.copytree(vae_run, tmp_path / "vae")
    change(first)
    out = tmp_path / "two_stage"
    capsys.readouterr()
    assert run_zoo("train", "two_stage_vae", "--first-stage", first, *TINY_TWO_STAGE,
                   "--out", out, "--data-dir", data_dir) == 2
    one_error_line(capsys, expected.format(first=first))
    assert not os.path.exists(out)


@pytest.mark.parametrize("argv, expected", [
    (["two_stage_vae"], "model 'two_stage_vae' needs a trained first stage: pass "
                        "--first-stage RUN_FOLDER, a run of 'vae' on 'digits'"),
    (["realnvp", "--first-stage", "{first}"],
     "model 'realnvp' takes no first stage; leave --first-stage out"),
    (["two_stage_vae", "--first-stage", "{first}", "--set", "first_stage={{}}"],
     "first_stage is not a parameter to set: pass --first-stage RUN_FOLDER"),
], ids=["none", "not-two-stage", "set"])
def test_first_stage_arguments_are_checked(argv, expected, vae_run, tmp_path, capsys, data_dir):
    out = tmp_path / "run"
    argv = [a.format(first=vae_run) for a in argv]
    capsys.readouterr()
    assert run_zoo("train", *argv, "--out", out, "--data-dir", data_dir) == 2
    one_error_line(capsys, expected)
    assert not os.path.exists(out)


def test_zoo_get_copies_and_checks_the_first_stage():
    vae = zoo.get("vae", dataset="digits", latent_dim=2, filters=4, hidden_units=8)
    model = zoo.get("two_stage_vae", dataset="digits", first_stage=vae, num_couplings=2,
                    hidden_units=8, num_blocks=1)
    assert model.first_stage_model is not vae and vae.trainable  # the user's model as it was
    for a, b in zip(model.first_stage_model.weights, vae.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert model.get_config()["first_stage"] == {"model": "vae", "config": vae.get_config()}
    json.dumps(model.get_config())
    with pytest.raises(ValueError, match="expected a first stage of model 'vae', got 'realnvp'"):
        zoo.get("two_stage_vae", dataset="digits", first_stage=zoo.get("realnvp", "moons"))
    with pytest.raises(ValueError, match=r"expected a first stage of data_shape \(28, 28, 1\) "
                                         r"and num_levels 256 \(the same dataset\), got "
                                         r"\(8, 8, 1\) and 17"):
        zoo.get("two_stage_vae", dataset="fashion_mnist", first_stage=vae)
    with pytest.raises(ValueError, match="expected first_stage to be a trained model"):
        zoo.get("two_stage_vae", dataset="digits")
    with pytest.raises(ValueError, match="expected a first stage of model 'vae', got 'vea'"):
        zoo.get("two_stage_vae", dataset="digits", first_stage={"model": "vea", "config": {}})


def test_resume_before_the_first_checkpoint_reloads_the_recorded_first_stage(
        vae_run, tmp_path, capsys, data_dir):
    """A run killed in its first epoch (run.json, no checkpoint) resumes from the
    first stage it recorded, and refuses it once that run's checkpoint changed."""
    first = shutil.copytree(vae_run, tmp_path / "vae")
    run = tmp_path / "two_stage"
    assert run_zoo("train", "two_stage_vae", "--first-stage", first, *TINY_TWO_STAGE,
                   "--epochs", 1, "--out", run, "--data-dir", data_dir) == 0
    recorded = read(run / "run.json")["first_stage"]
    shutil.rmtree(run / "checkpoints")
    capsys.readouterr()
    assert run_zoo("train", "two_stage_vae", "--out", run, "--resume",
                   "--first-stage", tmp_path / "other") == 2
    one_error_line(capsys, f"was started with --first-stage {str(first)!r}, but "
                           f"{str(tmp_path / 'other')!r} was given")
    assert run_zoo("train", "two_stage_vae", "--out", run, "--resume") == 0
    assert read(run / "run.json")["first_stage"] == recorded
    shutil.rmtree(run / "checkpoints")
    assert run_zoo("train", "vae", "--out", first, "--resume", "--epochs", 2) == 0
    before = {p: os.path.getmtime(p) for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert run_zoo("train", "two_stage_vae", "--out", run, "--resume") == 2
    one_error_line(capsys, f"the first stage of run {str(run)!r} has changed since the run "
                           "started (it recorded 'epoch_0001.keras'")
    assert {p: os.path.getmtime(p) for p in run.rglob("*") if p.is_file()} == before


def test_a_damaged_first_stage_record_is_one_error_line(vae_run, tmp_path, capsys):
    run = shutil.copytree(vae_run, tmp_path / "run")
    edit_run("first_stage", {"run": 3})(run)
    assert run_zoo("train", "vae", "--out", run, "--resume", "--epochs", 2) == 2
    line = one_error_line(capsys, "are damaged: expected an object with")
    assert "got first_stage={'run': 3}." in line
