"""Where training runs: one device, several on one machine, several machines, a TPU.

:func:`make_strategy` turns a name into a ``tf.distribute`` strategy:

* ``default``: TensorFlow's default strategy (one device: the GPU if there is
  one, else the CPU).
* ``mirrored``: :class:`tf.distribute.MirroredStrategy` over every GPU of this
  machine (the CPU when there is none): one replica per device, gradients
  all-reduced.
* ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, one
  process per machine (or per GPU), configured by ``TF_CONFIG``::

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Every worker runs the same command with its own ``task``. The chief (the
  task of type ``chief``, else worker 0) writes the run; the others write to
  temporary folders that are removed (:func:`writes_run`).
* ``tpu``: :class:`tf.distribute.TPUStrategy` on the TPU named by ``TPU_NAME``
  (a Cloud TPU node) or on this machine's own TPU (a Cloud TPU VM), or an error
  when there is none.

Data is sharded per worker by ``tf.data``'s auto-sharding with the ``DATA``
policy (:func:`shard_policy`): every worker reads the same pipeline and keeps
its share of each global batch, so the global batches are those of a one-process
run, whatever the data's files.

The strategy must be made before TensorFlow runs anything else in the process
(collective ops are configured at start-up): ``zoo train`` does it first.

Before a multi-worker strategy is made, the workers meet (:func:`wait_for_workers`):
TensorFlow's own wait for them is in C++, holding Python's lock, so that it can
neither time out nor be stopped by SIGINT or SIGTERM. The coordinator (the chief)
listens on its address, every other worker checks in there, and once all have,
the coordinator lets them go on and TensorFlow connects them at once. Each says in
one line which workers it waits for, and gives up after `connect_timeout` seconds
with a ValueError naming them.
"""

import json
import os
import socket
import sys
import time

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
CONNECT_TIMEOUT = 300.0  # seconds a multi-worker run waits for its workers (--connect-timeout)
HELLO = "zoo-worker"  # a worker checking in at the coordinator: "zoo-worker host:port"
GO = "go"  # the coordinator's answer once every worker has checked in
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def shard_policy():
    """The auto-shard policy of the training data (``DATA``: by element)."""
    import tensorflow as tf

    return tf.data.experimental.AutoShardPolicy.DATA


def check_name(name):
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    return name


def read_tf_config(environ=None):
    """``TF_CONFIG`` parsed and checked: a cluster of task types, each a non-empty
    list of distinct ``host:port`` addresses, and this process's task in it.

    Raises:
        ValueError: saying what is missing or wrong, with an example.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    hint = f"; expected e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
    if not text:
        raise ValueError("strategy multi_worker needs the TF_CONFIG environment variable, "
                         "which is not set" + hint)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e})" + hint) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError("TF_CONFIG has no \"cluster\" of task types" + hint)
    seen = {}
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG: cluster[{kind!r}] must be a non-empty list of "
                             f"host:port addresses, got {addresses!r}" + hint)
        for i, address in enumerate(addresses):
            host, _, port = str(address).rpartition(":")
            if not isinstance(address, str) or not host or not port.isdigit():
                raise ValueError(f"TF_CONFIG: cluster[{kind!r}][{i}] must be host:port, got "
                                 f"{address!r}")
            if address in seen:
                raise ValueError(f"TF_CONFIG names {address} twice ({seen[address]} and "
                                 f"{kind} {i}): each task needs an address of its own")
            seen[address] = f"{kind} {i}"
    if not set(cluster) <= {"chief", "worker", "evaluator"}:
        raise ValueError(f"TF_CONFIG: cluster task types must be chief, worker or evaluator "
                         f"for multi_worker, got {sorted(cluster)}")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError("TF_CONFIG: a cluster has at most one chief")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError("TF_CONFIG has no \"task\" with a \"type\" and an \"index\"" + hint)
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise ValueError(f"TF_CONFIG: task type {kind!r} is not in the cluster "
                         f"({sorted(cluster)})")
    if kind == "evaluator":
        raise ValueError("TF_CONFIG: this task is an evaluator, which does not train; "
                         "zoo train runs on the chief and worker tasks")
    if isinstance(index, bool) or not isinstance(index, int) or not \
            0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG: task index {index!r} is not one of the cluster's "
                         f"{len(cluster[kind])} {kind} task(s)")
    return config


def is_chief(config):
    """Whether the task of a (checked) ``TF_CONFIG`` is the one that writes: the
    chief, or worker 0 of a cluster without one."""
    kind, index = config["task"]["type"], config["task"]["index"]
    return kind == "chief" or (kind == "worker" and index == 0
                               and "chief" not in config["cluster"])


def peers(config):
    """The addresses of the chief and workers of a (checked) ``TF_CONFIG`` other
    than this task's: the processes a multi-worker run waits for."""
    return [a for a in _members(config) if a != _own(config)]


def _members(config):
    return [a for kind in ("chief", "worker") for a in config["cluster"].get(kind, [])]


def _own(config):
    return config["cluster"][config["task"]["type"]][config["task"]["index"]]


def _split(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for_workers(config, timeout, say=None):
    """Returns once every chief and worker task of `config` (a checked
    ``TF_CONFIG``) has come, before TensorFlow connects them.

    The coordinator (the task that writes the run, :func:`is_chief`) listens on
    its own address until every other task has checked in, then answers each
    :data:`GO`; the others connect to it until they get that answer. `say` (a
    function of one line; None: print to stderr) gets one line naming the
    workers waited for.

    Raises:
        ValueError: they did not all come within `timeout` seconds, naming them;
            the coordinator's address cannot be listened on.
    """
    others = peers(config)
    if not others:
        return
    if say is None:
        def say(line):
            print(line, file=sys.stderr, flush=True)
    say(f"zoo: waiting for workers {', '.join(others)} (TF_CONFIG; at most {timeout:g} s, "
        "--connect-timeout)")
    deadline = time.monotonic() + timeout
    if is_chief(config):
        _gather(_own(config), others, deadline, timeout)
    else:
        cluster = config["cluster"]
        coordinator = (cluster.get("chief") or cluster["worker"])[0]
        _check_in(coordinator, _own(config), deadline, timeout)


START_ALL = ("start every worker of TF_CONFIG's cluster, each with its own task, or check "
             "their addresses")


def _gather(own, others, deadline, timeout):
    """The coordinator's part: every other worker checks in, then all get GO."""
    _, port = _split(own)
    try:
        server = socket.create_server(("", port))  # SO_REUSEADDR: TensorFlow binds it next
    except OSError as e:
        raise ValueError(f"cannot listen on {own} (this task's address in TF_CONFIG): "
                         f"{os.strerror(e.errno)}; is another worker running there?") from None
    came = {}
    try:
        server.settimeout(0.2)
        while set(others) - set(came):
            if time.monotonic() > deadline:
                missing = ", ".join(a for a in others if a not in came)
                raise ValueError(f"the workers {missing} did not come within {timeout:g} s "
                                 f"(--connect-timeout): {START_ALL}")
            try:
                connection, _ = server.accept()
            except socket.timeout:
                continue
            address = _hello(connection)
            if address not in others:
                connection.close()
                continue
            if address in came:  # that worker started again
                came[address].close()
            came[address] = connection
        for connection in came.values():
            connection.sendall(f"{GO}\n".encode())
        for connection in came.values():  # they close first: no TIME_WAIT on our port
            try:
                connection.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                connection.recv(16)
            except OSError:
                pass
    finally:
        for connection in came.values():
            connection.close()
        server.close()


def _hello(connection):
    """The address a connecting worker checks in with, or None."""
    connection.settimeout(2.0)
    try:
        line = connection.makefile("rb").readline(200).decode(errors="replace").split()
    except OSError:
        return None
    return line[1] if len(line) == 2 and line[0] == HELLO else None


def _check_in(coordinator, own, deadline, timeout):
    """A worker's part: check in at the coordinator until it answers GO."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(_split(coordinator), timeout=1.0) as connection:
                connection.sendall(f"{HELLO} {own}\n".encode())
                connection.settimeout(0.2)
                answer = b""
                while time.monotonic() < deadline:
                    try:
                        chunk = connection.recv(16)
                    except socket.timeout:
                        continue
                    answer += chunk
                    if not chunk or b"\n" in answer:
                        break
                if answer.split() == [GO.encode()]:
                    return
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    raise ValueError(f"the workers did not all come within {timeout:g} s (--connect-timeout): "
                     f"the coordinator {coordinator} (the chief, else worker 0), which waits "
                     f"for every worker, did not let this one start; {START_ALL}")


def writes_run(strategy_name, environ=None):
    """Whether this process writes the run folder (every strategy but a
    multi-worker one's non-chief workers)."""
    if strategy_name != "multi_worker":
        return True
    return is_chief(read_tf_config(environ))


def _tpu_resolver():
    import tensorflow as tf

    name = os.environ.get("TPU_NAME")
    if name:
        try:
            return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"strategy tpu: cannot resolve TPU_NAME={name!r}: {e}") from None
    if not tf.config.list_physical_devices("TPU"):
        raise ValueError("strategy tpu: no TPU found (TPU_NAME is not set and this machine "
                         "has no TPU device); run on a Cloud TPU VM or set TPU_NAME to a "
                         "Cloud TPU node")
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")


def make_strategy(name="default", connect_timeout=None):
    """The ``tf.distribute`` strategy called `name` (one of :data:`STRATEGIES`).

    For ``multi_worker`` the workers meet first (:func:`wait_for_workers`), for
    at most `connect_timeout` seconds (None: :data:`CONNECT_TIMEOUT`).

    Raises:
        ValueError: an unknown name, a missing or bad ``TF_CONFIG`` for
            ``multi_worker``, workers that did not come in time, no TPU for ``tpu``.
    """
    check_name(name)
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = read_tf_config()
        wait_for_workers(config, CONNECT_TIMEOUT if connect_timeout is None else connect_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = _tpu_resolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
