"""A run folder's safety: one writer (its lock), a new run only into a new or empty
folder, lost and damaged files, Ctrl-C; on tiny runs through the `zoo` command.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from zoo import runs, training

# The same module fixtures as test_cli.py's (each file trains its own runs once).
from test_cli import (TINY_MOONS, copy_run, files, moons_run, one_error_line,  # noqa: F401
                      pasted, read, read_bytes, three_epochs, zoo)

# Holds the lock of the run folder argv[1] as a run's writer does, until killed.
HOLD_LOCK = textwrap.dedent("""
    import fcntl, json, os, socket, sys, time
    fd = os.open(os.path.join(sys.argv[1], ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
    print("locked", flush=True)
    time.sleep(600)
""")


# ------------------------------------------------------------------ one writer
def test_a_second_writer_is_refused_naming_the_holder(moons_run, tmp_path, capsys, data_dir):
    """While another process holds a run's lock, `zoo train` (resumed or new) exits 2
    naming its pid and changes nothing; once it is killed, the run resumes at once."""
    run = copy_run(moons_run, tmp_path, "locked")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = files(run)
        for argv in (["--out", run, "--resume", "--epochs", 2],
                     [*TINY_MOONS, "--out", run]):
            assert zoo("train", "realnvp", *argv, "--data-dir", data_dir) == 2, argv
            line = one_error_line(capsys, f"pid {holder.pid} on host")
            assert "is being written by another process" in line
        assert files(run) == before
    finally:
        holder.kill()
        holder.wait()
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2,
               "--data-dir", data_dir) == 0
    assert read(run / "checkpoints" / "latest.json")["epoch"] == 2
    assert not (run / ".lock").exists()  # let go when the run ended


def test_a_lock_is_held_by_one_writer(tmp_path):
    first = runs.RunLock(tmp_path / "new" / "run").acquire()
    assert json.loads((tmp_path / "new" / "run" / ".lock").read_text())["pid"] == os.getpid()
    with pytest.raises(runs.RunError, match=f"pid {os.getpid()} on host"):
        runs.RunLock(tmp_path / "new" / "run").acquire()
    assert runs.RunLock(tmp_path / "new" / "run").holder() is not None
    first.release()
    assert os.listdir(tmp_path) == []  # it made the folders, and nothing was written
    with runs.RunLock(tmp_path / "new"):
        assert runs.RunLock(tmp_path / "new").holder() is not None
    assert runs.RunLock(tmp_path / "new").holder() is None


def test_a_checkpoint_rotated_away_while_read_is_no_damage(three_epochs, tmp_path, monkeypatch,
                                                           caplog):
    """`zoo sample/evaluate/export` of a run being trained: the checkpoints the
    index named were rotated away while they were read; the index is read again
    and the newest checkpoint loads, without a warning of damage."""
    run = copy_run(three_epochs, tmp_path, "rotating")
    load = runs.load_model_file
    calls = []

    def training_meanwhile(path):
        if not calls:  # the trainer writes epochs 4 to 6 and keeps the last three
            folder = run / "checkpoints"
            for epoch in (4, 5, 6):
                (folder / runs.checkpoint_name(epoch)).write_bytes(
                    read_bytes(folder / "epoch_0003.keras"))
            for epoch in (1, 2, 3):
                os.remove(folder / runs.checkpoint_name(epoch))
            runs.write_json(str(folder / "latest.json"), {"epoch": 6, "file": "epoch_0006.keras"})
        calls.append(path)
        return load(path)

    monkeypatch.setattr(runs, "load_model_file", training_meanwhile)
    model, settings, checkpoint = runs.load_checkpoint(run)
    assert checkpoint.epoch == 6 and settings["model"] == "realnvp"
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


# ------------------------------------------------------------------ a new run's folder
def test_a_new_run_goes_only_into_a_new_or_empty_folder(moons_run, tmp_path, capsys, data_dir):
    mine = tmp_path / "mine"
    (mine / "samples").mkdir(parents=True)
    (mine / "history.json").write_text('{"my": "notes"}')
    (mine / "samples" / "epoch_0001.png").write_bytes(b"my picture")
    before = files(mine)
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", mine, "--data-dir", data_dir) == 2
    line = one_error_line(capsys, "holds other files (history.json, samples)")
    assert "a new run goes into a new or empty folder" in line
    assert files(mine) == before and sorted(os.listdir(mine)) == ["history.json", "samples"]

    started = copy_run(moons_run, tmp_path, "started")  # a run without checkpoints
    for name in runs.checkpoint_files(started) + ["latest.json"]:
        os.remove(started / "checkpoints" / name)
    before = files(started)
    assert zoo("train", "realnvp", *TINY_MOONS, "--out", started, "--data-dir", data_dir) == 2
    one_error_line(capsys, "holds a run without checkpoints (its run.json); pass --resume")
    assert files(started) == before

    empty = tmp_path / "empty"
    empty.mkdir()
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", 1, "--out", empty,
               "--data-dir", data_dir) == 0
    assert runs.checkpoint_files(empty) == ["epoch_0001.keras"]


def test_the_root_folder_is_no_new_run_folder():
    with pytest.raises(runs.RunError, match="'/' is a folder that holds other files"):
        runs.check_new_folder("/")


# ------------------------------------------------------------------ lost and damaged files
def test_resume_without_history_says_what_was_lost(three_epochs, tmp_path, capsys, data_dir):
    run = copy_run(three_epochs, tmp_path, "no-history")
    os.remove(run / "history.json")
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 4,
               "--data-dir", data_dir) == 0
    err = capsys.readouterr().err
    assert f"{run / 'history.json'} has no record of epochs 1-3: their losses and times " \
           "are lost" in err, err
    assert [r["epoch"] for r in read(run / "history.json")] == [4]


@pytest.mark.parametrize("name, recover", [
    ("run.json", "Restore the file, or start a new run with another --out"),
    ("checkpoints/latest.json", "Delete it to fall back to the newest checkpoint that loads"),
    ("history.json", "Restore it, or delete it to keep only the epochs trained from now on"),
])
def test_a_file_that_is_not_json_says_how_to_recover(name, recover, moons_run, tmp_path,
                                                     capsys):
    run = copy_run(moons_run, tmp_path, "garbled")
    (run / name).write_text('{"epoch": 1, "fi')
    before = files(run)
    assert zoo("train", "realnvp", "--out", run, "--resume", "--epochs", 2) == 2
    line = one_error_line(capsys, f"{run / name} cannot be read")
    assert line.endswith(recover), line
    assert files(run) == before


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_names_the_last_checkpoint_and_how_to_resume(tmp_path, monkeypatch, capsys,
                                                            data_dir):
    original = training.SampleGrid.on_epoch_end

    def ctrl_c_in_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.SampleGrid, "on_epoch_end", ctrl_c_in_epoch_2)
    run = tmp_path / "interrupted"
    assert zoo("train", "realnvp", *TINY_MOONS, "--epochs", 3, "--out", run,
               "--data-dir", data_dir) == 130
    line = one_error_line(capsys, "interrupted; the last good checkpoint, ")
    assert f"{run / 'checkpoints' / 'epoch_0002.keras'} (epoch 2), is intact" in line
    assert not (run / ".lock").exists()
    monkeypatch.setattr(training.SampleGrid, "on_epoch_end", original)
    assert zoo(*pasted(line)) == 0
    assert read(run / "checkpoints" / "latest.json")["epoch"] == 3
