"""PixelVAE's point in kind (Gulrajani et al. 2017, Sec. 4.1): the deeper its
autoregressive decoder, the less of the information goes into the latents.

    python bench/pixel_vae_depth.py                          # digits, depths 1 2 4 8
    python bench/pixel_vae_depth.py --depths 1 4 --steps 600

Trains ``pixel_vae`` at its preset for `--dataset`, with ``decoder_layers`` set to
each of `--depths`, for `--steps` optimizer steps at the preset's batch size and
learning rate, from seed 0, into ``RUNS_DIR/pixel_vae-DATASET-LAYERS`` (resumed if
there), and the Gaussian ``vae`` (a decoder without autoregression) beside them;
then evaluates each with ``zoo evaluate``'s code on the test split: the negative
ELBO, its KL term, the importance-weighted bound (k = `--iwae-samples` over the
first `--iwae-examples` test examples), the active units, and FID of
`--num-samples` samples. Prints one Markdown table and writes it to
RUNS_DIR/pixel-vae-depth.md. Wall time is the training's.
"""

import argparse
import math
import os
import time

from zoo import registry, runs, training


def cell(value, fmt="{:.2f}"):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else fmt.format(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--depths", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--iwae-samples", type=int, default=100)
    parser.add_argument("--iwae-examples", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--runs-dir", default="runs/pixel_vae_depth")
    args = parser.parse_args()

    cases = [("vae", None)] + [("pixel_vae", d) for d in args.depths]
    rows = []
    for name, depth in cases:
        entry = registry.entry(name)
        overrides = {} if depth is None else {"decoder_layers": depth}
        suffix = "" if depth is None else f"-{depth}"
        out = os.path.join(args.runs_dir, f"{name}-{args.dataset}{suffix}")
        resume = os.path.isfile(os.path.join(out, runs.RUN_FILE))
        per_epoch = min(args.steps, 500)
        began = time.time()
        training.train(name, args.dataset, out, epochs=math.ceil(args.steps / per_epoch),
                       steps_per_epoch=per_epoch,
                       batch_size=entry.training_for(args.dataset)["batch_size"],
                       overrides=overrides, resume=resume, verbose=0)
        seconds = time.time() - began
        _, metrics = runs.evaluate_run(out, num_samples=args.num_samples,
                                       iwae_samples=args.iwae_samples,
                                       iwae_examples=args.iwae_examples)
        rows.append((name, depth, metrics, seconds))
        print(name, depth, f"{seconds:.0f}s", metrics["nll_nats"],
              metrics["loss_terms"]["kl"], flush=True)
    lines = [f"### {args.dataset}, {args.steps} steps", "",
             "| model | decoder_layers | -ELBO nats | KL nats | reconstruction nats | -IWAE nats "
             "| active units | FID | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, depth, metrics, seconds in rows:
        terms = metrics["loss_terms"]
        units = metrics["active_units"]
        lines.append(
            f"| {name} | {'-' if depth is None else depth} | {cell(metrics['nll_nats'])} | "
            f"{cell(terms['kl'])} | {cell(terms['reconstruction'])} | "
            f"{cell(metrics['importance_weighted']['nll_nats'])} | "
            f"{units['active']}/{units['dimensions']} | "
            f"{cell(metrics['sample_quality'].get('fid'), '{:.1f}')} | {seconds:.0f} |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "pixel-vae-depth.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
