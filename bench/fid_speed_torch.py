"""The peer of bench/fid_speed.py: torchmetrics' FID on precomputed features.

Runs in its own venv (never in the zoo's):

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.13.0 numpy scipy
    .bench-venv/bin/pip install --no-deps torchmetrics lightning-utilities

    .bench-venv/bin/python bench/fid_speed_torch.py bench/results/fid_features.npz

Feeds the features through an identity "feature extractor" (so only the
statistics are timed: updates of the running sums and ``compute``), in float64
as torchmetrics accumulates, and prints one JSON line: the FID and the median
seconds of `--repeats`.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance


class Identity(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("features")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = np.load(args.features)
    real, fake = torch.from_numpy(data["real"]), torch.from_numpy(data["fake"])
    times, value = [], None
    for _ in range(args.repeats):
        began = time.perf_counter()
        metric = FrechetInceptionDistance(feature=Identity(real.shape[1]))
        for i in range(0, len(real), 1000):
            metric.update(real[i:i + 1000], real=True)
        for i in range(0, len(fake), 1000):
            metric.update(fake[i:i + 1000], real=False)
        value = float(metric.compute())
        times.append(time.perf_counter() - began)
    print(json.dumps({"fid": value, "statistics_seconds": statistics.median(times),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
