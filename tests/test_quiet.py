"""What reaches a user's stderr: TF's native log lines filtered off a `zoo`
command, and graphs that give grappler nothing to fail on."""

import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from zoo.nn.made import MADE
from zoo.nn.resnet import ConvResNet
from zoo.vae.vq_vae import ResidualStack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FILTERED = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import importlib.util
spec = importlib.util.spec_from_file_location("quiet", os.path.join(sys.argv[1], "zoo", "quiet.py"))
quiet = importlib.util.module_from_spec(spec); spec.loader.exec_module(quiet)
os.write(2, b"before\n")
quiet.filter_native_logs()
os.write(2, b"E0000 00:00:1796594536.202739    4105 util.cc:131] oneDNN supports DT_INT32 only\n"
            b"kept 1\n"
            b"W0000 00:00:1796594536.202739    4105 meta_optimizer.cc:967] remapper failed: x\n")
print("kept 2 (python)", file=sys.stderr, flush=True)
os.write(2, b"F0000 00:00:1796594536.202739    4105 check.cc:1] fatal lines stay\n"
            b"I0000 00:00:1.5 7 cudart_stub.cc:31] Could not find cuda drivers\n"
            b"no newline at the end")
quiet.stop_filtering()
os.write(2, b"\nafter\n")
"""


def test_native_log_filter_keeps_everything_but_native_log_lines():
    """Below-FATAL glog lines go; the program's own lines, fatal lines and a last
    line without a newline come through, in order, before the filter stops."""
    result = subprocess.run([sys.executable, "-c", FILTERED, ROOT], capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines() == [
        "before", "kept 1", "kept 2 (python)",
        "F0000 00:00:1796594536.202739    4105 check.cc:1] fatal lines stay",
        "no newline at the end", "after"]


def test_networks_leave_grappler_nothing_to_fail_on(capfd):
    """The residual stacks (image flows' coupling nets, the VQ-VAE's encoder and
    decoder) and MADE with a context (IAF on a VAE's posterior) run as graphs with
    no grappler failure on stderr. With ``relu`` on the residual stream the
    remapper fused the stream's add into a convolution and gave up the graph
    ("remapper failed: ... Mutation::Apply error"); with the context added after
    MADE's bias it fused matmul, bias, add and relu into a node without an op
    name ("has an empty op name")."""
    capfd.readouterr()
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(2, 8, 8, 4)), tf.float32)
    vectors, context = (tf.constant(rng.normal(size=(5, k)), tf.float32) for k in (6, 3))
    made = MADE(6, 16, num_hidden=1, context_size=3, zero_init=False)
    cases = [(ConvResNet(8, 2, 4, zero_init=False), (images,)),
             (ResidualStack(4, 8, 2), (images,)),
             (lambda x, c: made(x, context=c), (vectors, context))]
    for net, inputs in cases:
        if hasattr(net, "build"):
            net.build(inputs[0].shape)
        y = tf.function(net)(*inputs)
        np.testing.assert_allclose(y.numpy(), net(*inputs).numpy(), rtol=1e-5, atol=1e-5)
    err = capfd.readouterr().err
    assert "optimizer" not in err and "remapper" not in err, err


def test_residual_relu_is_relu():
    from zoo.nn.resnet import residual_relu

    h = tf.constant([-2.0, -0.0, 0.0, 1e-30, 3.5])
    np.testing.assert_array_equal(residual_relu(h).numpy(), keras.ops.relu(h).numpy())
