"""The PyTorch peer of bench/flows_speed.py: zuko's RealNVP, MAF and NSF on FFJORD moons.

Runs in its own venv (never in the zoo's), e.g.

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.13.0 numpy zuko
    .bench-venv/bin/python bench/flows_speed_torch.py --repeats 3

Same config as the TF side: batch 256, Adam 1e-3, `--steps` timed training steps
after `--warmup` steps, sampling throughput for n=10000, peak RSS (VmHWM) of
a fresh process per measurement. The data are the zoo's moons batches saved by
bench/flows_speed.py (bench/results/moons_batches.npy); without that file, numpy
moons with the same recipe (sklearn's make_moons, noise 0.1, * 2 + (-1, -0.2)).

`--worker NAME` measures one configuration in this process and prints one JSON
line (bench/flows_speed.py calls it that way, interleaved with the TF runs);
without it, each configuration runs `--repeats` times in fresh subprocesses and
the medians go to bench/results/flows_speed_torch.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from process_memory import peak_rss_mb, rss_mb  # bench/, the scripts' folder

CONFIGS = ("zuko_realnvp", "zuko_maf", "zuko_nsf")
DATA = "bench/results/moons_batches.npy"


def numpy_moons(n, seed=0, batch_size=256):
    """sklearn.datasets.make_moons(noise=0.1) * 2 + (-1, -0.2), shuffled, in batches."""
    rng = np.random.RandomState(seed)
    out, inn = n // 2, n - n // 2
    x = np.concatenate([np.cos(np.linspace(0, np.pi, out)), 1 - np.cos(np.linspace(0, np.pi, inn))])
    y = np.concatenate([np.sin(np.linspace(0, np.pi, out)), 1 - np.sin(np.linspace(0, np.pi, inn)) - 0.5])
    data = np.stack([x, y], 1) + rng.normal(scale=0.1, size=(n, 2))
    data = (data * 2.0 + np.array([-1.0, -0.2]))[rng.permutation(n)].astype("float32")
    return data[: n // batch_size * batch_size].reshape(-1, batch_size, 2)


def load_batches(path, needed, batch_size):
    if path and os.path.exists(path):
        batches = np.load(path)
    else:
        batches = numpy_moons(needed * batch_size, batch_size=batch_size)
    reps = -(-needed // len(batches))
    return np.concatenate([batches] * reps)[:needed]


def make_flow(name):
    import zuko

    if name == "zuko_realnvp":  # 8 affine couplings, MLP 64x64, alternating masks
        return zuko.flows.RealNVP(features=2, transforms=8, hidden_features=[64, 64])
    if name == "zuko_maf":  # 5 affine MADEs [64, 64], orders alternating (reversals)
        return zuko.flows.MAF(features=2, transforms=5, hidden_features=[64, 64])
    if name == "zuko_nsf":  # 6 RQ splines, 8 bins, MLP 64x64; in 2-D, autoregressive with
        # 2 passes is a coupling whose first dimension also gets a spline (of no input)
        return zuko.flows.NSF(features=2, transforms=6, bins=8, hidden_features=[64, 64],
                              passes=2)
    raise ValueError(name)


def measure(name, steps, warmup, sample_n, sample_reps, data_path, threads):
    import torch

    base_rss = rss_mb()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batches = torch.from_numpy(load_batches(data_path, warmup + steps, 256))
    flow = make_flow(name)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

    def step(x):
        loss = -flow().log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for i in range(warmup):
        step(batches[i])
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(batches[i])
    loss = loss.item()
    train_s = time.perf_counter() - start

    with torch.no_grad():
        flow().sample((sample_n,))  # warm-up
        start = time.perf_counter()
        for _ in range(sample_reps):
            s = flow().sample((sample_n,))
        sample_s = time.perf_counter() - start
    assert s.shape == (sample_n, 2)
    return {
        "config": name,
        "framework": f"torch {torch.__version__} + zuko",
        "examples_per_s": steps * 256 / train_s,
        "samples_per_s": sample_reps * sample_n / sample_s,
        "final_loss": loss,
        "rss_after_import_mb": base_rss,
        "peak_rss_mb": peak_rss_mb(),
        "threads": threads,
    }


def run_worker(name, args, threads):
    """Measures `name` with `threads` torch threads in a fresh process: the JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--sample-n", str(args.sample_n),
           "--sample-reps", str(args.sample_reps), "--data", args.data,
           "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--sample-n", type=int, default=10000)
    parser.add_argument("--sample-reps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="2,1",
                        help="torch threads, a comma list (one value with --worker)")
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.warmup, args.sample_n,
                                 args.sample_reps, args.data, int(args.threads))))
        return
    threads = [int(t) for t in args.threads.split(",")]
    runs = {(name, t): [] for t in threads for name in CONFIGS}
    for _ in range(args.repeats):
        for name, t in runs:
            runs[name, t].append(run_worker(name, args, t))
    rows = []
    print(f"zuko on torch CPU, batch 256, {args.steps} steps, "
          f"median of {args.repeats}")
    print(f"{'config':<14} {'threads':>7} {'examples/s':>11} {'samples/s':>11} {'peak RSS MB':>12}")
    for (name, t), rs in runs.items():
        row = {"config": name, "threads": t, "repeats": rs}
        for key in ("examples_per_s", "samples_per_s", "peak_rss_mb", "rss_after_import_mb"):
            row[key] = statistics.median(r[key] for r in rs)
        rows.append(row)
        print(f"{name:<14} {t:>7} {row['examples_per_s']:>11.0f} {row['samples_per_s']:>11.0f} "
              f"{row['peak_rss_mb']:>12.0f}")
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/flows_speed_torch.json", "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
