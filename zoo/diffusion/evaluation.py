"""What ``zoo evaluate`` reports of a diffusion model beside its NLL: how the
bound sums its terms, and the probability flow's NLL; a mixin of
:class:`~zoo.diffusion.base.DiffusionModel`."""


class DiffusionEvaluation:
    """``extra_metrics`` and ``evaluation_defaults`` of the diffusion family; uses
    the model's ``bound_strata`` and
    :class:`~zoo.diffusion.probability_flow.ProbabilityFlow`'s
    ``probability_flow_entry``."""

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``bound``: how ``nll`` sums the T terms (all, or a stratified estimate;
        the standard error that ``nll_nats`` comes with then includes the
        strata's draws); ``probability_flow``: the probability-flow ODE's NLL over
        ``probability_flow_examples`` examples (:meth:`probability_flow_metrics`;
        left out with 0)."""
        return {**self.bound_metrics(),
                **self.probability_flow_entry(data, settings, seed, batch_size)}

    def evaluation_defaults(self):
        """A stratified bound over images averages over the first 1,000 test
        examples (``zoo evaluate --nll-examples``): on Fashion-MNIST, 50 terms
        cost 50 U-Net calls per image, about 2.5 minutes per 1,000 images on two
        CPU cores."""
        defaults = super().evaluation_defaults()
        if self.num_levels is not None and self.bound_strata()[0] < self.timesteps:
            defaults["nll_examples"] = 1000
        return defaults

    def bound_metrics(self):
        """``{"bound": how nll sums the T terms}`` (:meth:`extra_metrics`)."""
        k, _ = self.bound_strata()
        return {"bound": {"timesteps": self.timesteps, "terms": k,
                          "estimate": "exact sum of all T terms" if k == self.timesteps
                          else f"stratified: one timestep in each of {k} strata"}}
