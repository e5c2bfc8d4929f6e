"""Pictures of controllable generation from trained GAN runs.

    python bench/gan_pictures.py --interpolate runs/dcgan-digits \\
        --style runs/stylegan-digits --out docs/images

Writes ``interpolation.png`` (linear, top, and spherical, bottom, from seed 3's
latent to seed 9's; every GAN), ``truncation.png`` (a StyleGAN's samples of four
seeds, one per row, at psi = 0, 0.25, 0.5, 0.75, 1 across) and ``mixing.png``
(seed 1's sample with seed 2's style from each crossover layer on, from 0, all
of seed 2's style, to all its layers, seed 1's image).
"""

import argparse
import os

import numpy as np

from zoo import plotting, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpolate", help="a GAN run folder")
    parser.add_argument("--style", help="a stylegan run folder")
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    written = []
    if args.interpolate:
        model, _, _ = runs.load_checkpoint(args.interpolate)
        strips = [np.asarray(model.interpolate(3, 9, 8, spherical=s)) for s in (False, True)]
        written.append(plotting.image_grid(np.concatenate(strips), model.num_levels,
                                           os.path.join(args.out, "interpolation.png"), cols=8))
    if args.style:
        model, _, _ = runs.load_checkpoint(args.style)
        psis = [0.0, 0.25, 0.5, 0.75, 1.0]
        rows = [np.asarray(model.sample(1, seed=s, truncation=p))[0]
                for s in range(4) for p in psis]
        written.append(plotting.image_grid(np.stack(rows), model.num_levels,
                                           os.path.join(args.out, "truncation.png"),
                                           cols=len(psis)))
        layers = model.num_styles
        mixed = [np.asarray(model.sample(1, seed=1, mix_seed=2, crossover=c))[0]
                 for c in range(layers + 1)]
        written.append(plotting.image_grid(np.stack(mixed), model.num_levels,
                                           os.path.join(args.out, "mixing.png"),
                                           cols=layers + 1))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
