"""The diffusion family's sampler: the reverse process as one ``tf.while_loop``
(DDPM's ancestral steps and DDIM's, with classifier-free guidance and the
replacement method's completion and RePaint's), and DDIM's deterministic ODE
both ways (``encode``/``decode``).

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
https://arxiv.org/abs/2010.02502 (the sampler with ``eta`` and the deterministic
``encode``/``decode``); Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022,
https://arxiv.org/abs/2207.12598 (``guidance``); Song et al., "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021, App.
I.2 (completion by replacement); Lugmayr et al., "RePaint: Inpainting using
Denoising Diffusion Probabilistic Models", CVPR 2022,
https://arxiv.org/abs/2201.09865 (completion with resampling: ``resample``,
``jump``).
"""

import tensorflow as tf

from zoo import validation
from zoo.diffusion import schedules
from zoo.validation import on_batches


class DiffusionSampling:
    """A mixin of :class:`~zoo.diffusion.base.DiffusionModel`: its sampler.

    ``sample`` and ``complete`` (``draw_samples``, ``draw_completion``) run
    :meth:`run_sampler` from noise, with the options ``num_steps``, ``eta`` and
    ``guidance`` the model declares; ``encode`` and ``decode`` run DDIM's
    deterministic ODE (``eta = 0``, no clipping) from data to ``x_T`` and back.
    Completion is the replacement method: after every sampler step the kept
    values are replaced by a fresh draw of ``q(x_t | x_0)`` at that step's
    timestep; with the ``complete_options`` ``resample`` r > 1 and ``jump`` j,
    RePaint's: the loop goes back up j steps by the forward process after every
    j steps down, and redoes them, r times in all. It uses the model's schedule
    (``timesteps``, ``table``, ``const``), network (``network_output``,
    ``split_output``), scaling (``scale``, ``unscale``) and ``run_compiled``.
    """

    def check_options(self, options, where):
        if "guidance" in options and not self.guided:
            raise ValueError(f"{self.name}.{where}: guidance needs a class-conditional model "
                             f"trained with label dropout (num_classes > 0 and "
                             f"label_dropout > 0), got num_classes={self.num_classes} and "
                             f"label_dropout={self.label_dropout}")
        values = super().check_options(options, where)
        if where == "complete" and "jump" in values:  # (a longer jump leaves the schedule)
            values["jump"] = self.check_jump(values["jump"], values["num_steps"])
        return values

    def check_jump(self, jump, num_steps):
        """`jump` checked to be at most `num_steps`: eagerly, or by a graph assertion."""
        message = f"{self.name}.complete: expected jump <= num_steps"
        if not (validation.traced(jump) or validation.traced(num_steps)):
            return validation.check(jump, lambda v: v <= num_steps, None, message,
                                    got=lambda v: f"jump={v} and num_steps={num_steps}")
        both = tf.stack([tf.cast(jump, tf.int32), tf.cast(num_steps, tf.int32)])
        return validation.check(both, None, lambda v: v[0] <= v[1], message)[0]

    def guided_eps(self, x, t, labels, guidance):
        """The network's (eps, v) at ``(x, t)`` with the EMA weights, eps guided
        by `guidance` w: ``(1 + w) eps(x, y) - w eps(x, null)``."""
        output = self.network_output(x, t, labels, averaged=True)
        eps, v = self.split_output(output)
        if guidance is None:
            return eps, v

        def guided():
            null = self.network_output(x, t, tf.fill(tf.shape(t), self.num_classes),
                                       averaged=True)
            return (1.0 + guidance) * eps - guidance * self.split_output(null)[0]

        return tf.cond(guidance > 0, guided, lambda: eps), v

    def run_sampler(self, x, seed, num_steps, eta, guidance=None, labels=None, known=None,
                    clip=None, repaint=None):
        """The reverse process from `x` (at timestep T - 1) over `num_steps`
        respaced steps, as one ``tf.while_loop``: DDIM's update with `eta` (noise
        variance ``eta^2 sigma^2``, sigma^2 the model's variance of the respaced
        step; no noise at the last step), each step's noise from `seed` folded
        with the step. `known`: ``(x0, mask)`` of the replacement method.
        `repaint`: ``(resample, jump)``, with `known`: the steps follow RePaint's
        schedule (:func:`~zoo.diffusion.schedules.repaint_schedule`), in which a
        step up from respaced index k to k + 1 is a draw of ``q(x_{t_{k+1}} |
        x_{t_k})`` (``abar_{t_{k+1}} / abar_{t_k}``); the loop's i-th step draws
        its noise from `seed` folded with i, so ``resample = 1`` is the
        replacement method bit for bit."""
        clip = self.clips_x0 if clip is None else clip
        timesteps = schedules.respaced_timesteps(self.timesteps, num_steps)
        abar_all = tf.constant(self.table["alphas_cumprod"], tf.float64)
        eta = tf.cast(eta, tf.float32)
        count = tf.shape(timesteps)[0]

        def replace(x, t_index, step_seed):
            """`x` with the known values drawn fresh at respaced index `t_index`
            (-1: the data itself)."""
            known_x0, mask = known
            t = tf.fill(tf.shape(x)[:1], timesteps[tf.maximum(t_index, 0)])
            fresh = tf.random.stateless_normal(
                tf.shape(x), tf.random.experimental.stateless_fold_in(step_seed, 1))
            noised = schedules.q_sample(known_x0, t, fresh, self.const("alphas_cumprod"))
            noised = tf.where(t_index >= 0, noised, known_x0)
            return tf.where(mask > 0.5, noised, x)

        def down(i, t_index, x):
            """The sampler's step from respaced index `t_index` to the one below."""
            t = timesteps[t_index]
            abar = tf.gather(abar_all, t)
            abar_prev = tf.where(t_index > 0,
                                 tf.gather(abar_all, timesteps[tf.maximum(t_index - 1, 0)]),
                                 tf.constant(1.0, tf.float64))
            beta = 1.0 - abar / abar_prev
            small = (1.0 - abar_prev) / (1.0 - abar) * beta
            tt = tf.fill(tf.shape(x)[:1], t)
            eps, v = self.guided_eps(x, tt, labels, guidance)
            a, a_prev = tf.cast(abar, tf.float32), tf.cast(abar_prev, tf.float32)
            x0 = (x - tf.sqrt(1.0 - a) * eps) / tf.sqrt(a)
            if clip:
                x0 = tf.clip_by_value(x0, -1.0, 1.0)
                eps = (x - tf.sqrt(a) * x0) / tf.sqrt(1.0 - a)
            log_small = tf.cast(tf.math.log(tf.maximum(small, 1e-20)), tf.float32)
            if v is None:
                variance = tf.exp(log_small) * tf.ones_like(x)
            else:
                frac = (v + 1.0) / 2.0
                log_large = tf.cast(tf.math.log(tf.maximum(beta, 1e-20)), tf.float32)
                variance = tf.exp(frac * log_large + (1.0 - frac) * log_small)
            ddim = tf.square(eta) * tf.cast(small, tf.float32)
            mean = tf.sqrt(a_prev) * x0 + tf.sqrt(tf.maximum(1.0 - a_prev - ddim, 0.0)) * eps
            step_seed = tf.random.experimental.stateless_fold_in(seed, i)
            noise = tf.random.stateless_normal(tf.shape(x), step_seed)
            x = mean + tf.where(t_index > 0, eta, 0.0) * tf.sqrt(variance) * noise
            return x if known is None else replace(x, t_index - 1, step_seed)

        def up(i, t_index, x):
            """RePaint's step back up, from respaced index `t_index` to the one above."""
            ratio = tf.cast(tf.gather(abar_all, timesteps[t_index + 1])
                            / tf.gather(abar_all, timesteps[t_index]), tf.float32)
            step_seed = tf.random.experimental.stateless_fold_in(seed, i)
            noise = tf.random.stateless_normal(
                tf.shape(x), tf.random.experimental.stateless_fold_in(step_seed, 2))
            x = tf.sqrt(ratio) * x + tf.sqrt(1.0 - ratio) * noise
            return replace(x, t_index + 1, step_seed)

        if repaint is None or known is None:
            def body(i, x):
                return i + 1, down(i, count - 1 - i, x)

            _, x = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), x))
            return x
        schedule = schedules.repaint_schedule(count, *repaint)

        def jumping(i, x):
            t_index, t_next = schedule[i], schedule[i + 1]
            return i + 1, tf.cond(t_next < t_index, lambda: down(i, t_index, x),
                                  lambda: up(i, t_index, x))

        _, x = tf.while_loop(lambda i, _: i < tf.shape(schedule)[0] - 1, jumping,
                             (tf.constant(0), x))
        return x

    def sampler_labels(self, n, seed, options):
        """The classes of the samples (None for an unconditional model)."""
        if not self.num_classes:
            return None
        return self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, 2),
                                  options["label"])

    def draw_samples(self, n, seed, num_steps, eta, guidance=None, label=None):
        tensors = [tf.convert_to_tensor(n, tf.int32), tf.convert_to_tensor(seed, tf.int32),
                   tf.convert_to_tensor(num_steps, tf.int32), tf.convert_to_tensor(eta, tf.float32)]
        names = [name for name, value in (("guidance", guidance), ("label", label))
                 if value is not None]
        extra = [tf.convert_to_tensor(guidance, tf.float32)] if guidance is not None else []
        extra += [tf.convert_to_tensor(label, tf.int32)] if label is not None else []
        return self.run_compiled("sample-" + "-".join(names), lambda *args: self.sampled(
            *args[:4], **dict(zip(names, args[4:]))), *tensors, *extra)

    def sampled(self, n, seed, num_steps, eta, guidance=None, label=None):
        """:meth:`draw_samples`' computation."""
        options = {"label": label}
        labels = self.sampler_labels(n, seed, options)
        shape = tf.concat([tf.reshape(n, [1]), self.latent_shape], 0)
        x = tf.random.stateless_normal(shape, tf.random.experimental.stateless_fold_in(seed, 0))
        y = self.run_sampler(x, tf.random.experimental.stateless_fold_in(seed, 1), num_steps,
                             eta, guidance, labels)
        return self.unscale(y)

    def draw_completion(self, x, mask, seed, num_steps, eta, resample, jump, guidance=None,
                        label=None):
        tensors = [tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(mask, tf.float32),
                   tf.convert_to_tensor(seed, tf.int32), tf.convert_to_tensor(num_steps, tf.int32),
                   tf.convert_to_tensor(eta, tf.float32), tf.convert_to_tensor(resample, tf.int32),
                   tf.convert_to_tensor(jump, tf.int32)]
        names = [name for name, value in (("guidance", guidance), ("label", label))
                 if value is not None]
        extra = [tf.convert_to_tensor(guidance, tf.float32)] if guidance is not None else []
        extra += [tf.convert_to_tensor(label, tf.int32)] if label is not None else []
        return self.run_compiled("complete-" + "-".join(names), lambda *args: self.completed(
            *args[:7], **dict(zip(names, args[7:]))), *tensors, *extra)

    def completed(self, x, mask, seed, num_steps, eta, resample=1, jump=1, guidance=None,
                  label=None):
        """:meth:`draw_completion`'s computation."""
        n = tf.shape(x)[0]
        labels = self.sampler_labels(n, seed, {"label": label})
        x0 = self.scale(x)
        z = tf.random.stateless_normal(tf.shape(x0),
                                       tf.random.experimental.stateless_fold_in(seed, 0))
        y = self.run_sampler(z, tf.random.experimental.stateless_fold_in(seed, 1), num_steps,
                             eta, guidance, labels, known=(x0, mask), repaint=(resample, jump))
        return self.unscale(y)

    # ---------------------------------------------------- DDIM's deterministic ODE
    def check_steps(self, num_steps, where):
        option = self.sample_options["num_steps"]
        if num_steps is None:
            return option.default
        return validation.check_number(num_steps, "num_steps", f"{self.name}.{where}",
                                       "int32", option.above, option.below)

    @on_batches("data")
    def encode(self, x, num_steps=None, labels=None):
        """DDIM's deterministic inversion (``eta = 0``, no clipping): raw data ->
        ``x_T`` over `num_steps` respaced steps (default T); a conditional model
        at `labels` (default: the null label, or class 0 without label dropout).
        Each step takes the noise predicted at its target timestep from the
        current point (first order: ``decode(encode(x))`` returns ``x`` up to an
        error that shrinks with the steps; 3e-3 at T = 1000 steps on the 1-D
        Gaussian of the tests)."""
        x = self.validate_inputs(x, "encode")
        num_steps = self.check_steps(num_steps, "encode")
        labels = self.ode_labels(labels, x, "encode")
        return self.ode("encoded", self.scale(x), num_steps, labels)

    def ode(self, method, x, num_steps, labels):
        """``getattr(self, method)(x, num_steps, labels)``, compiled when eager."""
        tensors = [tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(num_steps, tf.int32)]
        if labels is not None:
            tensors.append(tf.convert_to_tensor(labels, tf.int32))
        return self.run_compiled(method + ("-labels" if labels is not None else ""),
                             getattr(self, method), *tensors)

    def encoded(self, x0, num_steps, labels=None):
        """:meth:`encode`'s computation, from scaled data."""
        timesteps = schedules.respaced_timesteps(self.timesteps, num_steps)
        abar_all = tf.constant(self.table["alphas_cumprod"], tf.float64)
        count = tf.shape(timesteps)[0]

        def body(i, z):
            t = timesteps[i]
            a = tf.cast(tf.gather(abar_all, t), tf.float32)
            a_prev = tf.cast(tf.where(i > 0, tf.gather(abar_all, timesteps[tf.maximum(i - 1, 0)]),
                                      tf.constant(1.0, tf.float64)), tf.float32)
            eps, _ = self.split_output(self.network_output(
                z, tf.fill(tf.shape(z)[:1], t), labels, averaged=True))
            x0 = (z - tf.sqrt(1.0 - a_prev) * eps) / tf.sqrt(a_prev)
            return i + 1, tf.sqrt(a) * x0 + tf.sqrt(1.0 - a) * eps

        _, z = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), x0))
        return z

    def decoded(self, z, num_steps, labels=None):
        """:meth:`decode`'s computation, to scaled data."""
        return self.run_sampler(z, tf.zeros([2], tf.int32), num_steps, 0.0, labels=labels,
                                clip=False)

    @on_batches("latent")
    def decode(self, z, num_steps=None, labels=None):
        """DDIM's deterministic generation (``eta = 0``, no clipping) from ``x_T``
        = `z` to raw data over `num_steps` respaced steps (default T)."""
        z = self.check_batch(z, "decode", self.latent_shape, what="z")
        num_steps = self.check_steps(num_steps, "decode")
        labels = self.ode_labels(labels, z, "decode")
        y = self.ode("decoded", z, num_steps, labels)
        if self.num_levels is None:
            return y
        return (y + 1.0) * (self.num_levels - 1) / 2.0

    def ode_labels(self, labels, x, where):
        if not self.num_classes:
            return self.check_labels(labels, x, where)
        if labels is None:
            return None if self.guided else tf.zeros(tf.shape(x)[:1], tf.int32)
        return self.check_labels(labels, x, where)
