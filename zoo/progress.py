"""Progress of long work, on stderr: a bar per stage on a terminal, one line per
stage otherwise.

A stage is one piece of a command's work with a count (the batches of the loss
terms, the examples of the likelihood, the samples drawn, the signatures
traced). On a terminal it is a tqdm bar, redrawn in place: what it does,
done/total, the rate and the time left. When stderr is not a terminal (a log
file, CI) each stage writes one line when it ends, as ``zoo train`` writes one
per epoch::

    zoo: evaluate: sampling: 10000/10000 samples in 12.3 s (813.0 samples/s)

Nothing goes to stdout, so what a command prints there (JSON, tables, paths)
is the same with progress or without. The ``zoo`` command turns progress on
(:func:`configure`) unless it is given ``--quiet``; used as a library, the zoo
shows none until :func:`configure` is called.

    with progress.stage("evaluate: sampling", total=n, unit="samples") as bar:
        for batch in batches:
            bar.update(len(batch))
"""

import contextlib
import sys
import time

OFF, BAR, LINES = "off", "bar", "lines"
_mode = OFF
_tasks = []  # what the stages belong to, outermost first (see `task`)


def configure(quiet=False, terminal=None):
    """Shows progress from now on: bars when stderr is a `terminal` (None: ask
    :func:`zoo.quiet.stderr_is_terminal`), one line per stage otherwise; none
    with `quiet`. Returns the mode, ``"bar"``, ``"lines"`` or ``"off"``."""
    global _mode
    if quiet:
        _mode = OFF
    else:
        if terminal is None:
            from zoo.quiet import stderr_is_terminal

            terminal = stderr_is_terminal()
        _mode = BAR if terminal else LINES
    return _mode


def mode():
    """How progress shows now: ``"bar"``, ``"lines"`` or ``"off"``."""
    return _mode


def set_mode(value):
    """Sets how progress shows (a value :func:`mode` returned), e.g. back to what
    it was before a command."""
    global _mode
    if value not in (OFF, BAR, LINES):
        raise ValueError(f"progress mode: expected one of {OFF!r}, {BAR!r}, {LINES!r}, "
                         f"got {value!r}")
    _mode = value


@contextlib.contextmanager
def task(name):
    """Names what the stages inside the block belong to: ``with task("compare
    runs/a"):`` ... ``stage("sampling")`` shows as ``compare runs/a: sampling``
    (tasks nest)."""
    _tasks.append(str(name))
    try:
        yield
    finally:
        _tasks.pop()


class Stage:
    """One stage's progress (see :func:`stage`): :meth:`update` counts what is done."""

    def __init__(self, description, total=None, unit="steps", show=True):
        description = ": ".join([*_tasks, description])
        self.description, self.total, self.unit = description, total, unit
        self.mode = _mode if show else OFF
        self.done = 0
        self.began = time.perf_counter()
        self._bar = None
        if self.mode == BAR:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit=unit,
                             file=sys.stderr, leave=True, dynamic_ncols=True,
                             mininterval=0.2)

    def update(self, n=1):
        """Counts `n` more done."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(int(n))

    def line(self):
        """The stage's one line: what it did, done/total, the time and the rate."""
        seconds = time.perf_counter() - self.began
        done = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        rate = f" ({self.done / seconds:.1f} {self.unit}/s)" if seconds > 0 else ""
        return f"zoo: {self.description}: {done} {self.unit} in {seconds:.1f} s{rate}"

    def close(self, finished=True):
        """Ends the stage: the bar stays as it was drawn last; in a log, a
        `finished` stage writes its line (one that failed writes none: the
        command's error says what happened)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == LINES and finished:
            print(self.line(), file=sys.stderr, flush=True)
        self.mode = OFF


@contextlib.contextmanager
def stage(description, total=None, unit="steps", show=True):
    """A :class:`Stage` for the block: ``with stage("export: tracing", 4,
    "signatures") as s: ... s.update()``. `description` says which command and
    what it does; `total` (None: unknown) counts `unit`. With `show` False, or
    progress off, the stage counts but shows nothing."""
    progress = Stage(description, total, unit, show)
    try:
        yield progress
    except BaseException:
        progress.close(finished=False)
        raise
    progress.close()


def track(iterable, description, total=None, unit="steps", size=None, show=True):
    """Yields `iterable`'s items, counting each as one (or ``size(item)``) in a
    :func:`stage` of `description` as it comes. A consumer that stops early
    (``break``) ends the stage as done."""
    progress = Stage(description, total, unit, show)
    finished = False
    try:
        for item in iterable:
            progress.update(1 if size is None else size(item))
            yield item
        finished = True
    except GeneratorExit:  # the consumer has what it wanted
        finished = True
        raise
    finally:
        progress.close(finished)
