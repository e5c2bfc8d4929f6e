"""Every GAN distance with the same networks and the same budget, side by side.

    python bench/gan_distances.py                                  # 8gaussians, checkerboard
    python bench/gan_distances.py --datasets fashion_mnist --epochs 1 --steps-per-epoch 300
    python bench/gan_distances.py --distances non_saturating wasserstein_gp hinge_sn

Trains ``zoo.get("gan", dataset=D, distance=NAME)`` for every distance
(``zoo.gan.distances.DISTANCES``) with the dataset's preset networks, each its
paper's optimizer at the preset's learning rate, and the same number of critic
steps (`--epochs` x `--steps-per-epoch`, batch of the preset), from seed 0, into
``RUNS_DIR/gan-DISTANCE-DATASET`` (resumed if there). Then ``zoo compare`` gives
each dataset's table (the points' distances, modes covered and high-quality
fraction on 8gaussians; FID, KID, precision and recall on images) and one PNG of
every distance's samples side by side; this script adds wall time and what was
seen about stability: a run that met NaN/Inf ("diverged"), fewer than 8 modes
covered on 8gaussians ("mode collapse"), recall under 0.1 on images ("mode
dropping"), a sliced W2 over 5 times the dataset's median on 2-D data ("far
off"). Prints one table and writes RUNS_DIR/gan-distances.md.
"""

import argparse
import os
import sys
import time

import numpy as np

from zoo import compare, progress, report, runs, training
from zoo.gan.distances import DISTANCES


def stability(row, dataset, failure, median_sw=None):
    if failure:
        return f"diverged ({failure})"
    if dataset == "8gaussians" and row.get("modes_covered", 8) < 8:
        return f"mode collapse ({row['modes_covered']}/8 modes)"
    if "recall" in row and row["recall"] < 0.1:
        return f"mode dropping (recall {row['recall']:.2f})"
    if median_sw and row.get("sliced_wasserstein", 0) > 5 * median_sw:
        return f"far off (sliced W2 {row['sliced_wasserstein'] / median_sw:.0f}x the median)"
    return "stable"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=["8gaussians", "checkerboard"])
    parser.add_argument("--distances", nargs="*", default=list(DISTANCES))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=400)
    parser.add_argument("--runs-dir", default="runs/gan_distances")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    progress.configure(quiet=args.quiet)

    lines = []
    for dataset in args.datasets:
        trained, failures, seconds = [], {}, {}
        for distance in progress.track(args.distances, f"gan_distances: {dataset}",
                                       len(args.distances), "runs"):
            out = os.path.join(args.runs_dir, f"gan-{distance}-{dataset}")
            resume = os.path.isfile(os.path.join(out, runs.RUN_FILE))
            began = time.time()
            try:
                training.train("gan", None if resume else dataset, out, epochs=args.epochs,
                               steps_per_epoch=None if resume else args.steps_per_epoch,
                               overrides=None if resume else {"distance": distance},
                               resume=resume, verbose=0)
            except runs.NonFiniteError as e:
                failures[distance] = str(e).split(";")[0][:80]
            seconds[distance] = time.time() - began
            print(f"{dataset} {distance}: {seconds[distance]:.0f} s", file=sys.stderr,
                  flush=True)
            if runs.has_checkpoints(out):
                trained.append(out)
        rows, paths = compare.compare(dataset, trained, runs_dir=args.runs_dir,
                                      out=os.path.join(args.runs_dir, f"compare-{dataset}"),
                                      num_samples=args.num_samples,
                                      log=lambda line: print(line, file=sys.stderr))
        by_distance = {r["run"].split("-")[1]: r for r in rows}
        image = "fid" in rows[0] if rows else False
        metrics = ["fid", "kid", "precision", "recall"] if image else \
            ["sliced_wasserstein", "mmd_rbf", "modes_covered", "high_quality_fraction"]
        lines += [f"\n{dataset} ({args.epochs} x {args.steps_per_epoch} critic steps); "
                  f"samples: {paths[-1]}", "",
                  "| distance | " + " | ".join(metrics) + " | wall s | stability |",
                  "|---" * (len(metrics) + 3) + "|"]
        distances = [r["sliced_wasserstein"] for r in rows if "sliced_wasserstein" in r]
        median_sw = float(np.median(distances)) if distances else None
        for distance in args.distances:
            row = by_distance.get(distance, {})
            cells = [report.cell(row.get(m), "{:.4g}") for m in metrics]
            lines.append(f"| {distance} | " + " | ".join(cells) +
                         f" | {seconds[distance]:.0f} | "
                         f"{stability(row, dataset, failures.get(distance), median_sw)} |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "gan-distances.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
