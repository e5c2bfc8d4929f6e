"""TensorFlow's start-up noise, kept off the terminal.

Importing TensorFlow on a machine without CUDA writes lines such as "Could not find
cuda drivers" and "failed call to cuInit" from C++ straight to file descriptor 2,
before ``TF_CPP_MIN_LOG_LEVEL`` applies. :func:`native_noise_filtered` captures
that descriptor around the import and the device probe, and writes back every
line except those known to be noise, so real errors and warnings still show.
This module imports nothing heavy: the ``zoo`` command uses it before TensorFlow.
"""

import contextlib
import os
import re
import sys
import tempfile

NOISE = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"cuda_(platform|executor|diagnostics)\.cc:\d+\]",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"oneDNN custom operations are on",
)]


@contextlib.contextmanager
def native_noise_filtered(noise=NOISE):
    """Runs the block with fd 2 captured; then writes back the lines that are not
    `noise` (a list of compiled patterns) to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace")
                    .splitlines(keepends=True)
                    if not any(p.search(line) for p in noise)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """Imports TensorFlow (and probes its devices) with the noise filtered out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_noise_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf
