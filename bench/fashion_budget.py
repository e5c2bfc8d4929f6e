"""Models on Fashion-MNIST at a small, stated CPU budget: each trained for the
same number of steps, then its test NLL (exact, or the bound its ``likelihood``
names) and what sampling costs, and FID/precision/recall where sampling is
affordable.

    python bench/fashion_budget.py --models pixelcnn gated_pixelcnn pixelcnn_pp \\
        --steps 100 --num-samples 0
    python bench/fashion_budget.py --models ddpm iddpm --steps 300 --num-samples 1000
    python bench/fashion_budget.py --models latent_diffusion --steps 300 \\
        --first-stage latent_diffusion=runs/fashion-budget/vae-fashion_mnist

Each model trains at its ``fashion_mnist`` preset (batch size, learning rate,
architecture) for one epoch of ``--steps`` steps from seed 0 into
``RUNS_DIR/MODEL-fashion_mnist`` (no sample grid: ``sample_every=0``); a run
that has its epoch is kept and not trained again. Then, of its last good
checkpoint: the mean NLL over the first ``--nll-examples`` test images with
its standard error (:func:`zoo.metrics.evaluate_likelihood`), the seconds per
sample of one draw of ``--draw`` samples (tracing included), and with ``--num-samples N > 0``
FID, precision and recall of N samples against the 10,000 test images in the
shipped Fashion-MNIST features (:func:`zoo.metrics.sample_quality.evaluate_images`).
An autoregressive image model draws one pixel at a time, 784 network passes
per sample, so at the models' presets FID needs hours of this CPU: use
``--num-samples 0`` for them and read the seconds per sample.

Prints a Markdown table and writes it, with the rows as JSON, to ``RUNS_DIR``.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from zoo import datasets, runs, training
from zoo.metrics import evaluate_likelihood, features, sample_quality

DATASET = "fashion_mnist"


def trained(name, out, steps, first_stage):
    """The run `out` of `name`, trained for one epoch of `steps` unless it has it;
    its training seconds (``history.json``)."""
    done = os.path.join(out, "history.json")
    if not os.path.isfile(done):
        if os.path.isdir(out):
            raise SystemExit(f"fashion_budget: {out} holds an unfinished run: resume it "
                             f"with `zoo train --out {out} --resume`, or remove it")
        training.train(name, DATASET, out, epochs=1, steps_per_epoch=steps, verbose=0,
                       first_stage=first_stage, sample_every=0)
    with open(done) as f:
        history = json.load(f)
    return sum(epoch["seconds"] for epoch in history)


def measure(out, nll_examples, draw, num_samples, real, network):
    model, run, _ = runs.load_checkpoint(out)
    row = {"model": run["model"], "likelihood": model.likelihood,
           "steps": run["training"]["steps_per_epoch"],
           "batch_size": run["training"]["batch_size"],
           "parameters": int(sum(np.prod(v.shape) for v in model.trainable_weights))}
    if model.likelihood != "none":
        data = datasets.load(DATASET, "test", 64, shuffle=False)
        got = evaluate_likelihood(model, data, max_examples=nll_examples)
        row.update({k: got[k] for k in ("bits_per_dim", "standard_error_bits_per_dim",
                                        "num_examples")})
    start = time.perf_counter()
    model.sample(draw, seed=0)
    row["seconds_per_sample"] = (time.perf_counter() - start) / draw
    if num_samples:
        quality = sample_quality.evaluate_images(model, real, network, num_samples, seed=0)
        row.update({k: quality[k] for k in ("fid", "precision", "recall", "num_samples")})
    return row


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(rows):
    lines = ["| model | likelihood | steps | training (min) | bits/dim | s.e. | "
             "s / sample | FID | precision | recall | samples |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['likelihood']} | {r['steps']} | "
            f"{r['training_seconds'] / 60:.1f} | {fmt(r.get('bits_per_dim'), '.3f')} | "
            f"{fmt(r.get('standard_error_bits_per_dim'), '.3f')} | "
            f"{r['seconds_per_sample']:.2f} | {fmt(r.get('fid'), '.1f')} | "
            f"{fmt(r.get('precision'), '.2f')} | {fmt(r.get('recall'), '.2f')} | "
            f"{r.get('num_samples', 0)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--steps", type=int, default=300, help="training steps (one epoch)")
    parser.add_argument("--runs-dir", default="runs/fashion-budget")
    parser.add_argument("--nll-examples", type=int, default=1000)
    parser.add_argument("--draw", type=int, default=4, help="samples timed per model")
    parser.add_argument("--num-samples", type=int, default=1000,
                        help="samples for FID/precision/recall (0: none)")
    parser.add_argument("--first-stage", action="append", default=[], metavar="MODEL=RUN",
                        help="the first-stage run of a two-stage model")
    args = parser.parse_args()
    stages = dict(item.split("=", 1) for item in args.first_stage)
    real, _ = datasets.arrays(DATASET, "test")
    network = features.get(None, DATASET) if args.num_samples else None
    rows = []
    for name in args.models:
        out = os.path.join(args.runs_dir, f"{name}-{DATASET}")
        seconds = trained(name, out, args.steps, stages.get(name))
        row = {**measure(out, args.nll_examples, args.draw, args.num_samples, real, network),
               "training_seconds": seconds}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    text = table(rows)
    name = "-".join(args.models)
    with open(os.path.join(args.runs_dir, f"budget-{name}.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.runs_dir, f"budget-{name}.json"), "w") as f:
        json.dump({"rows": rows, "args": vars(args)}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
