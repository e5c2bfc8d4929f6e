"""The ``zoo`` command: list, train, sample, evaluate, compare, export, serve, demo.

    zoo list
    zoo train realnvp --dataset digits --epochs 30 --out runs/realnvp-digits
    zoo train realnvp --out runs/realnvp-digits --resume
    zoo sample runs/realnvp-digits -n 64
    zoo evaluate runs/realnvp-digits
    zoo compare digits
    zoo export runs/realnvp-digits
    zoo serve savedmodels
    zoo demo

Errors print one line, ``zoo: error: ...``, and exit with 2 (3 when training or
evaluation met NaN/Inf, 130 on Ctrl-C); warnings print ``zoo: warning: ...``.

This module sits beside the ``zoo`` package rather than in it: importing ``zoo``
imports TensorFlow (which registers every model with Keras), and help and
argument errors must not wait for that. Commands import ``zoo`` when they run.
"""

import _thread
import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings

EXIT_ERROR = 2
EXIT_NON_FINITE = 3
EXIT_INTERRUPTED = 130
DEMO_MODEL = "realnvp"
DEMO_DATASET = "digits"
SEED_MAX = 2**31 - 1
# zoo.distribute.STRATEGIES, without importing TensorFlow to parse (a test checks them equal)
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
STOP_GRACE = 3.0  # seconds a multi-worker train has to stop after SIGINT/SIGTERM
# zoo.precision.PRECISIONS, likewise
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


class UsageError(Exception):
    """Bad command-line arguments (argparse's errors, raised instead of exiting)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised, so main() prints them in one line."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------ argument types
def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def int_in(low, high):
    """An argument type: an integer in [low, high]."""
    def check(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{low}, {high}], got {text!r}")
        return value
    return check


seed = int_in(0, SEED_MAX)
port = int_in(1, 65535)


def file_path(*suffixes):
    """An argument type: a path ending in one of `suffixes` that is not a folder."""
    def check(text):
        if not text.lower().endswith(suffixes) or os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"expected a {' or '.join(suffixes)} file path, "
                                             f"got {text!r}")
        return text
    return check


def parse_options(items):
    """``["label=3", "temperature=0.7"]`` -> dict of numbers (JSON), for ``--option``."""
    options = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--option expects name=value with a sampler option's name, "
                             f"got {item!r}")
        try:
            options[key] = json.loads(text)
        except ValueError:
            raise UsageError(f"--option {key}: expected a number, got {text!r}") from None
    return options


def parse_overrides(items):
    """``["hidden_units=8", "data_shape=[2]"]`` -> dict; values JSON, else strings."""
    overrides = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--set expects key=value with a parameter name as key, got {item!r}")
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    return overrides


# ------------------------------------------------------------------ commands
def cmd_list(args):
    """Prints one row per model: name, family, likelihood, loss terms, presets."""
    import zoo
    from zoo.runs import import_modules

    import_modules(args.imports)
    rows = [("name", "family", "likelihood", "losses", "presets (* default)")]
    for e in zoo.list_models():
        presets = ", ".join(p + ("*" if p == e.default_dataset else "") for p in e.presets)
        rows.append((e.name, e.family, "/".join(e.cls.likelihood_kinds()), ", ".join(e.losses),
                     presets))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_train(args):
    """Trains (or resumes) a run; prints the run folder and its last checkpoint."""
    from zoo import runs, training

    out = args.out
    if out is None:
        runs.import_modules(args.imports)
        dataset = args.dataset or training.model_entry(args.model).default_dataset
        out = os.path.join("runs", f"{args.model}-{dataset}")
    if getattr(args, "stop_signals", None) is not None:
        args.stop_signals.describe = lambda reason: training.interrupted_message(
            args.model, out, args.data_dir, args.strategy, reason)
    result = training.train(
        args.model, args.dataset, out, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, steps_per_epoch=args.steps_per_epoch,
        overrides=parse_overrides(args.set), resume=args.resume, seed=args.seed,
        jit_compile=args.jit, data_dir=args.data_dir, critic_learning_rate=args.critic_lr,
        strategy=args.strategy, precision=args.precision, connect_timeout=args.connect_timeout,
        imports=args.imports, first_stage=args.first_stage,
        verbose=0 if args.quiet else "auto", validate_every=args.validate_every,
        sample_every=args.sample_every,
    )
    print(f"run: {result.run_dir} (epoch {result.epoch})")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def seed_pair(text):
    """An argument type: two seeds ``A,B`` (the ends of an interpolation)."""
    parts = text.split(",")
    try:
        pair = tuple(seed(p.strip()) for p in parts)
    except argparse.ArgumentTypeError:
        pair = ()
    if len(pair) != 2:
        raise argparse.ArgumentTypeError(
            f"expected two seeds A,B (integers in [0, {SEED_MAX}]), got {text!r}")
    return pair


def cmd_sample(args):
    """Writes a PNG of (the first) samples (a .txt for a model of text), and all of
    them as .npy if asked; with --prompt, prints each continuation first; with
    --interpolate, a strip from one seed's latent to another's."""
    from zoo import runs

    if args.interpolate is not None:
        if args.npy or args.prompt is not None:
            raise UsageError("--npy and --prompt go with samples, not with --interpolate")
        print(runs.interpolate_run(args.run, *args.interpolate, steps=args.steps or 8,
                                   spherical=args.spherical, out=args.out,
                                   options=parse_options(args.option)))
        return 0
    if args.steps is not None or args.spherical:
        raise UsageError("--steps and --spherical go with --interpolate A,B")

    paths = runs.sample_run(args.run, args.n, seed=args.seed, out=args.out, npy=args.npy,
                            data_dir=args.data_dir, options=parse_options(args.option),
                            prompt=args.prompt)
    if args.prompt is not None:
        with open(paths[0], encoding="utf-8") as f:
            print(f.read(), end="")
    for path in paths:
        print(path)
    return 0


def cmd_evaluate(args):
    """Writes RUN/metrics.json; prints the metrics and the file's path."""
    from zoo import runs

    path, metrics = runs.evaluate_run(args.run, split=args.split, batch_size=args.batch_size,
                                      data_dir=args.data_dir, num_samples=args.num_samples,
                                      features=args.features, iwae_samples=args.iwae_samples,
                                      iwae_examples=args.iwae_examples,
                                      nll_examples=args.nll_examples,
                                      probability_flow_examples=args.probability_flow_examples,
                                      probability_flow_steps=args.probability_flow_steps)
    print(json.dumps(metrics, indent=2))
    print(f"metrics: {path}")
    return 0


def cmd_compare(args):
    """Writes the table (Markdown, CSV) and the sample sheet of a dataset's runs."""
    from zoo import compare, progress

    with progress.task("compare"):
        _, paths = compare.compare(args.dataset, args.runs, runs_dir=args.runs_dir,
                                   out=args.out, num_samples=args.num_samples,
                                   data_dir=args.data_dir, features=args.features,
                                   log=lambda line: print(f"zoo: {line}", file=sys.stderr))
    with open(paths[0], encoding="utf-8") as f:
        print(f.read(), end="")
    for path in paths:
        print(path)
    return 0


def cmd_export(args):
    """Exports the last good checkpoint for TF Serving; prints the version folder."""
    from zoo import runs

    print(runs.export_run(args.run, base=args.base, version=args.version,
                          max_samples=args.max_samples))
    return 0


def cmd_serve(args):
    """Runs TF Serving on the base path (or says how to install it); its exit code."""
    from zoo import savedmodels
    from zoo.runs import RUN_FILE, RunError
    from zoo.savedmodels.serve import served_models

    if os.path.isfile(os.path.join(args.base, RUN_FILE)):
        raise RunError(f"{args.base!r} is a run folder, not an export base path: export it "
                       f"with `zoo export {args.base}` (into savedmodels/), then run "
                       "`zoo serve savedmodels`")
    if os.path.isdir(args.base) and not served_models(args.base):
        raise RunError(f"no exported model under {args.base!r}: expected folders "
                       f"<model>/<version>/saved_model.pb; export a run with "
                       f"`zoo export RUN --base {args.base}`")
    try:
        return savedmodels.serve(args.base, port=args.port, rest_port=args.rest_port,
                                 dry_run=args.dry_run)
    except (FileNotFoundError, ValueError) as e:
        raise RunError(str(e)) from None


def cmd_demo(args):
    """Trains realnvp on digits (resuming what is there), then samples, evaluates, exports."""
    from zoo import runs, training

    resume = os.path.isfile(os.path.join(args.out, runs.RUN_FILE))
    training.train(DEMO_MODEL, None if resume else DEMO_DATASET, args.out, epochs=args.epochs,
                   resume=resume, verbose=0 if args.quiet else "auto")
    print(f"samples: {runs.sample_run(args.out, 64, seed=0)[0]}")
    path, metrics = runs.evaluate_run(args.out)
    print(f"metrics: {path} (test bits/dim {metrics['bits_per_dim']:.3f}, "
          f"epoch {metrics['epoch']})")
    print(f"export: {runs.export_run(args.out, base=args.base)}")
    print(f"serve it with: zoo serve {args.base}")
    return 0


# ------------------------------------------------------------------ parser
def add_quality_arguments(p, num_samples=10_000, described="10000"):
    p.add_argument("--num-samples", type=positive_int, default=num_samples,
                   help=f"samples for the sample-quality metrics (default {described}; "
                        "FID compares only at equal counts)")
    p.add_argument("--features", type=file_path(".keras"),
                   help="a .keras feature network (images -> features) instead of the "
                        "zoo's classifier of the dataset")
    p.add_argument("--data-dir", help="tfds data_dir (default: $ZOO_DATA_DIR)")


def add_import_argument(p):
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: it registers models defined outside the zoo "
                        "(repeatable; a run records it; installed packages can register "
                        "theirs under the entry-point group zoo.models instead)")


def add_quiet_argument(p):
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (bars on a terminal, one line per stage "
                        "or epoch otherwise); errors and warnings still show")


def build_parser():
    parser = Parser(prog="zoo", description="A model zoo of deep generative models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="models, their families, likelihoods, losses, presets")
    add_import_argument(p)
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("train", help="train a model into a run folder")
    p.add_argument("model", help="a model name (see `zoo list`)")
    p.add_argument("--dataset", help="a dataset with a preset (default: the model's)")
    p.add_argument("--epochs", type=positive_int, help="epochs in total (default: preset)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float,
                   help="learning rate (on --resume: a new rate, e.g. lower after divergence)")
    p.add_argument("--critic-lr", type=positive_float,
                   help="a GAN critic's own learning rate, two time-scale updates "
                        "(default: --lr)")
    p.add_argument("--steps-per-epoch", type=positive_int,
                   help="batches per epoch, the data repeated (default: one pass)")
    p.add_argument("--out", help="run folder (default: runs/MODEL-DATASET)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last good checkpoint")
    p.add_argument("--seed", type=seed, help="data order and random seed (default 0)")
    p.add_argument("--jit", action="store_true", default=None, help="XLA-compile the step")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="default: one device; mirrored: every GPU here; multi_worker: "
                        "the machines of TF_CONFIG (the chief writes the run); tpu: the TPU "
                        "of TPU_NAME or of this Cloud TPU VM")
    p.add_argument("--connect-timeout", type=positive_float, metavar="SECONDS",
                   help="multi_worker: how long to wait for the other workers to come "
                        "(default 300)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="float32 (the default), or mixed: the networks compute in float16 "
                        "(with loss scaling) or bfloat16, log-dets, likelihoods and "
                        "exports stay float32")
    p.add_argument("--validate-every", type=non_negative_int, metavar="N",
                   help="the test split's loss terms every N epochs, in history.json and "
                        "TensorBoard's validation run (0: never; default: every epoch where "
                        "the test split holds at most 1,000,000 values, digits and the 2-D "
                        "densities, never on larger ones such as fashion_mnist)")
    p.add_argument("--sample-every", type=non_negative_int, metavar="N",
                   help="the sample grid samples/epoch_NNNN.png every N epochs and after "
                        "the last (0: never; default 1); a grid of an autoregressive or "
                        "diffusion model draws 64 images one pixel or step at a time")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="model parameter override, value parsed as JSON (repeatable)")
    p.add_argument("--data-dir", help="tfds data_dir (default: $ZOO_DATA_DIR)")
    p.add_argument("--first-stage", metavar="RUN_FOLDER",
                   help="a two-stage model's frozen first stage: a trained run on the same "
                        "dataset (e.g. a vae run for two_stage_vae); its checkpoint goes "
                        "into every checkpoint and export of the new run")
    add_import_argument(p)
    add_quiet_argument(p)
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sample", help="a PNG of samples from a run (a .txt for text; "
                                           "and .npy)")
    p.add_argument("run", help="a run folder")
    p.add_argument("-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", type=file_path(".png", ".txt"),
                   help="the PNG (a .txt for a model of text), of the first samples only "
                        "(default: RUN/samples/sample.png or sample.txt)")
    p.add_argument("--prompt", metavar="TEXT",
                   help="a model of text: print (and write) continuations of TEXT, which "
                        "is kept as it is")
    p.add_argument("--npy", type=file_path(".npy"), help="write all n samples to this .npy")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="a sampler option of the model, e.g. temperature=0.7 (flows) or "
                        "label=3 (class-conditional GANs; -1: at random) (repeatable)")
    p.add_argument("--interpolate", type=seed_pair, metavar="A,B",
                   help="a strip of images from seed A's latent to seed B's (GANs), "
                        "instead of samples")
    p.add_argument("--steps", type=int_in(2, 64), help="--interpolate: images in the strip "
                                                       "(default 8)")
    p.add_argument("--spherical", action="store_true",
                   help="--interpolate along the great circle (slerp), not the segment")
    p.add_argument("--data-dir", help="tfds data_dir (2-D reference points)")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_sample)

    p = commands.add_parser("evaluate", help="RUN/metrics.json: NLL, bits/dim, loss terms, "
                                             "FID/KID/precision/recall or 2-D distances")
    p.add_argument("run", help="a run folder")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=positive_int, help="default: the run's")
    p.add_argument("--nll-examples", type=positive_int,
                   help="the first examples of the split the NLL averages over (default: "
                        "the model's; all of them, 1000 for a diffusion model's stratified "
                        "bound on images)")
    p.add_argument("--iwae-samples", type=positive_int,
                   help="k of the importance-weighted bound of latent-variable models "
                        "(default: the model's, 1000 for the zoo's VAEs)")
    p.add_argument("--iwae-examples", type=positive_int,
                   help="test examples the importance-weighted bound averages over "
                        "(default: the model's, 1000 for the zoo's VAEs)")
    p.add_argument("--probability-flow-examples", type=non_negative_int,
                   help="test examples of a diffusion model's probability-flow NLL (0: "
                        "none; default: the model's, all 2-D points, 16 images)")
    p.add_argument("--probability-flow-steps", type=positive_int,
                   help="RK4 steps of the probability-flow NLL (default: the model's, 100)")
    add_quality_arguments(p, None, "the model's, 10000 for the zoo's models")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("compare", help="one table and one sample sheet of every run "
                                            "on a dataset")
    p.add_argument("dataset", help="a dataset name (runs are those whose run.json names it)")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run folders (default: every run on DATASET under --runs-dir)")
    p.add_argument("--runs-dir", default="runs", help="where to look for runs (default: runs)")
    p.add_argument("--out", help="output folder (default: RUNS_DIR/compare-DATASET)")
    add_quality_arguments(p)
    add_quiet_argument(p)
    p.set_defaults(func=cmd_compare)

    p = commands.add_parser("export", help="SavedModel for TF Serving: BASE/MODEL/VERSION")
    p.add_argument("run", help="a run folder")
    p.add_argument("--base", default="savedmodels", help="export base path")
    p.add_argument("--version", type=positive_int, help="default: the next version")
    p.add_argument("--max-samples", type=int_in(1, SEED_MAX), metavar="N",
                   help="the most samples one `sample` request may ask for (default: as "
                        "many as fit in 256 MiB of output, e.g. 1048576 digits)")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("serve", help="tensorflow_model_server on an export base path")
    p.add_argument("base", nargs="?", default="savedmodels", help="export base path")
    p.add_argument("--port", type=port, default=8500, help="gRPC port")
    p.add_argument("--rest-port", type=port, default=8501, help="REST port")
    p.add_argument("--dry-run", action="store_true",
                   help="write the configs and print the command, start nothing")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser(
        "demo", help=f"train {DEMO_MODEL} on {DEMO_DATASET}, sample, evaluate, export")
    p.add_argument("--out", default=os.path.join("runs", "demo"),
                   help="run folder; an existing run there is resumed")
    p.add_argument("--base", default="savedmodels", help="export base path")
    p.add_argument("--epochs", type=positive_int, help="default: the preset's")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _error(message):
    print(f"zoo: error: {message}", file=sys.stderr, flush=True)


class StopSignals:
    """SIGINT and SIGTERM of a multi-worker `zoo train`, taken by a thread.

    TensorFlow's coordination service catches SIGTERM itself (and ignores it),
    and its collective steps run in C++, where Python runs no signal handler. So
    both signals are blocked before TensorFlow starts a thread (each thread
    inherits that), and a thread of ours takes them: it interrupts the main
    thread as Ctrl-C does (so the command names the last checkpoint, exit code
    130), and if the command has not ended within `grace` seconds it prints one
    line and ends the process. (The wait for the other workers is in Python:
    ``zoo.distribute.wait_for_workers``.)
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, grace=STOP_GRACE):
        self.grace = grace
        self.describe = None  # reason -> the line's message (set by the command)
        self.exit_code = None  # set once main() has printed its last line
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        threading.Thread(target=self._watch, daemon=True, name="zoo-stop-signals").start()

    def _watch(self):
        name = signal.Signals(signal.sigwaitinfo(self.SIGNALS).si_signo).name
        # Not where Ctrl-C is ignored (`nohup ... &`): then at once.
        interrupts = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if interrupts:
            _thread.interrupt_main()  # KeyboardInterrupt in the main thread, as Ctrl-C
            signal.sigtimedwait(self.SIGNALS, self.grace)  # a second signal: at once
        if self.exit_code is None:
            reason = f"stopped by {name}" + (
                f" (TensorFlow did not return within {self.grace:g} s)" if interrupts else "")
            try:
                message = self.describe(reason) if self.describe else reason
            except Exception:  # noqa: BLE001  (the line is what matters)
                message = reason
            _error(message)
        quiet = sys.modules.get("zoo.quiet")
        if quiet is not None:  # the line out through the native-log filter first
            quiet.stop_filtering()
        os._exit(EXIT_INTERRUPTED if self.exit_code is None else self.exit_code)


class _OneLine(logging.Formatter):
    def format(self, record):
        return f"zoo: {record.levelname.lower()}: {record.getMessage()}"


def _quiet_logging():
    """``zoo: warning:`` lines for the zoo's warnings; TF's own logging quiet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("zoo")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Keras' advice to layer authors (e.g. "build() was called on layer ... unbuilt
    # state" when a checkpoint loads), meant for whoever writes the model.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")


def main(argv=None):
    """Runs the command line `argv` (default: sys.argv[1:]); returns the exit code.

    As the process's own command (`argv` None), TF's native log lines are kept off
    stderr for the whole command (:func:`zoo.quiet.filter_native_logs`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        parse_overrides(getattr(args, "set", None))
        parse_options(getattr(args, "option", None))
    except UsageError as e:
        _error(e)
        return EXIT_ERROR
    except SystemExit as e:  # --help
        return e.code

    # Before TensorFlow starts a thread: a multi-worker run can block in C++.
    args.stop_signals = StopSignals() if getattr(args, "strategy", None) == "multi_worker" \
        else None
    code = _run(args, own_process=argv is None)
    if args.stop_signals is not None:
        args.stop_signals.exit_code = code
    return code


def _run(args, own_process=False):
    """Runs a parsed command: its exit code, every error one line. As the
    process's own command, TF's native log lines are kept off stderr."""
    _quiet_logging()
    try:
        import zoo  # noqa: F401  (TensorFlow, quietly)
        from zoo.datasets import DatasetError
        from zoo.quiet import filter_native_logs
        from zoo.runs import NonFiniteError, RunError

        if own_process and not os.environ.get("ZOO_DEBUG"):
            filter_native_logs()
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001  (a broken install)
        _error(f"cannot import the zoo: {type(e).__name__}: {e}")
        return 1
    from zoo import progress

    shown = progress.mode()
    progress.configure(quiet=getattr(args, "quiet", False))
    try:
        return args.func(args)
    except BrokenPipeError:  # `zoo list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as e:  # TrainingInterrupted names the last checkpoint
        _error(str(e) or "interrupted")
        return EXIT_INTERRUPTED
    except NonFiniteError as e:
        _error(e)
        return EXIT_NON_FINITE
    except (RunError, DatasetError, UsageError) as e:
        _error(e)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001  (every error is one line)
        if os.environ.get("ZOO_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        _error(f"unexpected {type(e).__name__}: {first} (a bug: rerun with ZOO_DEBUG=1 "
               "for the traceback, and report it)")
        return 1
    finally:
        progress.set_mode(shown)


if __name__ == "__main__":
    sys.exit(main())
