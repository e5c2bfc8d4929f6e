"""Trains every model that has a preset for a dataset, then `zoo compare`s them.

    python bench/compare_presets.py digits                 # the README's digits table
    python bench/compare_presets.py fashion_mnist --steps-per-epoch 100 --epochs 3 \
        --models vae wgan_gp glow --runs-dir runs/budget

Each model trains with its preset (or the budget given) into
``RUNS_DIR/MODEL-DATASET`` from seed 0; a run folder that exists is resumed, so a
stopped bench continues where it was. Then every run is evaluated with
`--num-samples` samples (default 10,000) and ``zoo.compare.compare`` writes the
table (Markdown and CSV) and the sample sheet into ``RUNS_DIR/compare-DATASET``.
A run that fails (NaN, say) is reported and left out; the others go on.
"""

import argparse
import os
import sys
import time

import zoo
from zoo import compare, progress, runs, training


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--models", nargs="*", help="default: every model with a preset")
    parser.add_argument("--epochs", type=int, help="default: each preset's")
    parser.add_argument("--steps-per-epoch", type=int, help="default: each preset's")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    progress.configure(quiet=args.quiet)

    names = args.models or [e.name for e in zoo.list_models() if args.dataset in e.presets]
    done = []
    for name in progress.track(names, "compare_presets: training", len(names), "runs"):
        out = os.path.join(args.runs_dir, f"{name}-{args.dataset}")
        resume = os.path.isfile(os.path.join(out, runs.RUN_FILE))
        began = time.time()
        try:
            training.train(name, None if resume else args.dataset, out, epochs=args.epochs,
                           steps_per_epoch=None if resume else args.steps_per_epoch,
                           resume=resume, verbose=0)
        except (runs.RunError, runs.NonFiniteError) as e:
            print(f"{name}: failed: {e}", file=sys.stderr, flush=True)
            continue
        print(f"{name}: trained in {time.time() - began:.0f} s", file=sys.stderr, flush=True)
        done.append(out)
    _, paths = compare.compare(args.dataset, done, runs_dir=args.runs_dir,
                               num_samples=args.num_samples,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    with open(paths[0]) as f:
        print(f.read())
    print("\n".join(paths))


if __name__ == "__main__":
    main()
