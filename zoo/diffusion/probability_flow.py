"""The likelihood of a diffusion model's probability-flow ODE.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR 2021,
https://arxiv.org/abs/2011.13456 (eq. 13 and App. D).
"""

import math

import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.validation import on_batches


class ProbabilityFlow:
    """A mixin of :class:`~zoo.diffusion.base.DiffusionModel`:
    :meth:`probability_flow_nll`, the NLL of the deterministic ODE whose marginals
    are the diffusion's, in continuous time over the model's discrete schedule
    (``timesteps``, ``table``), with the noise its network predicts
    (``network_output``, ``split_output``, the EMA weights).
    """

    # Whether the diffusion is over the data alone (False: over latents, or
    # given another input), so that its probability flow is a density of the data.
    probability_flow_of_data = True

    @property
    def has_probability_flow(self):
        """Whether :meth:`probability_flow_nll` gives ``-log p(x)`` without labels: a
        diffusion over the data alone, unconditional or trained with label dropout
        (the null label's score); ``zoo evaluate`` reports it then."""
        return self.probability_flow_of_data and (not self.num_classes or self.guided)

    def continuous_log_alphas_cumprod(self, s):
        """``log abar(s)`` for continuous time ``s`` in ``[0, 1]``: linear between
        ``log abar = 0`` at ``s = 0`` and the schedule's ``log abar_t`` at ``s = (t +
        1) / T``, so that the discrete process is this one at those times."""
        table = tf.constant(np.append(0.0, np.log(self.table["alphas_cumprod"])), tf.float32)
        position = tf.clip_by_value(tf.cast(s, tf.float32) * self.timesteps, 0.0,
                                    float(self.timesteps))
        low = tf.minimum(tf.cast(tf.floor(position), tf.int32), self.timesteps - 1)
        frac = position - tf.cast(low, tf.float32)
        return (1.0 - frac) * tf.gather(table, low) + frac * tf.gather(table, low + 1)

    def flow_eps(self, x, s, labels=None):
        """The predicted noise at continuous time `s` (scalar), the network seeing
        the fractional timestep ``s T - 1``."""
        t = tf.fill(tf.shape(x)[:1], tf.cast(s, tf.float32) * self.timesteps - 1.0)
        return self.split_output(self.network_output(x, t, labels, averaged=True))[0]

    def flow_derivative(self, s, x, labels=None):
        """The probability-flow ODE of the variance-preserving SDE (Song et al.
        2021, eq. 13 and App. D): ``dx/ds = -beta(s) / 2 (x + score)``, ``score =
        -eps / sqrt(1 - abar(s))``, ``beta(s) = -d log abar / ds``."""
        log_abar = self.continuous_log_alphas_cumprod(s)
        h = 1e-3
        beta = -(self.continuous_log_alphas_cumprod(tf.minimum(s + h, 1.0))
                 - self.continuous_log_alphas_cumprod(tf.maximum(s - h, 0.0))) / (
            tf.minimum(s + h, 1.0) - tf.maximum(s - h, 0.0))
        sigma = tf.sqrt(1.0 - tf.exp(log_abar))
        return -0.5 * beta * (x - self.flow_eps(x, s, labels) / sigma)

    def flow_solve(self, flat, probe, num_steps, labels=None, trace="exact"):
        """(the state at s = 1, the integral of the divergence) of the probability
        flow from `flat` (batch, D) at s = 1 / T over `num_steps` RK4 steps (a
        scalar, or a tensor: one ``tf.while_loop``): exact trace, or Hutchinson's
        with the Rademacher `probe` (batch, D)."""
        from zoo.flows.ffjord import fixed_step_solve, trace_jacobian_exact_2d

        def ode(s, state):
            z = tf.reshape(state, tf.concat([tf.shape(state)[:1], self.data_shape], 0))
            return tf.reshape(self.flow_derivative(s, z, labels), tf.shape(state))

        if trace == "exact":
            augmented = trace_jacobian_exact_2d(ode, None, tf.float32)
        else:
            def augmented(s, state_and_log_det):
                state, _ = state_and_log_det
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(state)
                    derivative = ode(s, state)
                    product = tf.reduce_sum(derivative * probe)
                return derivative, tape.gradient(product, state) * probe

        def augmented_summed(s, state_and_log_det):
            derivative, diag = augmented(s, state_and_log_det)
            return derivative, tf.reduce_sum(diag, axis=-1)

        result = fixed_step_solve(augmented_summed, 1.0 / self.timesteps,
                                  (flat, tf.zeros(tf.shape(flat)[:1])), [1.0],
                                  num_steps=num_steps, unrolled=False)
        return result.states[0][0], result.states[1][0]

    def flow_nll(self, flat, probe, num_steps, labels=None, trace="exact"):
        """-log p of the (scaled, dequantized) `flat` (batch, D) under the
        probability flow: the prior's NLL at s = 1 minus the divergence's integral."""
        end, divergence = self.flow_solve(flat, probe, num_steps, labels, trace)
        prior = 0.5 * tf.reduce_sum(tf.square(end), axis=-1) + \
            0.5 * self.event_size * math.log(2 * math.pi)
        return prior - divergence

    @on_batches("data")
    def probability_flow_nll(self, x, seed=None, num_steps=100, trace=None, labels=None):
        """The NLL (nats per example) of the model's probability-flow ODE (Song,
        Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative
        Modeling through Stochastic Differential Equations", ICLR 2021,
        https://arxiv.org/abs/2011.13456): the data, taken at ``s = 1 / T`` (the
        first timestep's noise level), flow to ``s = 1``, where the prior ``N(0,
        I)`` gives their density, and ``log p`` changes by the integral of the
        divergence; both solved with `num_steps` RK4 steps
        (:func:`zoo.flows.ffjord.fixed_step_solve`, its steps one
        ``tf.while_loop``, compiled once per model and trace when called eagerly).
        `trace`: ``"exact"`` (one backward pass per dimension: vectors) or
        ``"hutchinson"`` (one Rademacher probe per example from `seed`: images);
        None picks by the data.

        Images: raw levels are dequantized uniformly from `seed` and scaled to
        the model's [-1, 1] levels, the Jacobian of that scaling counted, so the
        number is the dequantized data's NLL as the flows count it (an upper
        bound on the discrete NLL, in expectation over the noise).
        """
        where = f"{self.name}.probability_flow_nll"
        if not self.probability_flow_of_data:
            raise ValueError(f"{where}: this model's diffusion is not over the data alone "
                             f"(latents, or given another input): no probability flow of "
                             f"the data")
        if self.num_classes and not self.guided and labels is None:
            raise ValueError(f"{where}: expected labels: a conditional model trained without "
                             f"label dropout has no unconditional score")
        x = self.validate_inputs(x, "probability_flow_nll")
        labels = self.check_labels(labels, x, "probability_flow_nll") \
            if labels is not None else None
        num_steps = validation.check_number(num_steps, "num_steps", where, "int32", above=0)
        seed = self.stateless_seed(seed)
        trace = self.flow_trace(trace)
        if trace not in ("exact", "hutchinson"):
            raise ValueError(f"{where}: expected trace 'exact' or 'hutchinson', got {trace!r}")
        y = self.scale(tf.convert_to_tensor(x, tf.float32))
        jacobian = 0.0
        if self.num_levels is not None:
            width = 2.0 / (self.num_levels - 1)
            u = tf.random.stateless_uniform(tf.shape(y), seed)
            y = y + (u - 0.5) * width
            jacobian = self.event_size * math.log(width)
        flat = tf.reshape(y, [-1, self.event_size])
        probe = tf.sign(tf.random.stateless_uniform(
            tf.shape(flat), tf.random.experimental.stateless_fold_in(seed, 1)) - 0.5)
        tensors = [flat, probe, tf.convert_to_tensor(num_steps, tf.int32)]
        if labels is not None:
            tensors.append(tf.convert_to_tensor(labels, tf.int32))
        nll = self.run_compiled(
            f"probability_flow-{trace}" + ("-labels" if labels is not None else ""),
            lambda *args: self.flow_nll(*args, trace=trace), *tensors)
        return nll - jacobian

    def evaluation_defaults(self):
        """Adds the probability flow's examples and RK4 steps (``zoo evaluate
        --probability-flow-examples``, ``--probability-flow-steps``; 0 examples:
        none): the whole split on vectors, the first 16 images on images (a
        Hutchinson pass of 100 steps costs 400 U-Net calls and their gradients)."""
        defaults = super().evaluation_defaults()
        if self.has_probability_flow:
            defaults.update(probability_flow_examples=None if self.num_levels is None else 16,
                            probability_flow_steps=100)
        return defaults

    def probability_flow_entry(self, data, settings, seed=0, batch_size=64):
        """``{"probability_flow": ...}`` of ``extra_metrics`` (:meth:`probability_flow_metrics`
        with the evaluation `settings`), or {} for a model without one or 0 examples."""
        if not self.has_probability_flow or settings["probability_flow_examples"] == 0:
            return {}
        return {"probability_flow": self.probability_flow_metrics(
            data, settings["probability_flow_examples"], settings["probability_flow_steps"],
            seed=seed, batch_size=batch_size)}

    def flow_trace(self, trace=None):
        """`trace`, or the default of the data: exact on vectors, Hutchinson's on
        images."""
        return trace or ("hutchinson" if self.num_levels is not None else "exact")

    def probability_flow_metrics(self, data, max_examples=None, num_steps=100, seed=0,
                                 batch_size=64):
        """``metrics.json``'s ``probability_flow``: the mean
        :meth:`probability_flow_nll` (no labels) over the first `max_examples`
        examples of the batched `data` (None: all), in batches of `batch_size`,
        batch i with the seed ``[seed, i]`` (its dequantization and probe), with
        `num_steps` RK4 steps; shown as a progress stage (:mod:`zoo.progress`).

        Returns:
            ``{"nll_nats", "bits_per_dim", "num_examples", "num_steps", "solver",
            "trace", "dequantization", "what"}``.
        Raises:
            ValueError: `max_examples` is not an int >= 1 or None, or `num_steps`
                not an int >= 1.
            NonFiniteMetricError: the mean is NaN or Inf.
        """
        from zoo import progress
        from zoo.metrics.latent import examples
        from zoo.metrics.likelihood import NonFiniteMetricError, bits_per_dim

        where = f"{self.name}: probability flow"
        validation.check_int(max_examples, "probability_flow_examples", where, none=True)
        num_steps = validation.check_int(num_steps, "probability_flow_steps", where)
        x = examples(data, max_examples)
        trace = self.flow_trace()
        total = 0.0
        with progress.stage(f"probability flow ({num_steps} RK4 steps, {trace} trace)",
                            len(x), "examples") as stage:
            for i, start in enumerate(range(0, len(x), batch_size)):
                batch = x[start:start + batch_size]
                total += float(tf.reduce_sum(self.probability_flow_nll(
                    batch, seed=tf.constant([seed, i], tf.int32), num_steps=int(num_steps))))
                stage.update(len(batch))
        mean = total / len(x)
        if not math.isfinite(mean):
            raise NonFiniteMetricError(f"{where}: the mean NLL over {len(x)} examples is "
                                       f"{mean}")
        images = self.num_levels is not None
        return {
            "nll_nats": mean,
            "bits_per_dim": bits_per_dim(mean, self.event_size),
            "num_examples": int(len(x)),
            "num_steps": int(num_steps),
            "solver": "rk4",
            "trace": trace + ("" if trace == "exact" else " (one Rademacher probe per example)"),
            "dequantization": "uniform over each level, as the flows count it (an upper bound "
                              "on the discrete NLL in expectation)" if images else "none",
            "what": "the NLL of the probability-flow ODE (Song et al. 2021) from the first "
                    "timestep's noise level, the EMA weights"
                    + (", the null label" if self.num_classes else ""),
        }
