"""Sampling speed of the autoregressive samplers (examples/s and symbols/s), side
by side: ``model.sample`` as the model runs it (one ``tf.while_loop``, under XLA
where its ``xla_sampling`` is on), the same loop the other way (a plain graph, or
under XLA), for a model with a cached step (the transformer's key/value cache,
WaveNet's queues) the plain-graph loop with the whole network at each step, and a
plain Python loop calling the network eagerly once per dimension: the fastest
of ``--repeats`` calls. The first call of each loop on a fresh model (trace and
compile, then one draw of `n`) is timed apart ("first call, s"). PixelVAE's
decoder loop and vq_vae_prior's code loop (over an untrained ``vq_vae``) are
timed the same way. Untrained weights at the dataset's preset (speed does not
depend on them). Prints a table and writes
bench/results/autoregressive_sampling_DATASET_N.json.

    python bench/autoregressive_sampling.py --dataset digits -n 100
    python bench/autoregressive_sampling.py --dataset fortunes -n 16 --models wavenet transformer
    python bench/autoregressive_sampling.py -n 64 --no-python-loop   # `zoo sample`'s count
"""

import argparse
import json
import os
import time

import numpy as np
import tensorflow as tf

import zoo
from zoo.autoregressive.base import AutoregressiveModel

MODELS = ("pixelcnn", "gated_pixelcnn", "pixelcnn_pp", "pixel_vae", "vq_vae_prior")


def timed(fn, repeats):
    """(seconds of the first call, the fastest of `repeats` calls after it: the one
    least slowed by other work on a shared machine)."""
    start = time.perf_counter()
    fn()  # trace / compile
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return first, best


def python_loop(model, n, seed):
    x = np.zeros((n,) + model.data_shape, "float32")
    obs = model.observation_model
    noise = obs.noise([n, model.event_size], seed)
    for i in range(model.event_size):
        params = model.ordered_params(model.params(tf.constant(x)))[:, i]
        drawn = obs.sample_from_noise(params, noise[:, i:i + 1])
        x.reshape(n, -1)[:, i] = drawn.numpy()[:, 0]
    return x


def build(name, dataset):
    if name == "vq_vae_prior":
        return zoo.get(name, dataset=dataset, first_stage=zoo.get("vq_vae", dataset=dataset))
    return zoo.get(name, dataset=dataset)


def with_xla(model, on):
    """`model` sampling with its loop under XLA (`on`) or as a plain graph."""
    model.xla_sampling = on
    return model


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
    parser.add_argument("--no-python-loop", action="store_true",
                        help="leave out the Python loop (the slowest column)")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        model = build(name, args.dataset)
        own = "XLA loop" if model.xla_sampling else "plain-graph loop"
        other = build(name, args.dataset)
        other.set_weights(model.get_weights())
        with_xla(other, not model.xla_sampling)
        seconds = {f"model.sample ({own})": timed(lambda: model.sample(args.n, seed=0),
                                                  args.repeats),
                   ("plain-graph loop" if model.xla_sampling else "XLA loop"):
                       timed(lambda: other.sample(args.n, seed=0), args.repeats)}
        if (isinstance(model, AutoregressiveModel)
                and type(model).step_params is not AutoregressiveModel.step_params):
            whole = with_xla(uncached(build(name, args.dataset)), False)
            seconds["plain-graph loop, no cache"] = timed(lambda: whole.sample(args.n, seed=0),
                                                          args.repeats)
        if isinstance(model, AutoregressiveModel) and not args.no_python_loop:
            seed = model.stateless_seed(0)
            seconds["Python loop"] = timed(lambda: python_loop(model, args.n, seed), 1)
        size = model.num_latents if name == "vq_vae_prior" else model.event_size
        rows.append({"model": name, "symbols per example": size,
                     "first call, s": {k: v[0] for k, v in seconds.items()},
                     "examples/s": {k: args.n / v[1] for k, v in seconds.items()},
                     "symbols/s": {k: args.n * size / v[1] for k, v in seconds.items()}})
        print(f"{name} ({size} symbols per example): " + ", ".join(
            f"{k} {args.n / v[1]:.1f} examples/s = {args.n * size / v[1]:.0f} symbols/s "
            f"(first call {v[0]:.1f} s)" for k, v in seconds.items()), flush=True)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results",
                           f"autoregressive_sampling_{args.dataset}_{args.n}.json"), "w") as f:
        json.dump({"dataset": args.dataset, "n": args.n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
