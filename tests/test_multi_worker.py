"""Strategy choice: TF_CONFIG checks, and a real two-worker run on loopback ports.

The two workers are separate processes (MultiWorkerMirroredStrategy's collectives
over gRPC on 127.0.0.1, ports chosen free at run time), each training the same
tiny model for a few steps through :func:`zoo.training.train`; the test stops
them if they outlive their time. The default suite runs the flow's two-worker
run against one process; resuming it, a GAN on two workers and a worker killed
mid-run (through the `zoo` command) run in the slow suite (a minute or two each
on 2 cores).
"""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from zoo import distribute, training
from zoo.runs import RunError

from helpers import TWO_REPLICAS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER_TIMEOUT = 300

# One worker: trains `model` on `dataset` into `out` under the strategy given, then
# saves every weight of the trained model (in the model's order) to `weights`. Each
# training step prints "BATCH n", the number of examples it took (no validation:
# its test steps would print too).
WORKER = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
from zoo import training
from zoo.base import GenerativeModel
job = json.loads(sys.argv[1])
unpack = GenerativeModel.unpack
def counted(self, data):
    x = unpack(self, data)
    tf.print("BATCH", tf.shape(x)[0], output_stream=sys.stdout)
    return x
GenerativeModel.unpack = counted
result = training.train(job["model"], job["dataset"], job["out"], epochs=job["epochs"],
                        steps_per_epoch=job["steps"], batch_size=job["batch"],
                        overrides=job["overrides"], strategy=job["strategy"], verbose=0,
                        resume=job.get("resume", False), validate_every=0)
np.savez(job["weights"], *[np.asarray(w) for w in result.model.weights])
print("RESULT " + json.dumps({"checkpoint": result.checkpoint, "epoch": result.epoch}),
      flush=True)
"""

FLOW = dict(model="realnvp", dataset="moons", overrides=dict(hidden_units=8, num_couplings=2))
GAN = dict(model="gan", dataset="moons", overrides=dict(hidden_units=8, num_hidden=1))


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_workers(commands):
    """Starts one process per command (an argv list), each a worker of one cluster
    on free loopback ports (TF_CONFIG: worker i runs commands[i])."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(len(commands))]
    processes = []
    for i, command in enumerate(commands):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT] + sys.path),
               "TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                        "task": {"type": "worker", "index": i}})}
        processes.append(subprocess.Popen(command, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return processes


def worker_command(job):
    return [sys.executable, "-c", WORKER, json.dumps(job)]


def finish(process):
    """(exit code, RESULT dict or None, stderr) of a worker; kills it after
    WORKER_TIMEOUT seconds."""
    try:
        out, err = process.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return None, None, f"killed after {WORKER_TIMEOUT} s\n{err}"
    results = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    if results:
        results[0]["batches"] = [int(line.split()[1]) for line in out.splitlines()
                                 if line.startswith("BATCH ")]
    return process.returncode, (results or [None])[0], err


def weights(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def two_workers(tmp_path, spec, epochs=2, steps=3, batch=16):
    """Runs `spec` on two workers; returns the jobs and their outcomes."""
    jobs = [dict(spec, out=str(tmp_path / "run"), epochs=epochs, steps=steps, batch=batch,
                 strategy="multi_worker", weights=str(tmp_path / f"worker{i}.npz"))
            for i in range(2)]
    return jobs, [finish(p) for p in start_workers([worker_command(j) for j in jobs])]


@pytest.fixture(scope="module")
def flow_runs(tmp_path_factory):
    """The tiny flow on two workers, and alone in one process on the same batches."""
    tmp = tmp_path_factory.mktemp("flow")
    jobs, outcomes = two_workers(tmp, FLOW)
    alone = training.train(FLOW["model"], FLOW["dataset"], tmp / "single", epochs=2,
                           steps_per_epoch=3, batch_size=16, overrides=FLOW["overrides"],
                           verbose=0)
    return tmp, jobs, outcomes, [np.asarray(w) for w in alone.model.weights]


def test_two_workers_train_like_one_process(flow_runs):
    """Both workers end with the same weights, equal to a one-process run on the
    same global batches up to float32 round-off: the data's DATA auto-sharding
    gives each worker half of each global batch of 16 (each of the 6 steps took 8
    examples on each worker). Only the chief (worker 0) wrote the run."""
    tmp, jobs, outcomes, alone = flow_runs
    for i, (code, result, err) in enumerate(outcomes):
        assert code == 0, f"worker {i}: {err[-3000:]}"
        assert result["batches"] == [8] * 6, f"worker {i}: {result['batches']}"
    chief, other = outcomes[0][1], outcomes[1][1]
    assert chief["checkpoint"] == str(tmp / "run" / "checkpoints" / "epoch_0002.keras")
    assert other["checkpoint"] is None and other["epoch"] == 2
    first, second = weights(jobs[0]["weights"]), weights(jobs[1]["weights"])
    assert len(first) == len(second) == len(alone)
    for a, b, c in zip(first, second, alone):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    assert sorted(os.listdir(tmp / "run" / "checkpoints")) == [
        "epoch_0001.keras", "epoch_0002.keras", "latest.json"]
    run = json.loads((tmp / "run" / "run.json").read_text())
    assert run["strategy"] == "multi_worker"
    history = json.loads((tmp / "run" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]


@pytest.mark.slow
def test_two_workers_resume(flow_runs):
    """Both workers resume the chief's run for a third epoch and stay equal."""
    tmp, jobs, _, _ = flow_runs
    resumed = [dict(job, epochs=3, resume=True, weights=job["weights"] + ".resumed.npz")
               for job in jobs]
    outcomes = [finish(p) for p in start_workers([worker_command(j) for j in resumed])]
    for i, (code, result, err) in enumerate(outcomes):
        assert code == 0, f"worker {i}: {err[-3000:]}"
        assert result["epoch"] == 3
    for a, b in zip(weights(resumed[0]["weights"]), weights(resumed[1]["weights"])):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp / "run" / "checkpoints" / "latest.json").read_text())["epoch"] == 3


@pytest.mark.slow
def test_two_workers_train_a_gan(tmp_path):
    """A GAN's two networks on two workers stay equal across the workers (its
    noise is drawn per replica, so it is not the one-process run's noise)."""
    jobs, outcomes = two_workers(tmp_path, GAN, epochs=1, steps=4)
    for i, (code, result, err) in enumerate(outcomes):
        assert code == 0, f"worker {i}: {err[-3000:]}"
    first, second = weights(jobs[0]["weights"]), weights(jobs[1]["weights"])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert os.path.isfile(tmp_path / "run" / "checkpoints" / "epoch_0001.keras")


# ------------------------------------------------------------------ bad input
GOOD = {"cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]},
        "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not JSON"),
    (json.dumps({"task": GOOD["task"]}), "has no \"cluster\""),
    (json.dumps({**GOOD, "cluster": {"worker": []}}), "non-empty list"),
    (json.dumps({**GOOD, "cluster": {"worker": ["127.0.0.1"]}}), "must be host:port"),
    (json.dumps({**GOOD, "cluster": {"worker": ["h:1", "h:1"]}}), "names h:1 twice"),
    (json.dumps({**GOOD, "cluster": {"chief": ["h:1"], "worker": ["h:1"]}}), "names h:1 twice"),
    (json.dumps({**GOOD, "cluster": {"ps": ["h:1"]}}), "chief, worker or evaluator"),
    (json.dumps({"cluster": GOOD["cluster"]}), "has no \"task\""),
    (json.dumps({**GOOD, "task": {"type": "chief", "index": 0}}), "not in the cluster"),
    (json.dumps({**GOOD, "task": {"type": "worker", "index": 2}}), "task index 2"),
    (json.dumps({"cluster": {**GOOD["cluster"], "evaluator": ["h:9"]},
                 "task": {"type": "evaluator", "index": 0}}), "does not train"),
])
def test_bad_tf_config_is_refused(text, message):
    environ = {} if text is None else {"TF_CONFIG": text}
    with pytest.raises(ValueError, match=message):
        distribute.read_tf_config(environ)


def test_chief_is_the_one_that_writes():
    assert not distribute.is_chief(distribute.read_tf_config({"TF_CONFIG": json.dumps(GOOD)}))
    first = {**GOOD, "task": {"type": "worker", "index": 0}}
    assert distribute.is_chief(first)
    with_chief = {"cluster": {"chief": ["h:0"], "worker": ["h:1"]},
                  "task": {"type": "worker", "index": 0}}
    assert not distribute.is_chief(with_chief)
    assert distribute.is_chief({**with_chief, "task": {"type": "chief", "index": 0}})
    assert distribute.writes_run("mirrored", {})


def test_bad_strategy_leaves_no_run(tmp_path, monkeypatch):
    """An unknown strategy, multi_worker without TF_CONFIG and tpu without a TPU
    are RunErrors raised before anything is written."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    for strategy, message in [("bogus", "unknown strategy 'bogus'"),
                              ("multi_worker", "needs the TF_CONFIG"),
                              ("tpu", "no TPU found")]:
        out = tmp_path / strategy
        with pytest.raises(RunError, match=message):
            training.train("realnvp", "moons", out, epochs=1, steps_per_epoch=1,
                           strategy=strategy, verbose=0)
        assert not out.exists()


def test_cli_strategies_are_the_zoos():
    import zoo_cli

    assert zoo_cli.STRATEGIES == distribute.STRATEGIES


# Draws from one RandomStream in each of two replicas (two logical CPUs), and from a
# stream alone with the same seed; prints them and the replicas' stream states.
REPLICA_DRAWS = TWO_REPLICAS + r"""
from zoo.nn.random_stream import RandomStream
with strategy.scope():
    stream = RandomStream(seed=3)
    stream.initialize()
draws = strategy.experimental_local_results(
    tf.function(lambda: strategy.run(lambda: stream.normal([3])))())
alone = RandomStream(seed=3)
alone.initialize()
print(json.dumps({"replicas": [d.numpy().tolist() for d in draws],
                  "states": [s.numpy().tolist() for s in strategy.experimental_local_results(
                      strategy.run(lambda: tf.convert_to_tensor(stream.state)))],
                  "alone": alone.normal([3]).numpy().tolist(),
                  "alone_state": alone.state.numpy().tolist()}))
"""


def test_replicas_draw_their_own_noise():
    """Two replicas of one random stream draw different noise for their parts of
    the batch (not the same noise twice), and their stream states stay equal; one
    replica alone draws from the stream's own seed."""
    proc = subprocess.run([sys.executable, "-c", REPLICA_DRAWS], capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([ROOT] + sys.path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = np.array(got["replicas"])
    assert not np.allclose(first, second)
    assert got["states"][0] == got["states"][1] == got["alone_state"]
    import tensorflow as tf

    expected = tf.random.stateless_normal([3], seed=tf.constant([3, 0], tf.int64))
    np.testing.assert_allclose(got["alone"], expected.numpy(), rtol=1e-6)


@pytest.mark.slow
def test_killed_worker_fails_cleanly_and_resumes(tmp_path):
    """`zoo train --strategy multi_worker` on two workers; worker 1 is killed once
    the chief has written its first checkpoint. The chief stops with one
    `zoo: error:` line (the workers lost each other), its last good checkpoint
    loads, and both workers resume the run from it to the end."""
    import time

    from zoo import runs

    out = tmp_path / "run"

    def command(epochs, resume=False):
        return [sys.executable, os.path.join(ROOT, "zoo_cli.py"), "train", FLOW["model"],
                "--dataset", FLOW["dataset"], "--set", "hidden_units=8", "--set",
                "num_couplings=2", "--epochs", str(epochs), "--steps-per-epoch", "20",
                "--batch-size", "16", "--strategy", "multi_worker", "--out", str(out)] + \
            (["--resume"] if resume else [])

    chief, other = start_workers([command(1000)] * 2)
    first = out / "checkpoints" / "epoch_0001.keras"
    deadline = time.time() + WORKER_TIMEOUT
    while not first.exists():
        assert chief.poll() is None and other.poll() is None, chief.communicate()[1][-3000:]
        assert time.time() < deadline, "no first checkpoint"
        time.sleep(0.2)
    other.kill()
    other.wait()
    try:
        _, err = chief.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        chief.kill()
        pytest.fail(f"the chief did not stop within {WORKER_TIMEOUT} s of its peer's death")
    lines = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert chief.returncode == 2, err[-3000:]
    assert len(lines) == 1 and "the workers lost each other" in lines[0], err[-3000:]
    assert "Traceback" not in err
    model, checkpoint = runs.load_newest(out)
    assert model is not None and checkpoint.epoch >= 1
    last = checkpoint.epoch
    outcomes = [p.communicate(timeout=WORKER_TIMEOUT) + (p.returncode,)
                for p in start_workers([command(last + 1, resume=True)] * 2)]
    for i, (stdout, stderr, code) in enumerate(outcomes):
        assert code == 0, f"worker {i}: {stderr[-3000:]}"
    assert runs.load_newest(out)[1].epoch == last + 1


# ------------------------------------------------------------------ workers that do not come
def cluster_configs(n):
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    return [{"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
            for i in range(n)]


def test_workers_meet_before_tensorflow_connects_them():
    """Each worker says whom it waits for; they meet whichever starts first."""

    configs = cluster_configs(3)
    said, failed = [], []

    def meet(config):
        try:
            distribute.wait_for_workers(config, 30, say=said.append)
        except Exception as e:  # noqa: BLE001  (reported below)
            failed.append(e)

    threads = [threading.Thread(target=meet, args=(c,)) for c in reversed(configs)]
    for thread in threads:  # the coordinator (worker 0) last
        thread.start()
    for thread in threads:
        thread.join(40)
    assert not failed and not any(t.is_alive() for t in threads), failed
    addresses = configs[0]["cluster"]["worker"]
    assert sorted(said) == sorted(
        f"zoo: waiting for workers {', '.join(a for a in addresses if a != own)} (TF_CONFIG; "
        "at most 30 s, --connect-timeout)" for own in addresses)


def test_workers_that_do_not_come_are_named():
    coordinator, other = cluster_configs(2)
    missing = other["cluster"]["worker"][1]
    with pytest.raises(ValueError, match=f"the workers {missing} did not come within 0.5 s "
                                         r"\(--connect-timeout\)"):
        distribute.wait_for_workers(coordinator, 0.5, say=lambda line: None)
    with pytest.raises(ValueError, match=f"the coordinator {coordinator['cluster']['worker'][0]}"
                                         " .* did not let this one start"):
        distribute.wait_for_workers(other, 0.5, say=lambda line: None)


def test_zoo_train_without_its_workers_gives_up_or_stops_on_sigterm(tmp_path):
    """`zoo train --strategy multi_worker` whose other worker never comes: with
    --connect-timeout 3 it exits 2 with one error line naming that worker; with the
    default timeout, SIGTERM stops it within seconds (exit 130, one line)."""
    import time

    def alone(out, *flags):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT] + sys.path),
               "TF_CONFIG": json.dumps(cluster_configs(2)[0])}
        command = [sys.executable, os.path.join(ROOT, "zoo_cli.py"), "train", "realnvp",
                   "--dataset", "moons", "--strategy", "multi_worker", "--epochs", "1",
                   "--steps-per-epoch", "5", "--out", str(tmp_path / out), *flags]
        # Ctrl-C as a terminal gives it, whatever this process inherited (a job
        # started in the background has SIGINT ignored, and then SIGTERM ends the
        # command at once, with another message).
        return subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                                ), json.loads(env["TF_CONFIG"])

    timed, timed_config = alone("timed", "--connect-timeout", "3")
    waiting, _ = alone("waiting")
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in waiting.stderr],
                         daemon=True).start()
        line = lines.get(timeout=WORKER_TIMEOUT)
        assert line.startswith("zoo: waiting for workers 127.0.0.1:"), line
        sent = time.monotonic()
        waiting.send_signal(signal.SIGTERM)
        waiting.wait(timeout=30)
        assert time.monotonic() - sent < 10
        time.sleep(0.5)  # the reader's last lines
        err = "".join(lines.get() for _ in range(lines.qsize()))
        errors = [e for e in err.splitlines() if e.startswith("zoo: error:")]
        assert waiting.returncode == 130 and len(errors) == 1, err
        assert "interrupted before anything was written" in errors[0]
        _, err = timed.communicate(timeout=WORKER_TIMEOUT)
    finally:
        for process in (timed, waiting):
            process.kill()
            process.wait()
    missing = timed_config["cluster"]["worker"][1]
    errors = [e for e in err.splitlines() if e.startswith("zoo: error:")]
    assert timed.returncode == 2 and len(errors) == 1, err
    assert f"the workers {missing} did not come within 3 s (--connect-timeout)" in errors[0]
    assert err.startswith(f"zoo: waiting for workers {missing} ") and "Traceback" not in err
    assert not (tmp_path / "timed").exists() and not (tmp_path / "waiting").exists()
