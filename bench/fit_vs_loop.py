"""``model.fit`` at the zoo's defaults against a plain ``tf.function`` loop, per family.

    python bench/fit_vs_loop.py --repeats 3

One model of each kind on the data it is made for, at its preset size and the
zoo's training batch size: RealNVP on moons (a flow, 256), the Gaussian VAE on
digits (64) and the GAN on 8gaussians (64; one critic and one generator update
per step). Each is trained for ``--steps`` steps three ways, each in a fresh
process, after a first run of the same length (tracing; it also times the step
for "auto"):

* ``fit``: ``model.compile()`` and ``model.fit`` at the defaults
  (``steps_per_execution="auto"``);
* ``fit_spe1``: the same with ``steps_per_execution=1``, what Keras does unless told;
* ``loop``: the same networks, step and optimizer, as ``tf.function(model.train_step)``
  called from a Python loop over one iterator of the same pipeline: what one
  writes without Keras' ``fit``.

Examples per second are medians over ``--repeats`` rounds (configurations
interleaved within a round); ratios are fit / loop.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {"realnvp": "moons", "vae": "digits", "gan": "8gaussians"}
WAYS = ("fit", "fit_spe1", "loop")


def measure(name, way, steps):
    import tensorflow as tf

    import zoo
    from zoo.registry import entry

    dataset = MODELS[name]
    batch = entry(name).training_for(dataset)["batch_size"]
    model = zoo.get(name, dataset=dataset)
    model.compile(steps_per_execution=1 if way == "fit_spe1" else "auto")
    data = zoo.datasets.load(dataset, "train", batch, repeat=True, drop_remainder=True)
    if way == "loop":
        step = tf.function(model.train_step)
        iterator = iter(data)

        def run():
            for _ in range(steps):
                logs = step(next(iterator))
            return float(logs[model.loss_names[0]])
    else:
        def run():
            history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
            return history.history[model.loss_names[0]][-1]
    run()  # tracing (and, for "auto", timing the step)
    start = time.perf_counter()
    loss = run()
    seconds = time.perf_counter() - start
    return {"model": name, "way": way, "examples_per_s": steps * batch / seconds,
            "steps_per_execution": getattr(model, "steps_per_execution", None)
            if way != "loop" else None, "loss": loss}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "WAY"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.steps)))
        return
    runs = {(m, w): [] for m in MODELS for w in WAYS}
    for r in range(args.repeats):
        for (m, w), results in runs.items():
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", m, w,
                                   "--steps", str(args.steps)], capture_output=True, text=True,
                                  cwd=ROOT)
            if proc.returncode:
                sys.exit(f"{m} {w} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  repeat {r + 1}/{args.repeats} {m} {w}: "
                  f"{results[-1]['examples_per_s']:.0f} ex/s", flush=True)
    print(f"\n{args.steps} steps, medians of {args.repeats} fresh processes; "
          f"{os.cpu_count()} CPU cores")
    head = f"{'model':<8} {'dataset':<11} " + " ".join(f"{w + ' ex/s':>14}" for w in WAYS) + \
        f" {'spe':>5} {'fit/loop':>8} {'spe1/loop':>9}"
    print(head)
    print("-" * len(head))
    table = []
    for m, dataset in MODELS.items():
        rate = {w: statistics.median(r["examples_per_s"] for r in runs[(m, w)]) for w in WAYS}
        spe = "/".join(str(k) for k in sorted({r["steps_per_execution"] for r in runs[(m, "fit")]}))
        table.append({"model": m, "dataset": dataset, **rate, "spe": spe})
        print(f"{m:<8} {dataset:<11} " + " ".join(f"{rate[w]:>14.0f}" for w in WAYS) +
              f" {spe:>5} {rate['fit'] / rate['loop']:>8.2f} {rate['fit_spe1'] / rate['loop']:>9.2f}")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "fit_vs_loop.json"), "w") as f:
        json.dump({"args": vars(args), "table": table, "runs": [r for rs in runs.values() for r in rs]},
                  f, indent=1)


if __name__ == "__main__":
    main()
