"""What ``zoo evaluate`` reports of a diffusion model beside its NLL: how the
bound sums its terms, and the probability flow's NLL; a mixin of
:class:`~zoo.diffusion.base.DiffusionModel`."""

import math

import numpy as np
import tensorflow as tf


class DiffusionEvaluation:
    """``extra_metrics`` of the diffusion family; uses the model's ``bound_strata``,
    ``nll`` and :class:`~zoo.diffusion.probability_flow.ProbabilityFlow`'s
    ``probability_flow_entry``."""

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``bound``: how ``nll`` sums the T terms (all, or a stratified estimate
        with the standard error of the mean over the examples ``nll_examples``
        averages); ``probability_flow``: the probability-flow ODE's NLL over
        ``probability_flow_examples`` examples (:meth:`probability_flow_metrics`;
        left out with 0)."""
        return {**self.bound_metrics(data, settings, seed),
                **self.probability_flow_entry(data, settings, seed, batch_size)}

    def bound_metrics(self, data, settings, seed=0):
        """``{"bound": how nll sums the T terms}`` (:meth:`extra_metrics`)."""
        k, _ = self.bound_strata()
        result = {"timesteps": self.timesteps, "terms": k,
                  "estimate": "exact sum of all T terms" if k == self.timesteps
                  else f"stratified: one timestep in each of {k} strata"}
        if k < self.timesteps:
            values = []
            nll = tf.function(lambda x, s: self.nll(x, seed=s))
            limit = settings["nll_examples"]
            for step, batch in enumerate(data):
                batch = batch[0] if isinstance(batch, (tuple, list)) else batch
                if limit is not None:
                    batch = batch[:limit - len(values)]
                values.extend(np.asarray(nll(batch, tf.constant([seed, step], tf.int32))))
                if limit is not None and len(values) >= limit:
                    break
            se = float(np.std(values, ddof=1) / math.sqrt(len(values)))
            result["standard_error_nats"] = se
            result["standard_error_bits_per_dim"] = se / (self.event_size * math.log(2.0))
        return {"bound": result}
