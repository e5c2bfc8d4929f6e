"""A trained diffusion model's bound over all T terms, where it comes from, and what
iDDPM's importance sampler of timesteps (Nichol & Dhariwal 2021, eq. 18) would
draw from those terms.

    python bench/diffusion_bound_terms.py --run runs/iddpm-digits
    python bench/diffusion_bound_terms.py --run runs/iddpm-moons --examples 1000

The run's newest checkpoint gives every term ``L_t`` (nats) of the bound on the
first ``--examples`` test examples (one noise draw each, seed 0): the bound in
bits/dim (the exact sum of its T terms, with the standard error over the
examples), its first and last terms, and on images the part of it in the
timesteps whose noise ``sqrt(1 - abar_t)`` is below half a level's bin (``1 /
(L - 1)`` in [-1, 1]). The sampler's
``p_t`` is ``sqrt(E[L_t^2])`` normalised, mixed with 0.001 of the uniform (the
paper's code, ``LossSecondMomentResampler``, once its history is full). Prints
the mass ``p_t`` puts on the first timesteps, the weights ``1 / (T p_t)`` an
example drawn at t gets, and ``E_p[w^2] = sum_t 1 / (T^2 p_t)``: how many times
the variance of a loss that is flat in t (as ``L_simple`` nearly is) grows when
its t is drawn by ``p_t`` and weighted so (1: uniform). The paper's code draws
``L_hybrid``'s t uniformly and uses this sampler for ``L_vlb`` alone.
"""

import argparse
import json

import numpy as np

from zoo import datasets, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a diffusion model's run folder")
    parser.add_argument("--examples", type=int, default=297,
                        help="test examples the terms average over (default 297)")
    parser.add_argument("--save", help="a .npy file for the per-example bounds (nats), to "
                                       "pair two runs' (the same examples and noise)")
    args = parser.parse_args()
    run = runs.read_run(args.run)
    model, _ = runs.load_newest(args.run)
    model.bound_timesteps = 0  # every one of the T terms
    x = np.concatenate(list(datasets.load(run["dataset"], "test", 100,
                                          take=args.examples).as_numpy_iterator()))
    found = model.bound_terms(x, seed=0)
    terms, prior = found["terms"].numpy(), found["prior"].numpy()  # (examples, T), nats
    T = terms.shape[1]
    bound = terms.sum(1) + prior
    bits = 1.0 / (np.prod(x.shape[1:]) * np.log(2.0))
    sigma = np.sqrt(1.0 - model.table["alphas_cumprod"])
    weights = np.sqrt(np.mean(np.square(terms), axis=0))
    p = 0.999 * weights / weights.sum() + 0.001 / T
    w = 1.0 / (T * p)
    result = {
        "run": args.run, "examples": len(x), "T": T,
        "bound_bits_per_dim": float(bound.mean() * bits),
        "standard_error_bits_per_dim": float(bound.std(ddof=1) / np.sqrt(len(x)) * bits),
        "mean_term_nats_first": {str(k): [round(float(v), 3) for v in terms[:, :k].mean(0)]
                                 for k in (5,)},
        "last_term_nats": float(terms[:, -1].mean()),
        **({"bits_per_dim_where_noise_below_half_a_level": float(
            terms[:, sigma < 1.0 / (model.num_levels - 1)].sum(1).mean() * bits),
            "timesteps_where_noise_below_half_a_level": int(
                np.sum(sigma < 1.0 / (model.num_levels - 1)))}
           if model.num_levels else {}),
        "p_first": {str(k): float(p[:k].sum()) for k in (1, 10, 100)},
        "weight_min": float(w.min()), "weight_median": float(np.median(w)),
        "weight_max": float(w.max()),
        "share_of_t_with_weight_above_10": float(np.mean(w > 10)),
        "variance_factor_flat_loss": float(np.sum(1.0 / (T * T * p))),
    }
    print(json.dumps(result, indent=1))
    if args.save:
        np.save(args.save, bound)


if __name__ == "__main__":
    main()
