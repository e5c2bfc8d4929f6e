"""The GAN architectures, each with its paper's loss and regularizer, and dcgan with
the best distances of the distances table, at one budget, with seeds.

    python bench/gan_architectures.py                                   # Fashion-MNIST
    python bench/gan_architectures.py --dataset digits --steps-per-epoch 200 \\
        --num-samples 1000 --seeds 0 --top-seeds 0
    python bench/gan_architectures.py --runs dcgan stylegan --epochs 3

Trains each run of ``RUNS`` (a registered name and its overrides: ``dcgan``
non-saturating, ``stylegan`` with R1 and path lengths, ``biggan`` hinge and
spectral norm, class-conditional with the generator's EMA, ``diffusion_gan`` on
the non-saturating loss, and ``dcgan`` under ``f_squared_hellinger`` and
``f_reverse_kl``, the two next best digits FIDs of bench/gan_distances.py) with
the dataset's preset, `--epochs` x `--steps-per-epoch` critic steps (the budget;
``--steps-per-epoch`` unset: whole epochs), for each seed of `--seeds`, into
``RUNS_DIR/NAME-DATASET-seedS`` (resumed if there); then the three best by mean
FID get the seeds of `--top-seeds` too, so that their spread shows. Each run is
evaluated by ``zoo compare`` (FID, KID, precision and recall in the zoo's
feature network over `--num-samples` samples against the test split). Prints one
table, mean and standard deviation over seeds with minutes per run on this
machine, and writes RUNS_DIR/gan-architectures.md.
"""

import argparse
import os
import sys
import time

import numpy as np

from zoo import compare, runs, training

RUNS = {
    "dcgan": ("dcgan", {}),
    "stylegan": ("stylegan", {}),
    "biggan": ("biggan", {}),
    "diffusion_gan": ("diffusion_gan", {}),
    "dcgan-f_squared_hellinger": ("dcgan", {"distance": "f_squared_hellinger"}),
    "dcgan-f_reverse_kl": ("dcgan", {"distance": "f_reverse_kl"}),
}
METRICS = ("fid", "kid", "precision", "recall")


def train(label, dataset, seed, args):
    """Trains (or resumes) one run; returns (folder, minutes, failure or None)."""
    name, overrides = RUNS[label]
    out = os.path.join(args.runs_dir, f"{label}-{dataset}-seed{seed}")
    resume = os.path.isfile(os.path.join(out, runs.RUN_FILE))
    began, failure = time.time(), None
    try:
        training.train(name, None if resume else dataset, out, epochs=args.epochs,
                       steps_per_epoch=None if resume else args.steps_per_epoch,
                       overrides=None if resume else overrides, resume=resume,
                       seed=None if resume else seed, verbose=0)
    except runs.NonFiniteError as e:
        failure = str(e).split(";")[0][:80]
    minutes = (time.time() - began) / 60
    print(f"{label} seed {seed}: {minutes:.1f} min", file=sys.stderr, flush=True)
    return out, minutes, failure


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps-per-epoch", type=int, default=2000,
                        help="critic steps per epoch (the budget); 0: whole epochs")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--top-seeds", type=int, nargs="*", default=[1, 2],
                        help="more seeds for the three best runs by mean FID")
    parser.add_argument("--runs-dir", default="runs/gan_architectures")
    parser.add_argument("--num-samples", type=int, default=10_000)
    args = parser.parse_args()
    args.steps_per_epoch = args.steps_per_epoch or None

    trained = {label: [] for label in args.runs}  # label -> [(folder, minutes, failure)]
    for label in args.runs:
        for seed in args.seeds:
            trained[label].append(train(label, args.dataset, seed, args))

    def evaluate(folders):
        folders = [f for f in folders if runs.has_checkpoints(f)]
        if not folders:
            return {}
        rows, _ = compare.compare(args.dataset, folders, runs_dir=args.runs_dir,
                                  out=os.path.join(args.runs_dir, f"compare-{args.dataset}"),
                                  num_samples=args.num_samples,
                                  log=lambda line: print(line, file=sys.stderr))
        return {r["run"]: r for r in rows}

    rows = evaluate([f for done in trained.values() for f, _, _ in done])

    def mean_fid(label):
        fids = [rows.get(os.path.basename(f), {}).get("fid") for f, _, _ in trained[label]]
        fids = [v for v in fids if v is not None]
        return np.mean(fids) if fids else np.inf

    for label in sorted(args.runs, key=mean_fid)[:3]:
        for seed in args.top_seeds:
            if seed not in args.seeds:
                trained[label].append(train(label, args.dataset, seed, args))
    if args.top_seeds:
        rows = evaluate([f for done in trained.values() for f, _, _ in done])

    steps = f"{args.epochs} x {args.steps_per_epoch or 'whole-epoch'}"
    lines = [f"{args.dataset}: {steps} critic steps, {args.num_samples} samples; mean "
             f"(std over seeds) where several", "",
             "| run | seeds | " + " | ".join(METRICS) + " | minutes per run | failures |",
             "|---" * (len(METRICS) + 4) + "|"]
    for label in sorted(args.runs, key=mean_fid):
        found = [rows.get(os.path.basename(f), {}) for f, _, _ in trained[label]]
        cells = []
        for metric in METRICS:
            values = [r[metric] for r in found if r.get(metric) is not None]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.4g}")
            else:
                cells.append(f"{np.mean(values):.4g} ({np.std(values, ddof=1):.2g})")
        minutes = np.mean([m for _, m, _ in trained[label]])
        failures = "; ".join(f for _, _, f in trained[label] if f) or "none"
        lines.append(f"| {label} | {len(trained[label])} | " + " | ".join(cells) +
                     f" | {minutes:.1f} | {failures} |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "gan-architectures.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
