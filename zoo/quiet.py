"""TensorFlow's start-up noise, kept off the terminal.

Importing TensorFlow on a machine without CUDA writes lines such as "Could not find
cuda drivers" and "failed call to cuInit" from C++ straight to file descriptor 2,
before ``TF_CPP_MIN_LOG_LEVEL`` applies. :func:`native_noise_filtered` captures
that descriptor around the import and the device probe, and writes back every
line except those known to be noise, so real errors and warnings still show.
:class:`NativeLogFilter` does the same for the whole of a ``zoo`` command: TF's
C++ code logs in glog's format (``E0000 00:00:... file.cc:123] ...``) at levels
that ``TF_CPP_MIN_LOG_LEVEL`` does not silence, such as oneDNN's note that it
falls back to Eigen for int32, and those lines reach no user of the command
(``ZOO_DEBUG=1`` shows them). A fatal line (``F...``) and everything not in that
format pass through.
This module imports nothing heavy: the ``zoo`` command uses it before TensorFlow.
"""

import atexit
import contextlib
import os
import re
import sys
import tempfile
import threading

NOISE = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"cuda_(platform|executor|diagnostics)\.cc:\d+\]",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"oneDNN custom operations are on",
)]

# A line of TF's (absl's / glog's) C++ logging below FATAL: level letter, date,
# time, thread id, file:line]. Fatal lines ("F...") are kept.
NATIVE_LOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] ")


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


class NativeLogFilter:
    """Routes file descriptor 2 through a pipe for as long as it is started, and
    writes back to the real stderr every line but TF's native log lines below
    FATAL (:data:`NATIVE_LOG`) and the start-up :data:`NOISE`.

    A thread copies the lines, so what the program writes reaches the terminal at
    once, as before; a progress bar's redraw (``\\r`` without a newline) goes out
    as it comes. :meth:`stop` (also run at exit) drains the pipe and puts the
    real stderr back.
    """

    def __init__(self, patterns=(NATIVE_LOG, *NOISE)):
        self.patterns = patterns
        self.saved = None
        self.thread = None

    def start(self):
        if self.saved is not None:
            return self
        sys.stderr.flush()
        read, write = os.pipe()
        self.saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._copy, args=(read, self.saved),
                                       name="native-log-filter", daemon=True)
        self.thread.start()
        return self

    def _copy(self, read, out):
        with os.fdopen(read, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                self._write(out, lines, b"\n")
                if b"\r" in pending:  # a progress bar redrawn in place: out at once
                    self._write(out, [pending], b"")
                    pending = b""
            if pending:
                self._write(out, [pending], b"")

    def _write(self, out, lines, end):
        kept = b"".join(line + end for line in lines
                        if not any(p.search(line.decode("utf-8", "replace"))
                                   for p in self.patterns))
        if kept:
            os.write(out, kept)

    def stop(self):
        """Puts the real stderr back on fd 2 after the pipe's last line is out."""
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved, 2)  # closes the pipe's last write end (a child may hold one)
        self.thread.join(timeout=2)
        if not self.thread.is_alive():
            os.close(self.saved)
        self.saved = None


_FILTER = NativeLogFilter()


def filter_native_logs():
    """Starts filtering TF's native log lines off stderr until the process exits
    (:class:`NativeLogFilter`); the ``zoo`` command calls it before it imports the
    zoo, unless ``ZOO_DEBUG`` is set."""
    if _FILTER.saved is None:
        _FILTER.start()
        atexit.register(_FILTER.stop)


def stderr_is_terminal():
    """Whether the real stderr is a terminal (fd 2 is the filter's pipe while it
    runs): where progress shows as bars (:mod:`zoo.progress`)."""
    try:
        return os.isatty(_FILTER.saved if _FILTER.saved is not None else sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # a stderr without a descriptor
        return False


def stop_filtering():
    """The real stderr back on fd 2, every line written so far out (before a child
    process that should log to the terminal itself, or before ``os._exit``)."""
    _FILTER.stop()
