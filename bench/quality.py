"""Test NLL (or its bound) of likelihood models after their preset's training.

    python bench/quality.py realnvp:moons realnvp:digits vae:digits [--epochs N]
    python bench/quality.py flows:toy            # every flow on all seven 2-D densities
    python bench/quality.py maf:toy nice:digits --out bench/results/quality_b.json

`model:dataset` pairs; `flows` stands for every registered flow and `toy` for
the seven 2-D densities. Each run trains the preset (its epochs, steps, batch
size and learning rate; or `--epochs`; or `--steps` steps in one pass) from
seed 0 and scores the test split.

For 2-D densities: test NLL in nats beside the density's entropy, its floor
(estimated with :func:`zoo.datasets.toy.entropy`), and a PNG of the learned
density beside a histogram of the test data in bench/results/density/. For
images: test bits/dim, and 64 samples in bench/results/samples/; a flow's
bits/dim are those of dequantized data (an upper bound on the discrete data's),
a VAE's its negative ELBO (also an upper bound).

Prints a table and merges the rows into `--out` (a JSON list keyed by model and
dataset) after every run, so a long bench that is stopped keeps what it did.
`--report FILE...` prints the table of saved results (`--sheet PNG` draws them).
"""

import argparse
import json
import os
import time

import numpy as np
import keras

import zoo
from zoo import progress
from zoo.datasets import toy
from zoo.metrics import evaluate_likelihood
from zoo.plotting import density_beside_data, save_samples

DENSITY_DIR = "bench/results/density"
SAMPLES_DIR = "bench/results/samples"


def _log_prob_in_chunks(model, points, chunk=4000):
    return np.concatenate([np.asarray(model.log_prob(points[i:i + chunk]))
                           for i in range(0, len(points), chunk)])


def train_and_evaluate(name, dataset, epochs=None, steps=None):
    training = zoo.registry.entry(name).training_for(dataset)
    epochs = 1 if steps else epochs or training["epochs"]
    steps = steps or training.get("steps_per_epoch")
    keras.utils.set_random_seed(0)
    model = zoo.get(name, dataset=dataset)
    model.compile(optimizer=model.default_optimizer(training["learning_rate"]))
    train = zoo.datasets.load(dataset, "train", training["batch_size"], repeat=bool(steps))
    start = time.perf_counter()
    model.fit(train, epochs=epochs, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    test = zoo.datasets.load(dataset, "test", 500, shuffle=False)
    row = {"model": name, "dataset": dataset, "epochs": epochs,
           "steps": int(model.optimizer.iterations.numpy()), "batch_size": training["batch_size"],
           "train_seconds": round(seconds, 1), **evaluate_likelihood(model, test, seed=0)}
    if dataset in toy.TOY_NAMES:
        row["entropy_nats"] = toy.entropy(dataset)
        data = np.concatenate([np.asarray(x) for x in test])
        row["density_png"] = density_beside_data(
            lambda p: _log_prob_in_chunks(model, p), data,
            os.path.join(DENSITY_DIR, f"{name}_{dataset}.png"))
    else:
        row["samples_png"] = save_samples(model, os.path.join(SAMPLES_DIR, f"{name}_{dataset}.png"),
                                          n=64, seed=0)
    return row


def expand(runs):
    flows = [e.name for e in zoo.registry.list_models() if e.family == "flow"]
    pairs = []
    for run in runs:
        name, _, dataset = run.partition(":")
        if not dataset:
            raise SystemExit(f"expected model:dataset, got {run!r}")
        for n in flows if name == "flows" else [name]:
            pairs += [(n, d) for d in (toy.TOY_NAMES if dataset == "toy" else [dataset])]
    return pairs


def save(rows, path):
    kept = []
    if os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)
    done = {(r["model"], r["dataset"]) for r in rows}
    kept = [r for r in kept if (r["model"], r["dataset"]) not in done] + rows
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(kept, f, indent=1)


def print_row(r):
    floor = r.get("entropy_nats")
    gap = "" if floor is None else f"{floor:>9.3f} {r['nll_nats'] - floor:>7.3f}"
    print(f"{r['model']:>8} {r['dataset']:>14} {r['epochs']:>6} {r['steps']:>6} "
          f"{r['train_seconds']:>8} {r['nll_nats']:>9.3f} {r['bits_per_dim']:>9.3f} {gap}",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", default=["realnvp:moons", "realnvp:digits",
                                                     "vae:digits"],
                        help="model:dataset pairs ('flows' = every flow, 'toy' = 2-D densities)")
    parser.add_argument("--epochs", type=int, default=None, help="override the presets'")
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many steps instead (a CPU budget for big presets)")
    parser.add_argument("--out", default="bench/results/quality.json")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="print the table of these result files instead of training")
    parser.add_argument("--sheet", metavar="PNG",
                        help="with --report: one picture of every 2-D run's density")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    progress.configure(quiet=args.quiet)
    if args.report:
        rows = []
        for path in args.report:
            with open(path) as f:
                rows += json.load(f)
        print_header()
        for row in rows:
            print_row(row)
        if args.sheet:
            print(contact_sheet(rows, args.sheet))
        return
    print_header()
    rows = []
    pairs = expand(args.runs)
    for name, dataset in progress.track(pairs, "quality", len(pairs), "runs"):
        rows.append(train_and_evaluate(name, dataset, args.epochs, args.steps))
        print_row(rows[-1])
        save(rows, args.out)


def contact_sheet(rows, path, tile=96):
    """Columns: the 2-D densities; first row: the data's histogram; then one row
    per model, its learned density (the panels of the runs' density PNGs)."""
    from PIL import Image, ImageDraw

    runs = {(r["model"], r["dataset"]): r["density_png"] for r in rows if "density_png" in r}
    datasets = [d for d in toy.TOY_NAMES if any(k[1] == d for k in runs)]
    models = list(dict.fromkeys(k[0] for k in runs))
    label = 70
    sheet = Image.new("RGB", (label + tile * len(datasets), 14 + tile * (1 + len(models))),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, dataset in enumerate(datasets):
        draw.text((label + j * tile + 2, 1), dataset, fill=(0, 0, 0))
    for i, model in enumerate(["data"] + models):
        draw.text((2, 14 + i * tile + tile // 2), model, fill=(0, 0, 0))
        for j, dataset in enumerate(datasets):
            source = runs.get((model, dataset)) or (
                next((p for (m, d), p in runs.items() if d == dataset), None)
                if model == "data" else None)
            if source is None:
                continue
            image = Image.open(source)
            side = image.height
            left = 0 if model == "data" else image.width - side  # data | model panels
            box = (left, 0, left + side, side)
            sheet.paste(image.crop(box).resize((tile, tile)), (label + j * tile, 14 + i * tile))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sheet.convert("P", palette=Image.ADAPTIVE, colors=64).save(path, optimize=True)
    return path


def print_header():
    print(f"{'model':>8} {'dataset':>14} {'epochs':>6} {'steps':>6} {'train s':>8} "
          f"{'NLL nats':>9} {'bits/dim':>9} {'entropy':>9} {'gap':>7}", flush=True)


if __name__ == "__main__":
    main()
