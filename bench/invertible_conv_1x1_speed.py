"""Glow's invertible 1x1 convolution: tfb.ScaleMatvecLU against our bijector.

Both compute y = W x at every position from the same LU factors. Times (ms per
call, inside a tf.function) of the forward pass with the gradient of the factors
(training) and of the inverse (sampling), on the shapes of Glow's fashion_mnist
preset. Prints a table and writes bench/results/invertible_conv_1x1_speed.json.

    python bench/invertible_conv_1x1_speed.py --batch-size 64 --repeats 200
"""

import argparse
import json
import os
import time

import tensorflow as tf
import tensorflow_probability as tfp

from zoo.flows.steps.invertible_conv_1x1 import InvertibleConv1x1

tfb = tfp.bijectors


def timed(fn, x, repeats):
    fn(x)  # trace
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return (time.perf_counter() - start) / repeats * 1e3


def compare(shape, repeats):
    layer = InvertibleConv1x1(shape[-1])
    x = tf.random.normal(shape, seed=0)
    makers = {
        "tfb.ScaleMatvecLU": lambda: tfb.ScaleMatvecLU(
            layer.lower_upper(), tf.convert_to_tensor(layer.permutation)),
        "zoo": layer.bijector,
    }
    rows = []
    for name, make in makers.items():
        @tf.function
        def train(x, make=make):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(make().forward(x) ** 2)
            return tape.gradient(loss, layer.trainable_weights)

        @tf.function
        def sample(x, make=make):
            return make().inverse(x)

        rows.append({"shape": list(shape), "bijector": name,
                     "forward_and_gradient_ms": timed(train, x, repeats),
                     "inverse_ms": timed(sample, x, repeats)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for shape in [(args.batch_size, 14, 14, 4), (args.batch_size, 7, 7, 8)]:
        rows += compare(shape, args.repeats)
    print(f"{os.cpu_count()} CPU cores, TF {tf.__version__}")
    print(f"{'shape':>18} {'bijector':>18} {'fwd+grad ms':>12} {'inverse ms':>11}")
    for r in rows:
        print(f"{str(tuple(r['shape'])):>18} {r['bijector']:>18} "
              f"{r['forward_and_gradient_ms']:>12.2f} {r['inverse_ms']:>11.2f}")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/invertible_conv_1x1_speed.json", "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
