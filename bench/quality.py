"""Test NLL (or its bound) of likelihood models after their preset's training.

    python bench/quality.py realnvp:moons realnvp:digits vae:digits [--epochs N]

For 2-D densities: test NLL in nats (the entropy of the data's density is the
floor: about 2.39 nats for moons). For images: test bits/dim; a flow's are those
of dequantized data (an upper bound on the discrete data's), a VAE's are its
negative ELBO (also an upper bound). Prints a table and writes
bench/results/quality.json.
"""

import argparse
import json
import os
import time

import zoo
from zoo.metrics import evaluate_likelihood


def train_and_evaluate(name, dataset, epochs=None):
    training = zoo.registry.entry(name).training_for(dataset)
    epochs = epochs or training["epochs"]
    model = zoo.get(name, dataset=dataset)
    model.compile(optimizer=model.default_optimizer(training["learning_rate"]))
    steps = training.get("steps_per_epoch")
    train = zoo.datasets.load(dataset, "train", training["batch_size"], repeat=bool(steps))
    start = time.perf_counter()
    model.fit(train, epochs=epochs, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    test = evaluate_likelihood(model, zoo.datasets.load(dataset, "test", 500), seed=0)
    return {"model": name, "dataset": dataset, "epochs": epochs,
            "train_seconds": round(seconds, 1), **test}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", default=["realnvp:moons", "realnvp:digits",
                                                     "vae:digits"],
                        help="model:dataset pairs")
    parser.add_argument("--epochs", type=int, default=None, help="override the presets'")
    args = parser.parse_args()
    rows = [train_and_evaluate(*run.split(":"), args.epochs) for run in args.runs]
    print(f"{'model':>8} {'dataset':>14} {'epochs':>6} {'train s':>8} {'NLL nats':>9} "
          f"{'bits/dim':>9}")
    for r in rows:
        print(f"{r['model']:>8} {r['dataset']:>14} {r['epochs']:>6} {r['train_seconds']:>8} "
              f"{r['nll_nats']:>9.3f} {r['bits_per_dim']:>9.3f}")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/quality.json", "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
