"""Peak memory of ``zoo train`` per family, and the wall time of ``zoo evaluate``
and ``zoo compare``: the parts "memory" and "evaluate" of bench/family_speed.py
(which runs them: ``--part memory``, ``--part evaluate``; ``--part all`` runs them
after the others).

Part "memory". One model of each family (:func:`list_memory_models`: ``MEMORY_MODELS``'
choice where the registry has it with a digits preset, else the family's first model
with one) trains at its digits preset by ``zoo train MODEL --dataset digits
--epochs E --steps-per-epoch S -q`` (``--memory-epochs``, default 2 and 6;
``--memory-steps``, default 10 of the 24 batches of an epoch), each in a fresh
process: a launcher (``--worker memory``) that runs the command line in-process
(``zoo_cli.main``, exactly as ``zoo train`` does) and reads, from /proc/self/status,
the RSS after ``import zoo``, the RSS at the end of every epoch (a Keras callback
that the launcher adds to ``zoo.training.train``'s; it runs after the run's own
checkpoint, sample grid and TensorBoard callbacks) and the peak (VmHWM) when the
command has returned. "Nothing grows with the number of epochs": the peak of the
6-epoch run against the 2-epoch run's, and the end-of-epoch RSS from epoch 2 to
the last of the longer run. Memory does not depend on the load of the host, so
one repeat is enough (``--repeats`` takes the median peak of several).

Part "evaluate". ``EVAL_MODELS`` train one epoch of ``--eval-steps`` (default 20)
steps at their digits presets into a temporary folder (current code). Then each
repeat times, in fresh processes, ``zoo evaluate RUN`` of ``EVAL_MODELS[0]``'s
run (the CLI's defaults: the bound, 10,000 samples, FID, KID, precision/recall)
and ``zoo compare digits --runs-dir DIR`` over all of them, each on a fresh copy of
the runs (no metrics.json to reuse), once with this tree's code ("after") and
once with the code of ``--before`` ("before", default ``BEFORE``: the commit
before the feature network was built once per process and the test images'
features computed once per image set), checked out by ``git archive`` into a
temporary folder and put first on ``sys.path``. The launcher also counts the
checkpoint loads (``keras.saving.load_model`` per file), the feature network's
builds and its passes over the real (test) images. ``--before ''`` times this
tree only.

Never run by the tests.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MEMORY_DATASET = "digits"
# family -> the model the issue names for it; a family missing here (or whose model
# lost its digits preset) gets its first registered model with a digits preset.
MEMORY_MODELS = {"flow": "realnvp", "vae": "vae", "gan": "dcgan", "diffusion": "ddpm",
                 "autoregressive": "pixelcnn", "energy": "ebm"}
MEMORY_EPOCHS = (2, 6)
MEMORY_STEPS = 10  # steps per epoch (a digits epoch at batch 64 is 24)
EVAL_MODELS = ("realnvp", "vae", "dcgan")
# Seconds after which a child of these parts is killed (one `zoo evaluate` at 10,000
# samples took 1.5 to 4.5 minutes on the loaded 2-core host).
PART_TIMEOUT = 1800
EVAL_STEPS = 20
# The commit before 57d049a ("features: the shipped network is built once per
# process and weights file, the test images' features computed once per image set").
BEFORE = "57d049a~1"
# Runs the zoo command line of the tree first on sys.path in this process; counts
# checkpoint loads, feature network builds and passes over the real images; prints
# them (and the peak RSS) as the last line of stdout, then exits with the command's
# exit code.
LAUNCHER = r"""
import json, os, sys
tree, bench = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, tree)
sys.path.insert(1, bench)
import keras
import zoo
from zoo.metrics import features
import process_memory
import zoo_cli

assert zoo.__file__.startswith(os.path.join(tree, "zoo")), (zoo.__file__, tree)
counts = {"checkpoint_loads": {}, "feature_network_builds": 0, "reference_embeds": 0}
load_model, build, embed = (keras.saving.load_model, features.build_classifier,
                            features.FeatureNetwork.embed)

def counted_load(path, *args, **kwargs):
    key = os.path.basename(os.path.dirname(os.path.dirname(str(path)))) + "/" + \
        os.path.basename(str(path))
    counts["checkpoint_loads"][key] = counts["checkpoint_loads"].get(key, 0) + 1
    return load_model(path, *args, **kwargs)

def counted_build(*args, **kwargs):
    counts["feature_network_builds"] += 1
    return build(*args, **kwargs)

def counted_embed(self, images, *args, **kwargs):
    if kwargs.get("what") == "real images":
        counts["reference_embeds"] += 1
    return embed(self, images, *args, **kwargs)

keras.saving.load_model = counted_load
features.build_classifier = counted_build
features.FeatureNetwork.embed = counted_embed
code = zoo_cli.main()
counts["peak_rss_mb"] = process_memory.peak_rss_mb()
print(json.dumps(counts), flush=True)
sys.exit(code)
"""


# ------------------------------------------------------------------ workers
def list_memory_models():
    """``[(family, model)]``: one model of each registered family with a digits
    preset (``MEMORY_MODELS``' where it has one)."""
    import zoo

    by_family = {}
    for e in zoo.list_models():
        if MEMORY_DATASET in e.presets:
            by_family.setdefault(e.family, []).append(e.name)
    return [(family, MEMORY_MODELS[family] if MEMORY_MODELS.get(family) in names
             else names[0]) for family, names in sorted(by_family.items())]


def measure_memory(name, epochs, steps, out):
    """``zoo train name --dataset digits --epochs epochs --steps-per-epoch steps -q
    --out out`` in this process: its exit code, seconds, the RSS after ``import
    zoo``, at each epoch's end, and the peak (MB)."""
    import process_memory  # bench/, the scripts' folder

    import keras

    import zoo_cli
    from zoo import training

    imported = process_memory.rss_mb()
    epoch_rss = []

    class EpochRSS(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epoch_rss.append(round(process_memory.rss_mb(), 1))

    train = training.train

    def train_with_rss(*args, **kwargs):
        kwargs["callbacks"] = (*kwargs.get("callbacks", ()), EpochRSS())
        return train(*args, **kwargs)

    training.train = train_with_rss  # zoo_cli.cmd_train calls training.train
    sys.argv = ["zoo", "train", name, "--dataset", MEMORY_DATASET, "--epochs", str(epochs),
                "--steps-per-epoch", str(steps), "--out", out, "-q"]
    began = time.perf_counter()
    code = zoo_cli.main()
    return {"model": name, "epochs": epochs, "steps_per_epoch": steps, "exit_code": code,
            "seconds": time.perf_counter() - began, "import_rss_mb": imported,
            "epoch_rss_mb": epoch_rss, "peak_rss_mb": process_memory.peak_rss_mb()}


WORKERS = ("models", "memory")  # the --worker kinds of this module
PARTS = ("memory", "evaluate")


def worker(kind, rest):
    """The JSON-able result of a ``--worker`` of this module's parts."""
    sys.path.insert(0, ROOT)  # zoo_cli
    if kind == "models":
        return {"models": list_memory_models()}
    name, epochs, steps, out = rest
    return measure_memory(name, int(epochs), int(steps), out)


# ------------------------------------------------------------------ driver
def child(cmd, timeout, env=None):
    """``(returncode, seconds, last stdout line as JSON or None, stderr tail)``;
    returncode None past `timeout` seconds."""
    began = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return None, timeout, None, f"killed after {timeout:.0f} s"
    seconds = time.perf_counter() - began
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    return proc.returncode, seconds, result, proc.stderr[-2000:]


def add_arguments(parser):
    """The options of this module's parts (the driver's parser)."""
    parser.add_argument("--memory-epochs", type=int, nargs="+", default=list(MEMORY_EPOCHS),
                        help="memory: the epochs of each model's runs (default 2 6)")
    parser.add_argument("--memory-steps", type=int, default=MEMORY_STEPS,
                        help="memory: steps per epoch (default 10)")
    parser.add_argument("--eval-steps", type=int, default=EVAL_STEPS,
                        help="evaluate: training steps of each run evaluated (default 20)")
    parser.add_argument("--eval-samples", type=int,
                        help="evaluate: --num-samples of both commands (default: the CLI's, "
                             "10,000)")
    parser.add_argument("--part-timeout", type=float, default=PART_TIMEOUT,
                        help="memory, evaluate: seconds after which a child is killed "
                             "(default 1800)")
    parser.add_argument("--before", default=BEFORE,
                        help="evaluate: the commit timed as 'before' ('' for none)")


def run_parts(me, args, only):
    """Runs the parts of this module that ``args.part`` names ("all" both), each
    table to stdout; returns their rows (keys "memory", "evaluate") and the
    arguments, for the results' JSON."""
    done = {}
    if args.part in ("all", "memory"):
        done["memory"] = memory_part(me, args, only)
    if args.part in ("all", "evaluate"):
        done["evaluate"] = evaluate_part(me, args, only)
    return {**done, f"{'_'.join(done)}_args": vars(args)} if done else {}


def fmt(value, digits=0):
    """`value` with `digits` decimals; "-" for None (a part that gave nothing).
    family_speed.py's tables use it too."""
    return "-" if value is None else f"{value:.{digits}f}"


def memory_part(me, args, only=()):
    """Runs part "memory"; prints its table; returns its rows."""
    code, _, got, err = child(me + ["models"], args.part_timeout)
    if code or not got:
        raise RuntimeError(f"cannot list the models: {err}")
    models = [(f, m) for f, m in got["models"] if not only or m in only]
    epochs = sorted(set(args.memory_epochs))
    print(f"memory: {', '.join(f'{m} ({f})' for f, m in models)} at {MEMORY_DATASET}, "
          f"epochs {epochs}, {args.memory_steps} steps each", flush=True)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="zoo-memory-") as tmp:
        for r in range(args.repeats):
            for family, name in models:
                for e in epochs:
                    out = os.path.join(tmp, f"{name}-{e}-{r}")
                    code, seconds, got, err = child(
                        me + ["memory", name, str(e), str(args.memory_steps), out],
                        args.part_timeout)
                    if code or not got or got.get("exit_code"):
                        sys.stderr.write(err)
                        got = {"peak_rss_mb": None, "failed": code, "seconds": seconds}
                    runs.setdefault((name, e), []).append(got)
                    print(f"  repeat {r + 1}/{args.repeats} memory {name} {e} epochs: "
                          f"{fmt(got['peak_rss_mb'])} MB peak, {seconds:.0f} s", flush=True)
                    shutil.rmtree(out, ignore_errors=True)

    low, high = epochs[0], epochs[-1]
    print(f"\n`zoo train MODEL --dataset {MEMORY_DATASET} --epochs E --steps-per-epoch "
          f"{args.memory_steps}`, fresh processes (median of {args.repeats}): peak RSS "
          "(VmHWM) in MB; RSS at the end of each epoch of the longest run\n")
    print(f"| model | family | RSS after import zoo | peak, {low} epochs | peak, {high} epochs | "
          f"{high} vs {low} epochs | RSS at the end of epoch 1 .. {high} |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for family, name in models:
        peaks = {e: [g["peak_rss_mb"] for g in runs[name, e] if g["peak_rss_mb"] is not None]
                 for e in epochs}
        peak = {e: statistics.median(v) if v else None for e, v in peaks.items()}
        longest = next((g for g in runs[name, high] if g.get("epoch_rss_mb")), {})
        imported = [g["import_rss_mb"] for e in epochs for g in runs[name, e]
                    if "import_rss_mb" in g]
        row = {"model": name, "family": family, "dataset": MEMORY_DATASET,
               "steps_per_epoch": args.memory_steps,
               "import_rss_mb": statistics.median(imported) if imported else None,
               "peak_rss_mb": {str(e): peak[e] for e in epochs},
               "growth": (peak[high] / peak[low] - 1 if peak[high] and peak[low] else None),
               "epoch_rss_mb": longest.get("epoch_rss_mb", []),
               "runs": {str(e): runs[name, e] for e in epochs}}
        rows.append(row)
        growth = "-" if row["growth"] is None else (
            f"{peak[high] - peak[low]:+.0f} MB ({100 * row['growth']:+.1f}%)")
        each = " ".join(f"{v:.0f}" for v in row["epoch_rss_mb"]) or "-"
        print(f"| {name} | {family} | {fmt(row['import_rss_mb'])} | {fmt(peak[low])} | "
              f"{fmt(peak[high])} | {growth} | {each} |")
    return rows


def export_tree(commit, into):
    """The files of `commit` (``git archive``) in the folder `into`."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", commit],
                             capture_output=True, check=False)
    if archive.returncode:
        raise RuntimeError(f"git archive {commit}: {archive.stderr.decode()[-500:].strip()} "
                           "(--before '' times this tree only)")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)


def evaluate_part(me, args, only=()):
    """Runs part "evaluate"; prints its table; returns its rows."""
    models = [m for m in EVAL_MODELS if not only or m in only]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="zoo-evaluate-") as tmp:
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": os.path.join(tmp, "before"), "after": ROOT}
            os.makedirs(trees["before"])
            export_tree(args.before, trees["before"])
        trained = os.path.join(tmp, "runs")
        for name in models:
            out = os.path.join(trained, f"{name}-{MEMORY_DATASET}")
            code, seconds, _, err = child(
                [sys.executable, os.path.join(ROOT, "zoo_cli.py"), "train", name, "--dataset",
                 MEMORY_DATASET, "--epochs", "1", "--steps-per-epoch", str(args.eval_steps),
                 "--out", out, "-q"], args.part_timeout, env)
            if code != 0:
                raise RuntimeError(f"zoo train {name} failed ({code}): {err}")
            print(f"  trained {name} ({args.eval_steps} steps) in {seconds:.0f} s", flush=True)
        samples = ["--num-samples", str(args.eval_samples)] if args.eval_samples else []
        commands = {"evaluate": lambda d: ["evaluate", os.path.join(d, f"{models[0]}-"
                                                                    f"{MEMORY_DATASET}"), "-q"],
                    "compare": lambda d: ["compare", MEMORY_DATASET, "--runs-dir", d, "-q"]}
        for r in range(args.repeats):
            for what, command in commands.items():
                for label, tree in trees.items():
                    fresh = os.path.join(tmp, f"{what}-{label}-{r}")
                    shutil.copytree(trained, fresh)
                    code, seconds, got, err = child(
                        [sys.executable, "-c", LAUNCHER, tree, HERE, *command(fresh), *samples],
                        args.part_timeout, env)
                    if code != 0:
                        sys.stderr.write(err)
                        got, seconds = {"failed": code}, None
                    timings.setdefault((what, label), []).append({"seconds": seconds, **got})
                    print(f"  repeat {r + 1}/{args.repeats} {what} {label}: "
                          f"{fmt(seconds, 1)} s", flush=True)
                    shutil.rmtree(fresh, ignore_errors=True)

    print(f"\nWall time of fresh processes (import included), median of {args.repeats}; "
          f"runs of {', '.join(models)} ({args.eval_steps} steps each) on {MEMORY_DATASET}; "
          f"before: {args.before or '-'}\n")
    print("| command | before s | after s | after / before | checkpoint loads, before / after "
          "| feature network builds | passes over the test images |")
    print("|---|---|---|---|---|---|---|")
    for what in commands:
        seconds, counts = {}, {}
        for label in ("before", "after"):
            done = timings.get((what, label), [])
            finished = [t["seconds"] for t in done if t["seconds"] is not None]
            seconds[label] = statistics.median(finished) if finished else None
            counts[label] = next((t for t in reversed(done) if "checkpoint_loads" in t), {})
        row = {"command": what, "models": models, "steps": args.eval_steps,
               "before_commit": args.before, "before_seconds": seconds["before"],
               "after_seconds": seconds["after"],
               "ratio": (seconds["after"] / seconds["before"]
                         if seconds["after"] and seconds["before"] else None),
               "counts": {label: {k: c.get(k) for k in ("checkpoint_loads",
                                                       "feature_network_builds",
                                                       "reference_embeds")}
                          for label, c in counts.items()},
               "runs": {label: timings.get((what, label), []) for label in trees}}
        rows.append(row)

        def both(show):
            return " / ".join(show(counts[label]) if counts[label] else "-"
                              for label in ("before", "after"))

        def loads(c):
            files = c["checkpoint_loads"]
            return f"{sum(files.values())} of {len(files)} files"

        print(f"| zoo {what} | {fmt(seconds['before'], 1)} | {fmt(seconds['after'], 1)} | "
              f"{fmt(row['ratio'], 2)} | {both(loads)} | "
              f"{both(lambda c: str(c['feature_network_builds']))} | "
              f"{both(lambda c: str(c['reference_embeds']))} |")
    return rows
