"""Every VAE of the zoo on the same data and budget, side by side.

    python bench/vae_variants.py                                     # digits, both observations
    python bench/vae_variants.py --datasets fashion_mnist --steps 600 --iwae-examples 500
    python bench/vae_variants.py --models vae iwae vamp_vae --observations bernoulli

Trains each model (its preset for the dataset, ``--set``-style overrides in
`--observations`: "logistic" models the 256- or 17-level data, "bernoulli" its
dynamic binarization) for `--steps` optimizer steps at the preset's batch size and
learning rate, from seed 0 (VAE-GAN, which has no pixel model, under the first
observation only), into ``RUNS_DIR/MODEL-DATASET-OBSERVATION`` (resumed
if there), then evaluates it with ``zoo evaluate``'s code on the test split:
the negative ELBO and the importance-weighted bound (k = `--iwae-samples` over the
first `--iwae-examples` test examples) in nats and bits/dim, FID of
`--num-samples` samples in the zoo's feature network, and active units. Prints
one Markdown table per dataset and observation and writes them to
RUNS_DIR/vae-variants.md. Wall time is the training's (not the evaluation's).
"""

import argparse
import math
import os
import time

from zoo import progress, registry, runs, training

MODELS = ("vae", "beta_vae", "iwae", "mixture_vae", "vamp_vae", "planar_vae", "iaf_vae",
          "ladder_vae", "gumbel_vae", "vq_vae", "aae", "vae_gan")


def cell(value, fmt="{:.2f}"):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else fmt.format(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=["digits"])
    parser.add_argument("--observations", nargs="*", default=["logistic", "bernoulli"])
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--iwae-samples", type=int, default=1000)
    parser.add_argument("--iwae-examples", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--runs-dir", default="runs/vae_variants")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    progress.configure(quiet=args.quiet)

    known = {e.name for e in registry.list_models()}
    models = [m for m in args.models if m in known]
    skipped = sorted(set(args.models) - known)
    lines = []
    for dataset in args.datasets:
        for observation in args.observations:
            rows = []
            for name in progress.track(models, f"vae_variants: {dataset}, {observation}",
                                       len(models), "runs"):
                entry = registry.entry(name)
                overrides = {"observation": observation}
                if "observation" in entry.cls.fixed_parameters:  # VAE-GAN: no pixel model
                    if observation != args.observations[0]:
                        continue
                    overrides = {}
                out = os.path.join(args.runs_dir, f"{name}-{dataset}-{observation}")
                resume = os.path.isfile(os.path.join(out, runs.RUN_FILE))
                batch = entry.training_for(dataset)["batch_size"]
                per_epoch = min(args.steps, 500)
                began = time.time()
                try:
                    training.train(name, dataset, out, epochs=math.ceil(args.steps / per_epoch),
                                   steps_per_epoch=per_epoch, batch_size=batch,
                                   overrides=overrides, resume=resume,
                                   verbose=0)
                except (runs.RunError, ValueError) as e:
                    rows.append((name, None, None, f"failed: {e}"))
                    continue
                seconds = time.time() - began
                _, metrics = runs.evaluate_run(out, num_samples=args.num_samples,
                                               iwae_samples=args.iwae_samples,
                                               iwae_examples=args.iwae_examples)
                rows.append((name, metrics, seconds, None))
                print(name, dataset, observation, f"{seconds:.0f}s",
                      metrics.get("nll_nats"), metrics.get("importance_weighted", {}).get(
                          "nll_nats"), flush=True)
            lines += [f"### {dataset}, {observation} observation, {args.steps} steps", "",
                      "| model | -ELBO nats | -ELBO bits/dim | -IWAE nats | -IWAE bits/dim "
                      "| FID | active units | train s |",
                      "|---|---|---|---|---|---|---|---|"]
            for name, metrics, seconds, failure in rows:
                if failure:
                    lines.append(f"| {name} | {failure} |||||||")
                    continue
                iwae = metrics.get("importance_weighted", {})
                units = metrics.get("active_units")
                active = "-" if units is None else f"{units['active']}/{units['dimensions']}"
                quality = metrics.get("sample_quality", {})
                lines.append(
                    f"| {name} | {cell(metrics.get('nll_nats'))} | "
                    f"{cell(metrics.get('bits_per_dim'), '{:.3f}')} | "
                    f"{cell(iwae.get('nll_nats'))} | {cell(iwae.get('bits_per_dim'), '{:.3f}')} "
                    f"| {cell(quality.get('fid'), '{:.1f}')} | {active} | {seconds:.0f} |")
            lines.append("")
    if skipped:
        lines.append(f"Not registered (skipped): {', '.join(skipped)}")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "vae-variants.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
