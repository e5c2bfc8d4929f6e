"""Trains the zoo's feature networks (``zoo.metrics.features``) and writes their weights.

    python -m zoo.metrics.train_features digits
    python -m zoo.metrics.train_features fashion_mnist --out /tmp/weights

Deterministic: a fixed seed, TensorFlow's op determinism, and a data order drawn
from the seed, so a run on the same software reproduces the shipped test accuracy
(``zoo/metrics/weights/<dataset>.json`` records it and the weights' SHA-256).
Fashion-MNIST takes about 10 minutes on 2 CPU cores, digits about 20 seconds.
"""

import argparse
import json
import os
import sys
import time

# How each shipped network was trained.
SETTINGS = {
    "digits": {"epochs": 15, "batch_size": 64, "learning_rate": 2e-3, "seed": 0},
    "fashion_mnist": {"epochs": 6, "batch_size": 128, "learning_rate": 2e-3, "seed": 0},
}


def accuracy(classifier, images, labels, batch_size=1000):
    import numpy as np

    logits = np.concatenate([np.asarray(classifier(images[i:i + batch_size], training=False))
                             for i in range(0, len(images), batch_size)])
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def train(dataset, out_dir=None, data_dir=None, verbose=1, **overrides):
    """Trains the feature network of `dataset`; returns ``(classifier, record)``,
    the record holding the settings, test accuracy, seconds and weights' SHA-256.
    Writes ``<out_dir>/<dataset>.weights.h5`` and ``.json`` if `out_dir` is given."""
    import keras
    import tensorflow as tf

    from zoo import datasets
    from zoo.metrics import features

    settings = {**SETTINGS[dataset], **overrides}
    keras.utils.set_random_seed(settings["seed"])
    tf.config.experimental.enable_op_determinism()
    x_train, y_train = datasets.arrays(dataset, "train", data_dir)
    x_test, y_test = datasets.arrays(dataset, "test", data_dir)
    classifier = features.build_classifier(dataset)
    steps = settings["epochs"] * -(-len(x_train) // settings["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(settings["learning_rate"], steps)
    classifier.compile(optimizer=keras.optimizers.Adam(schedule),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["accuracy"])
    began = time.time()
    classifier.fit(x_train, y_train, batch_size=settings["batch_size"],
                   epochs=settings["epochs"], shuffle=True, verbose=verbose)
    record = {
        "dataset": dataset,
        "name": f"zoo-{dataset}-v{features.ARCHITECTURES[dataset]['version']}",
        "settings": settings,
        "test_accuracy": accuracy(classifier, x_test, y_test),
        "train_seconds": round(time.time() - began, 1),
        "sha256": features.weights_digest(classifier),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        # A copy without the optimizer, whose state save_weights would add (3x the size).
        plain = features.build_classifier(dataset)
        plain.set_weights(classifier.get_weights())
        plain.save_weights(os.path.join(out_dir, f"{dataset}.weights.h5"))
        with open(os.path.join(out_dir, f"{dataset}.json"), "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    return classifier, record


def main(argv=None):
    from zoo.metrics.features import WEIGHTS_DIR

    parser = argparse.ArgumentParser(prog="python -m zoo.metrics.train_features",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(SETTINGS))
    parser.add_argument("--out", default=WEIGHTS_DIR,
                        help="folder for the weights and record (default: the package's)")
    parser.add_argument("--epochs", type=int, help="override the shipped setting")
    args = parser.parse_args(argv)
    overrides = {"epochs": args.epochs} if args.epochs else {}
    _, record = train(args.dataset, args.out, verbose=2, **overrides)
    json.dump(record, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
