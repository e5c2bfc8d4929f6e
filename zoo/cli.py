"""The ``zoo`` command: list, train, sample, evaluate, export, serve, demo.

    zoo list
    zoo train realnvp --dataset digits --epochs 30 --out runs/realnvp-digits
    zoo train realnvp --dataset digits --out runs/realnvp-digits --resume
    zoo sample runs/realnvp-digits -n 64
    zoo evaluate runs/realnvp-digits
    zoo export runs/realnvp-digits
    zoo serve savedmodels
    zoo demo

Errors print one line, ``zoo: error: ...``, and exit with 2 (3 when training
stopped on a NaN/Inf).
"""

import argparse
import json
import os
import sys

import keras

import zoo
from zoo import datasets, plotting, savedmodels, training
from zoo.metrics.likelihood import evaluate_likelihood
from zoo.training import NonFiniteLossError, RunError

EXIT_ERROR = 2
EXIT_NON_FINITE = 3
EXIT_INTERRUPTED = 130
DEMO_MODEL = "realnvp"
DEMO_DATASET = "digits"


class UsageError(Exception):
    """Bad command-line arguments (argparse's errors, raised instead of exiting)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised, so main() prints them in one line."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------ helpers
def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parse_overrides(items):
    """``["hidden_units=8", "data_shape=[2]"]`` -> dict; values JSON, else strings."""
    overrides = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise RunError(f"--set expects key=value with a parameter name as key, got {item!r}")
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    return overrides


def evaluate_run(run_dir, split="test", batch_size=None, data_dir=None, seed=0):
    """Evaluates a run's last checkpoint on `split` and writes ``RUN/metrics.json``.

    Every model gets ``model.evaluate``'s loss terms (``loss_terms``); models with
    a likelihood also get ``nll_nats`` and ``bits_per_dim`` from
    ``zoo.metrics.likelihood.evaluate_likelihood``, with ``bound`` saying what the
    number bounds. Returns ``(path, metrics)``.
    """
    model, run, latest = training.load_checkpoint(run_dir)
    batch_size = batch_size or run["training"]["batch_size"]
    data = datasets.load(run["dataset"], split, batch_size, shuffle=False, data_dir=data_dir)
    keras.utils.set_random_seed(seed)
    terms = model.evaluate(data, return_dict=True, verbose=0)
    metrics = {
        "model": run["model"],
        "dataset": run["dataset"],
        "split": split,
        "epoch": latest["epoch"],
        "checkpoint": os.path.join(training.CHECKPOINTS, latest["file"]),
        "loss_terms": {k: float(v) for k, v in terms.items()},
    }
    if hasattr(model, "log_prob") or hasattr(model, "elbo"):
        metrics.update(evaluate_likelihood(model, data, seed=seed))
        metrics["bound"] = likelihood_bound(model, training.model_entry(run["model"]).family)
    path = training.write_json(os.path.join(os.fspath(run_dir), "metrics.json"), metrics)
    return path, metrics


def likelihood_bound(model, family):
    """What the reported NLL is: exact, or which upper bound."""
    if family == "flow":
        if model.num_levels is None:
            return "none: exact NLL of the continuous data"
        return "dequantized NLL, an upper bound on the discrete data's NLL"
    if family == "vae":
        return "negative ELBO, an upper bound on the NLL"
    return "an upper bound on the NLL"


def sample_run(run_dir, n, seed=0, out=None, data_dir=None):
    """Writes `n` samples of a run's last checkpoint as a PNG; returns its path."""
    model, run, _ = training.load_checkpoint(run_dir)
    path = out or os.path.join(os.fspath(run_dir), training.SAMPLES, "sample.png")
    reference = training.reference_points(model, run["dataset"], data_dir)
    return plotting.save_samples(model, path, n, seed, reference=reference)


def export_run(run_dir, base="savedmodels", version=None):
    """Exports a run's last checkpoint to ``<base>/<model>/<version>/``; returns it."""
    model, run, _ = training.load_checkpoint(run_dir)
    try:
        return savedmodels.export(model, os.path.join(os.fspath(base), run["model"]),
                                  version=version)
    except (FileExistsError, NotADirectoryError, ValueError) as e:
        raise RunError(str(e)) from None


# ------------------------------------------------------------------ commands
def cmd_list(args):
    """Prints one row per model: name, family, loss terms, presets."""
    rows = [("name", "family", "losses", "presets (* default)")]
    for e in zoo.list_models():
        presets = ", ".join(p + ("*" if p == e.default_dataset else "") for p in e.presets)
        rows.append((e.name, e.family, ", ".join(e.losses), presets))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def cmd_train(args):
    """Trains (or resumes) a run; prints the run folder and its last checkpoint."""
    out = args.out
    if out is None:
        dataset = args.dataset or training.model_entry(args.model).default_dataset
        out = os.path.join("runs", f"{args.model}-{dataset}")
    result = training.train(
        args.model, args.dataset, out, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, steps_per_epoch=args.steps_per_epoch,
        overrides=parse_overrides(args.set), resume=args.resume, seed=args.seed,
        jit_compile=args.jit, data_dir=args.data_dir,
    )
    print(f"run: {result.run_dir} (epoch {result.epoch})")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def cmd_sample(args):
    """Writes a PNG of samples; prints its path."""
    print(sample_run(args.run, args.n, seed=args.seed, out=args.out, data_dir=args.data_dir))
    return 0


def cmd_evaluate(args):
    """Writes RUN/metrics.json; prints the metrics and the file's path."""
    path, metrics = evaluate_run(args.run, split=args.split, batch_size=args.batch_size,
                                 data_dir=args.data_dir)
    print(json.dumps(metrics, indent=2))
    print(f"metrics: {path}")
    return 0


def cmd_export(args):
    """Exports the last checkpoint for TF Serving; prints the version folder."""
    print(export_run(args.run, base=args.base, version=args.version))
    return 0


def cmd_serve(args):
    """Runs TF Serving on the base path (or says how to install it); its exit code."""
    try:
        return savedmodels.serve(args.base, port=args.port, rest_port=args.rest_port,
                                 dry_run=args.dry_run)
    except (FileNotFoundError, ValueError) as e:
        raise RunError(str(e)) from None


def cmd_demo(args):
    """Trains realnvp on digits (resuming what is there), then samples, evaluates, exports."""
    training.train(DEMO_MODEL, DEMO_DATASET, args.out, epochs=args.epochs, resume=True)
    print(f"samples: {sample_run(args.out, training.IMAGE_SAMPLES, seed=0)}")
    path, metrics = evaluate_run(args.out)
    print(f"metrics: {path} (test bits/dim {metrics['bits_per_dim']:.3f}, "
          f"epoch {metrics['epoch']})")
    print(f"export: {export_run(args.out, base=args.base)}")
    print(f"serve it with: zoo serve {args.base}")
    return 0


# ------------------------------------------------------------------ parser
def build_parser():
    parser = Parser(prog="zoo", description="A model zoo of deep generative models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="models, their families, losses and presets")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("train", help="train a model into a run folder")
    p.add_argument("model", help="a model name (see `zoo list`)")
    p.add_argument("--dataset", help="a dataset with a preset (default: the model's)")
    p.add_argument("--epochs", type=positive_int, help="epochs in total (default: preset)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float, help="learning rate")
    p.add_argument("--steps-per-epoch", type=positive_int,
                   help="batches per epoch, the data repeated (default: one pass)")
    p.add_argument("--out", help="run folder (default: runs/MODEL-DATASET)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's last good checkpoint")
    p.add_argument("--seed", type=int, help="data order and random seed (default 0)")
    p.add_argument("--jit", action="store_true", default=None, help="XLA-compile the step")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="model parameter override, value parsed as JSON (repeatable)")
    p.add_argument("--data-dir", help="tfds data_dir (default: $ZOO_DATA_DIR)")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sample", help="a PNG of samples from a run")
    p.add_argument("run", help="a run folder")
    p.add_argument("-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="the PNG (default: RUN/samples/sample.png)")
    p.add_argument("--data-dir", help="tfds data_dir (2-D reference points)")
    p.set_defaults(func=cmd_sample)

    p = commands.add_parser("evaluate", help="RUN/metrics.json: bits/dim and loss terms")
    p.add_argument("run", help="a run folder")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=positive_int, help="default: the run's")
    p.add_argument("--data-dir", help="tfds data_dir (default: $ZOO_DATA_DIR)")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("export", help="SavedModel for TF Serving: BASE/MODEL/VERSION")
    p.add_argument("run", help="a run folder")
    p.add_argument("--base", default="savedmodels", help="export base path")
    p.add_argument("--version", type=positive_int, help="default: the next version")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("serve", help="tensorflow_model_server on an export base path")
    p.add_argument("base", nargs="?", default="savedmodels", help="export base path")
    p.add_argument("--port", type=int, default=8500, help="gRPC port")
    p.add_argument("--rest-port", type=int, default=8501, help="REST port")
    p.add_argument("--dry-run", action="store_true",
                   help="write the configs and print the command, start nothing")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser(
        "demo", help=f"train {DEMO_MODEL} on {DEMO_DATASET}, sample, evaluate, export")
    p.add_argument("--out", default=os.path.join("runs", "demo"),
                   help="run folder; an existing run there is resumed")
    p.add_argument("--base", default="savedmodels", help="export base path")
    p.add_argument("--epochs", type=positive_int, help="default: the preset's")
    p.set_defaults(func=cmd_demo)
    return parser


def _error(message):
    print(f"zoo: error: {message}", file=sys.stderr)


def main(argv=None):
    """Runs the command line `argv` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        _error(e)
        return EXIT_ERROR
    except SystemExit as e:  # --help
        return e.code

    try:
        return args.func(args)
    except NonFiniteLossError as e:
        _error(e)
        return EXIT_NON_FINITE
    except (RunError, datasets.DatasetError) as e:
        _error(e)
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
