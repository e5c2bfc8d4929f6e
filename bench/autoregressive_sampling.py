"""Sampling speed of the autoregressive models (examples/s and symbols/s), side
by side: the compiled loop (``model.sample``: one ``tf.while_loop`` in a
``tf.function``), for a model with a cached step (the transformer's key/value
cache, WaveNet's queues) the same loop with the whole network at each step, the
loop compiled with XLA, and a plain Python loop calling the network eagerly once
per dimension. Untrained weights at the dataset's preset (speed does not depend
on them). Prints a table and writes bench/results/autoregressive_sampling_DATASET.json.

    python bench/autoregressive_sampling.py --dataset digits -n 100
    python bench/autoregressive_sampling.py --dataset fortunes -n 16 --models wavenet transformer
"""

import argparse
import json
import os
import time

import numpy as np
import tensorflow as tf

import zoo
from zoo.autoregressive.base import AutoregressiveModel

MODELS = ("pixelcnn", "gated_pixelcnn", "pixelcnn_pp")


def timed(fn, repeats):
    fn()  # trace / compile
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def python_loop(model, n, seed):
    x = np.zeros((n,) + model.data_shape, "float32")
    obs = model.observation_model
    for i in range(model.event_size):
        params = model.ordered_params(model.params(tf.constant(x)))[:, i]
        drawn = obs.sample(params, tf.random.experimental.stateless_fold_in(seed, i))
        x.reshape(n, -1)[:, i] = drawn.numpy()[:, 0]
    return x


def uncached(model):
    """`model` sampling with the family's default step (the network over the whole
    input at each step) instead of its cached one."""
    model.sampling_state = lambda n, labels=None: ()
    model.step_params = lambda x, i, state, labels=None: AutoregressiveModel.step_params(
        model, x, i, state, labels)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("-n", type=int, default=100, help="examples per draw")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    rows = []
    for name in args.models:
        model = zoo.get(name, dataset=args.dataset)
        seed = model.stateless_seed(0)
        zeros = tf.zeros((args.n,) + model.data_shape)
        xla = tf.function(lambda: model._generate_loop(zeros, zeros, seed, 1.0, None),
                          jit_compile=True)
        seconds = {"compiled loop": timed(lambda: model.sample(args.n, seed=0), args.repeats)}
        if type(model).step_params is not AutoregressiveModel.step_params:
            whole = uncached(zoo.get(name, dataset=args.dataset))
            seconds["compiled loop, no cache"] = timed(lambda: whole.sample(args.n, seed=0),
                                                       args.repeats)
        seconds["XLA loop"] = timed(xla, args.repeats)
        seconds["Python loop"] = timed(lambda: python_loop(model, args.n, seed), 1)
        rows.append({"model": name, "examples/s": {k: args.n / v for k, v in seconds.items()},
                     "symbols/s": {k: args.n * model.event_size / v
                                   for k, v in seconds.items()}})
        print(f"{name} ({model.event_size} symbols per example): " + ", ".join(
            f"{k} {args.n / v:.1f} examples/s = {args.n * model.event_size / v:.0f} symbols/s"
            for k, v in seconds.items()), flush=True)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results",
                           f"autoregressive_sampling_{args.dataset}.json"), "w") as f:
        json.dump({"dataset": args.dataset, "n": args.n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
