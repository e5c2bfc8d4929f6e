"""FID on 10,000 Fashion-MNIST images: the zoo against torchmetrics, same features.

    python bench/fid_speed.py --repeats 3
    python bench/fid_speed.py --peer-python .bench-venv/bin/python   # the default

The "samples" are the first `--num-samples` training images, the reference the
10,000 test images (a model's samples would do the same work). Times, the median
of `--repeats`:

- features: the zoo's Fashion-MNIST network on both sets (20,000 images);
- statistics: means, covariances and the Frechet distance (``zoo.metrics.fid``);
- the same distance by SciPy's ``sqrtm`` of the covariance product (the formula
  of pytorch-fid and of the original TTUR code), as a reference value;
- the peer: torchmetrics' ``FrechetInceptionDistance`` fed the same features
  through an identity feature module (bench/fid_speed_torch.py, run with
  `--peer-python`: a venv with torch==2.13.0 and torchmetrics, never the zoo's).
  pytorch-fid itself needs torchvision, which does not install beside that torch.

Prints a table and writes bench/results/fid_speed.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy.linalg

from zoo import datasets
from zoo.metrics import features, fid

RESULTS = "bench/results"


def timed(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - began)
    return value, statistics.median(times)


def scipy_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    cov1, cov2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2.0 * root))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-python", default=".bench-venv/bin/python")
    args = parser.parse_args()

    real, _ = datasets.arrays("fashion_mnist", "test")
    fake = datasets.arrays("fashion_mnist", "train")[0][:args.num_samples]
    network = features.shipped("fashion_mnist")
    network.features(real[:10])  # trace once
    (real_f, fake_f), features_s = timed(
        lambda: (network.features(real), network.features(fake)), args.repeats)
    ours, stats_s = timed(lambda: fid(real_f, fake_f), args.repeats)
    reference, scipy_s = timed(lambda: scipy_fid(real_f, fake_f), args.repeats)
    rows = {"zoo": {"fid": ours, "features_seconds": features_s, "statistics_seconds": stats_s},
            "scipy sqrtm": {"fid": reference, "statistics_seconds": scipy_s}}

    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "fid_features.npz")
    np.savez(path, real=real_f.astype(np.float32), fake=fake_f.astype(np.float32))
    if os.path.exists(args.peer_python):
        out = subprocess.run([args.peer_python, "bench/fid_speed_torch.py", path,
                              "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True).stdout
        rows["torchmetrics"] = json.loads(out.strip().splitlines()[-1])
    else:
        print(f"no peer: {args.peer_python} is missing (see bench/fid_speed_torch.py)",
              file=sys.stderr)

    print(f"FID, {len(fake)} samples against {len(real)} test images, "
          f"{real_f.shape[1]}-d features of {network.name}, median of {args.repeats}")
    print(f"{'':14s} {'FID':>12s} {'rel. diff':>10s} {'features s':>11s} {'statistics s':>13s}")
    for name, r in rows.items():
        rel = abs(r["fid"] - ours) / abs(ours)
        feats = f"{r['features_seconds']:.2f}" if "features_seconds" in r else "-"
        print(f"{name:14s} {r['fid']:12.6f} {rel:10.1e} {feats:>11s} "
              f"{r['statistics_seconds']:13.3f}")
    if "torchmetrics" in rows:
        ratio = rows["torchmetrics"]["statistics_seconds"] / stats_s
        print(f"statistics: the zoo is {ratio:.2f}x torchmetrics' speed")
    with open(os.path.join(RESULTS, "fid_speed.json"), "w") as f:
        json.dump({"network": network.name, "num_samples": len(fake), "num_real": len(real),
                   "repeats": args.repeats, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
