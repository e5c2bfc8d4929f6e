"""A model from outside the zoo, end to end, as docs/architecture.md's "Add a model"
tells a user to write it: trained with `zoo train --import`, evaluated, sampled in a
new process (the run records the import), exported and served by a process that
cannot import the zoo."""

import json
import os
import re
import subprocess
import sys

import numpy as np

import zoo_cli as cli
from test_contract import USER_MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Loads the export with TensorFlow alone and prints log_prob of the points given.
SERVE = r"""
import json, sys
sys.modules["zoo"] = None
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
x = tf.constant(json.loads(sys.argv[2]), tf.float32)
print(json.dumps(loaded.signatures["log_prob"](x=x)["log_prob"].numpy().tolist()))
"""


def documented_code():
    """The code block of the "Add a model" section of docs/architecture.md."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Add a model"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_model_is_the_tested_one():
    with open(os.path.join(USER_MODELS, "my_models.py"), encoding="utf-8") as f:
        assert documented_code() == f.read()


def test_a_user_model_trains_evaluates_samples_and_exports(tmp_path):
    run, base = tmp_path / "run", tmp_path / "savedmodels"
    assert cli.main(["train", "diagonal_gaussian", "--import", "my_models", "--epochs", "2",
                     "--steps-per-epoch", "10", "--out", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["imports"] == ["my_models"]
    assert cli.main(["evaluate", str(run), "--num-samples", "200"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["likelihood"] == "exact" and np.isfinite(metrics["nll_nats"])

    # A new process, as a user's next command: the run's record imports the module.
    env = {**os.environ, "PYTHONPATH": USER_MODELS}
    sampled = subprocess.run([sys.executable, os.path.join(ROOT, "zoo_cli.py"), "sample",
                              str(run), "-n", "8", "--out", str(tmp_path / "s.png")],
                             capture_output=True, text=True, timeout=300, env=env)
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stderr == ""  # no TensorFlow or Keras line: only the command's own
    assert (tmp_path / "s.png").stat().st_size > 0

    assert cli.main(["export", str(run), "--base", str(base)]) == 0
    from zoo import runs

    model, _ = runs.load_newest(str(run))
    points = [[0.5, -0.25], [1.0, 0.0]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    served = subprocess.run([sys.executable, "-c", SERVE, str(base / "diagonal_gaussian" / "1"),
                             json.dumps(points)], capture_output=True, text=True, timeout=300,
                            env=env)
    assert served.returncode == 0, served.stderr[-3000:]
    np.testing.assert_allclose(json.loads(served.stdout.splitlines()[-1]),
                               model.log_prob(np.asarray(points, np.float32)).numpy(), rtol=1e-6)
