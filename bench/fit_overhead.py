"""How long ``model.fit`` takes to return after training ends, per input pipeline.

    python bench/fit_overhead.py --fits 6 --steps 100

Each fit of a small MAF on moons records the time from its ``on_train_end``
callback to the return of ``fit``: the tear-down of fit's data iterator. Three
pipelines over the same 50k points: the zoo's (``zoo.datasets.load``: tfds read,
map, cache, shuffle, repeat, batch, prefetch), a plain ``from_tensor_slices``
repeat/batch, and that plus a 50k shuffle and prefetch. ``zoo train`` runs one
``fit`` per run (``zoo.datasets.training_epochs``), so this is paid once per run.
"""

import argparse
import time

import keras
import tensorflow as tf

import zoo
from zoo.datasets import toy


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fits", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    x = toy.generate("moons", 50_000, 0)

    def plain():
        return tf.data.Dataset.from_tensor_slices(x).repeat().batch(256, drop_remainder=True)

    pipelines = {
        "zoo.datasets.load": lambda: zoo.datasets.load("moons", "train", 256, repeat=True,
                                                        drop_remainder=True),
        "from_tensor_slices": plain,
        "+ shuffle, prefetch": lambda: tf.data.Dataset.from_tensor_slices(x).shuffle(
            50_000, seed=0).repeat().batch(256, drop_remainder=True).prefetch(tf.data.AUTOTUNE),
    }
    model = zoo.get("maf", dataset="moons", num_layers=2, hidden_units=16, num_hidden=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    ended = {}

    class End(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            ended["t"] = time.perf_counter()

    print(f"seconds from on_train_end to fit's return, {args.fits} fits of {args.steps} steps")
    for name, make in pipelines.items():
        data, stalls = make(), []
        for _ in range(args.fits):
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[End()])
            stalls.append(time.perf_counter() - ended["t"])
        print(f"{name:>20}: " + " ".join(f"{s:.2f}" for s in stalls), flush=True)


if __name__ == "__main__":
    main()
