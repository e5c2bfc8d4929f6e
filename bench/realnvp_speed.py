"""RealNVP training throughput (examples/s) through model.fit, side by side.

Same data, model and batch in one run: jit_compile off/on, and
steps_per_execution 1/20. Prints a table and writes bench/results/realnvp_speed.json.

    python bench/realnvp_speed.py --dataset digits --steps 200
"""

import argparse
import json
import os
import time

import keras
import tensorflow as tf

import zoo


def throughput(dataset, jit, steps_per_execution, steps, batch_size, data):
    model = zoo.get("realnvp", dataset=dataset)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit,
                  steps_per_execution=steps_per_execution)
    model.fit(data, steps_per_epoch=steps_per_execution * 5, epochs=1, verbose=0)  # trace
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return steps * batch_size / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    batch = args.batch_size or zoo.registry.entry("realnvp").training_for(args.dataset)["batch_size"]
    data = zoo.datasets.load(args.dataset, "train", batch_size=batch, drop_remainder=True,
                             repeat=True)
    rows = []
    for jit in (False, True):
        for spe in (1, 20):
            rate = throughput(args.dataset, jit, spe, args.steps, batch, data)
            rows.append({"jit_compile": jit, "steps_per_execution": spe, "examples_per_s": rate})
    base = rows[0]["examples_per_s"]
    print(f"RealNVP on {args.dataset}, batch {batch}, {args.steps} steps, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}")
    print(f"{'jit_compile':>11} {'steps/exec':>10} {'examples/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{str(r['jit_compile']):>11} {r['steps_per_execution']:>10} "
              f"{r['examples_per_s']:>11.0f} {r['examples_per_s'] / base:>6.2f}")
    os.makedirs("bench/results", exist_ok=True)
    with open(f"bench/results/realnvp_speed_{args.dataset}.json", "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
