"""FID against sampling steps for a diffusion model on digits: DDPM's ancestral
sampler (eta = 1) against DDIM (eta = 0), and classifier-free guidance weights.

    python bench/diffusion_steps.py                       # trains ddpm (preset), then measures
    python bench/diffusion_steps.py --run runs/ddpm-digits --conditional-run runs/ddpm-digits-c
    python bench/diffusion_steps.py --epochs 20 --num-samples 500 --budget-minutes 20

Models: a ``zoo train`` run's last good checkpoint (``--run``; ``--conditional-run``
for a class-conditional one trained with label dropout, e.g. ``--set
num_classes=10``), or else the preset trained here from seed 0 for ``--epochs``
(0: no conditional model). Each row draws ``--num-samples`` samples (seed 0)
with one sampler setting and scores them against the test split in the zoo's
digits features (:func:`zoo.metrics.sample_quality.evaluate_images`: FID,
precision, recall). Settings: each of ``--steps`` with eta 1 (ancestral) and
eta 0 (DDIM), then each ``--guidance`` weight with DDIM at ``--guidance-steps``
steps on the conditional model. ``--budget-minutes`` bounds the measuring: a
setting not started in time is listed as not measured.

Writes ``OUT/table.md``, ``OUT/results.json`` and ``OUT/fid_steps.png`` (FID
against steps on a log axis, one line per sampler); the models trained here are
kept in ``OUT`` (``model.keras``, ``conditional.keras``) and reused by a rerun
with the same epochs. The paper's ordering to
check in kind: Song et al. 2021 ("Denoising Diffusion Implicit Models", Table 1),
at few steps DDIM is far better than the ancestral sampler, and the two meet
at 1000.
"""

import argparse
import json
import math
import os
import time

import keras
import numpy as np
from PIL import Image, ImageDraw

import zoo
from zoo import datasets, runs
from zoo.metrics import features, sample_quality

DATASET = "digits"


def train(name, epochs, path, **overrides):
    """The preset of `name` on digits trained from seed 0 for `epochs`, saved to
    `path`; or loaded from it if it holds one of that training."""
    record = path + ".json"
    if os.path.isfile(path) and os.path.isfile(record):
        with open(record) as f:
            origin = json.load(f)
        if origin.get("epochs") == epochs:
            return runs.load_model_file(path), origin
    training = zoo.registry.entry(name).training_for(DATASET)
    keras.utils.set_random_seed(0)
    model = zoo.get(name, dataset=DATASET, **overrides)
    model.compile(optimizer=model.default_optimizer(training["learning_rate"]))
    data = datasets.load(DATASET, "train", training["batch_size"],
                         with_labels=bool(overrides.get("num_classes")))
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    origin = {"model": name, **overrides, "epochs": epochs,
              "steps": int(model.optimizer.iterations.numpy()),
              "train_minutes": round((time.perf_counter() - start) / 60, 1)}
    model.save(path)
    with open(record, "w") as f:
        json.dump(origin, f)
    return model, origin


def load(run):
    model, _, checkpoint = runs.load_checkpoint(run)
    return model, {"run": run, "epoch": checkpoint.epoch}


def measure(model, real, network, num_samples, options):
    quality = sample_quality.evaluate_images(model, real, network, num_samples, seed=0,
                                             options=options)
    return {k: quality[k] for k in ("fid", "precision", "recall", "sampling_seconds")
            if k in quality}


def plot(rows, path, size=(520, 360), margin=60):
    """FID against steps (log axis), one line per sampler, drawn with PIL."""
    lines = {}
    for row in rows:
        if row.get("fid") is not None and row["guidance"] is None:
            lines.setdefault(row["sampler"], []).append((row["steps"], row["fid"]))
    if not lines:
        return None
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    steps = [s for points in lines.values() for s, _ in points]
    fids = [f for points in lines.values() for _, f in points]
    x_low, x_high = math.log10(min(steps)), math.log10(max(steps))
    y_high = max(fids) * 1.1
    width, height = size[0] - 2 * margin, size[1] - 2 * margin

    def at(step, fid):
        x = margin + width * (math.log10(step) - x_low) / max(x_high - x_low, 1e-9)
        return x, margin + height * (1 - fid / y_high)

    draw.rectangle([margin, margin, margin + width, margin + height], outline="black")
    for step in sorted(set(steps)):
        x, _ = at(step, 0)
        draw.text((x - 8, margin + height + 6), str(step), fill="black")
    for i in range(5):
        fid = y_high * i / 4
        _, y = at(min(steps), fid)
        draw.text((8, y - 6), f"{fid:.1f}", fill="black")
    draw.text((margin + width // 2 - 40, size[1] - 22), "sampling steps (log)", fill="black")
    draw.text((8, 12), f"FID ({DATASET}, zoo features)", fill="black")
    colours = {"ancestral (eta=1)": (200, 40, 40), "DDIM (eta=0)": (40, 80, 200)}
    for k, (sampler, points) in enumerate(sorted(lines.items())):
        colour = colours.get(sampler, (0, 0, 0))
        xy = [at(s, f) for s, f in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((margin + width - 130, margin + 8 + 14 * k), sampler, fill=colour)
    image.save(path)
    return path


def table(rows, notes):
    lines = ["| model | sampler | steps | guidance | FID | precision | recall | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fid = "not measured (budget)" if r.get("fid") is None else f"{r['fid']:.2f}"
        cells = [r["model"], r["sampler"], str(r["steps"]),
                 "-" if r["guidance"] is None else f"{r['guidance']:g}", fid,
                 *(f"{r[k]:.3f}" if r.get(k) is not None else "-"
                   for k in ("precision", "recall")),
                 f"{r['sampling_seconds']:.0f}" if r.get("sampling_seconds") is not None
                 else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + notes) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ddpm", help="diffusion model to train (no --run)")
    parser.add_argument("--run", help="a trained run of a diffusion model on digits")
    parser.add_argument("--conditional-run", help="a class-conditional run (label dropout)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the models trained here (default: the preset's)")
    parser.add_argument("--conditional-epochs", type=int, default=None,
                        help="epochs of the conditional model trained here (default: "
                             "--epochs; 0: none)")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--steps", default="10,20,50,100,1000")
    parser.add_argument("--guidance", default="0,1,3")
    parser.add_argument("--guidance-steps", type=int, default=50)
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="start no setting after this many minutes of measuring")
    parser.add_argument("--out", default="bench/results/diffusion_steps")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s]
    weights = [float(w) for w in args.guidance.split(",") if w]
    os.makedirs(args.out, exist_ok=True)

    epochs = args.epochs or zoo.registry.entry(args.model).training_for(DATASET)["epochs"]
    if args.run:
        model, origin = load(args.run)
    else:
        model, origin = train(args.model, epochs, os.path.join(args.out, "model.keras"))
    conditional, conditional_origin = None, None
    conditional_epochs = epochs if args.conditional_epochs is None else args.conditional_epochs
    if args.conditional_run:
        conditional, conditional_origin = load(args.conditional_run)
    elif weights and conditional_epochs:
        conditional, conditional_origin = train(
            args.model, conditional_epochs, os.path.join(args.out, "conditional.keras"),
            num_classes=10)

    real, _ = datasets.arrays(DATASET, "test")
    network = features.get(None, DATASET)
    # Fewest steps first (both samplers at each count, the guidance weights among
    # them), so that a budget cuts the longest.
    settings = [(model, sampler, s, None, {"num_steps": s, "eta": eta}) for s in steps
                for sampler, eta in (("ancestral (eta=1)", 1.0), ("DDIM (eta=0)", 0.0))]
    if conditional is not None:
        settings += [(conditional, "DDIM (eta=0)", args.guidance_steps, w,
                      {"num_steps": args.guidance_steps, "eta": 0.0, "guidance": w})
                     for w in weights]
    settings.sort(key=lambda setting: setting[2])  # (stable)
    start = time.perf_counter()
    rows = []
    for m, sampler, s, w, options in settings:
        row = {"model": m.registry_name + ("" if w is None else " (num_classes=10)"),
               "sampler": sampler, "steps": s, "guidance": w}
        if args.budget_minutes is None or time.perf_counter() - start < 60 * args.budget_minutes:
            row.update(measure(m, real, network, args.num_samples, options))
            print(json.dumps(row), flush=True)
        rows.append(row)

    notes = [f"Digits test split ({len(real)} images) against {args.num_samples} samples "
             f"(seed 0) per row, in the zoo's {network.name} features.",
             f"Model: {json.dumps(origin)}; conditional: {json.dumps(conditional_origin)}."]
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table(rows, notes))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "model": origin, "conditional": conditional_origin,
                   "num_samples": args.num_samples}, f, indent=1)
    picture = plot(rows, os.path.join(args.out, "fid_steps.png"))
    print(table(rows, notes))
    print("wrote", os.path.join(args.out, "table.md"), picture or "(no plot)")


if __name__ == "__main__":
    main()
