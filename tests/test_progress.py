"""Progress on stderr (`zoo.progress`): a line per stage in a log, tqdm bars on a
terminal, through the native-log filter as they are drawn; none when quiet."""

import os
import subprocess
import sys

import pytest

from zoo import progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def shown():
    """Progress as the `zoo` command sets it in a log; put back afterwards."""
    saved = progress.mode()
    progress.configure(terminal=False)
    yield
    progress.set_mode(saved)


def test_a_stage_writes_one_line_in_a_log(shown, capsys):
    with progress.task("evaluate"):
        with progress.stage("sampling", 300, "samples") as stage:
            for _ in range(3):
                stage.update(100)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("zoo: evaluate: sampling: 300/300 samples in ")
    assert lines[0].endswith(" samples/s)")


def test_a_failed_stage_writes_no_line_and_a_stopped_track_ends_done(shown, capsys):
    with pytest.raises(ValueError):
        with progress.stage("loss terms", 10, "batches") as stage:
            stage.update()
            raise ValueError("diverged")
    assert capsys.readouterr().err == ""
    for item in progress.track(range(10), "sample", 3, "batches"):
        if item == 2:
            break  # the consumer has what it wanted: three were drawn
    assert capsys.readouterr().err.startswith("zoo: sample: 3/3 batches in ")


def test_quiet_and_hidden_stages_write_nothing(capsys):
    saved = progress.mode()
    try:
        assert progress.configure(quiet=True) == progress.OFF
        with progress.stage("tracing", 2, "signatures") as stage:
            stage.update(2)
        assert progress.configure(terminal=False) == progress.LINES
        list(progress.track(range(3), "sample", 3, show=False))
    finally:
        progress.set_mode(saved)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress mode: expected one of"):
        progress.set_mode("loud")


# A bar on a terminal (a pty): tqdm redraws it with \r and no newline, which the
# native-log filter must pass on as it comes, not hold until the line ends.
ON_A_TERMINAL = r"""
import os, sys, time, types
zoo = types.ModuleType("zoo")  # the package's modules without its __init__ (TensorFlow)
zoo.__path__ = [os.path.join(sys.argv[1], "zoo")]
sys.modules["zoo"] = zoo
from zoo import progress, quiet
quiet.filter_native_logs()
assert not sys.stderr.isatty() and quiet.stderr_is_terminal()
assert progress.configure() == progress.BAR
stage = progress.Stage("evaluate: sampling", 4, "samples")
time.sleep(0.5)  # tqdm redraws at most every 0.2 s
stage.update(1)
time.sleep(0.5)
os.write(1, b"drawn\n")  # the parent reads the terminal now: the bar must be there
time.sleep(0.5)
stage.update(3)
stage.close()
"""


def test_a_bar_reaches_the_terminal_while_it_is_drawn():
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", ON_A_TERMINAL, ROOT], stdout=subprocess.PIPE,
                            stderr=follower, env={**os.environ, "COLUMNS": "100"})
    os.close(follower)
    assert proc.stdout.readline() == b"drawn\n"
    seen = os.read(leader, 65536).decode()
    assert "evaluate: sampling:  25%" in seen and "1/4" in seen and "\n" not in seen, seen
    assert proc.wait(timeout=60) == 0
    rest = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process and its terminal are gone
            break
        if not chunk:
            break
        rest += chunk
    os.close(leader)
    assert "4/4" in rest.decode()
