"""What the energy-based models of the zoo share: an energy (or score) per
example, Langevin sampling in one compiled loop, a replay buffer of chains kept
as a weight, and on 2-D points a normaliser computed on a grid."""


import keras
import numpy as np
import tensorflow as tf

from zoo import validation
from zoo.base import GenerativeModel, SampleOption
from zoo.energy import langevin
from zoo.validation import on_batches

# The training defaults on the 2-D densities (each model registers them with
# ``zoo.datasets.toy.for_each_density``).
TOY_TRAINING = dict(batch_size=256, epochs=20, learning_rate=1e-3, steps_per_epoch=200)

# What metrics.json says of an image model's likelihood.
INTRACTABLE = ("the normaliser Z = integral of exp(-E(x)) over images is intractable: no NLL; "
               "the model is evaluated by the quality of its samples")


class EnergyModel(GenerativeModel):
    """An energy-based model: a density ``exp(-E(x)) / Z`` known up to its
    normaliser ``Z``, sampled by Langevin dynamics (:mod:`zoo.energy.langevin`).

    The model works on scaled data: images as ``level / (num_levels - 1)`` in
    [0, 1], points as they are. Chains start from uniform noise on the model's
    box (``[0, 1]`` per pixel; ``[-grid_limit, grid_limit]^2`` for points) and
    are clipped into it at every step. Samples are mapped back to raw levels.

    On 2-D points the box is also the normaliser's grid: ``log Z`` is the
    midpoint rule on ``grid_points x grid_points`` cells
    (:func:`~zoo.energy.langevin.grid_log_normalizer`), the density is
    ``exp(-E) / Z`` on the square and 0 outside, so ``log_prob`` and ``nll`` are
    exact up to the rule's quadrature error (``likelihood = "exact"``);
    ``log_prob`` is -inf outside the grid, and ``nll`` of a point there (an
    infinite NLL) is an error naming the grid. On images the normaliser is
    intractable: ``likelihood = "none"``.

    A subclass gives ``energy(x, training, labels)`` on scaled data and
    ``compute_losses``. The sampler options ``step_size``, ``num_steps`` and
    ``noise`` default to the model's arguments of those names (which its
    training chains use too).

    Args:
        step_size: the Langevin step size (> 0).
        num_steps: Langevin steps per chain (>= 1).
        noise: the injected noise relative to Langevin's ``sqrt(step_size)``
            (1: the chain samples ``exp(-E) / Z``; the image papers use less).
        grid_limit: points: the half-width of the square of the chains and of
            the normaliser's grid.
        grid_points: points: cells of the grid per axis (even, >= 8).
    """

    family = "energy"
    draws_training_noise = True
    xla_sampling = False

    def __init__(self, data_shape, num_levels=None, step_size=0.01, num_steps=20, noise=1.0,
                 grid_limit=5.0, grid_points=256, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        # As float32 holds them: the exported sample signature records the defaults.
        self.step_size = float(np.float32(step_size))
        self.num_steps = int(num_steps)
        self.noise = float(np.float32(noise))
        self.grid_limit = float(grid_limit)
        self.grid_points = int(grid_points)
        if not self.step_size > 0:
            raise ValueError(f"{kind}: expected step_size > 0, got {step_size}")
        if self.num_steps < 1:
            raise ValueError(f"{kind}: expected num_steps >= 1, got {num_steps}")
        if not self.noise > 0:
            raise ValueError(f"{kind}: expected noise > 0, got {noise}")
        if not self.grid_limit > 0:
            raise ValueError(f"{kind}: expected grid_limit > 0, got {grid_limit}")
        if self.grid_points < 8 or self.grid_points % 2:
            raise ValueError(f"{kind}: expected an even grid_points >= 8, got {grid_points}")
        if self.data_kind == "vectors":
            raise ValueError(f"{kind}: expected 2-D points or images (H, W, C) with "
                             f"num_levels, got data_shape {self.data_shape}")
        self.sample_options = {
            "step_size": SampleOption(self.step_size, above=0.0, doc="Langevin step size"),
            "num_steps": SampleOption(self.num_steps, "int32", above=0,
                                      doc="Langevin steps per sample"),
            "noise": SampleOption(self.noise, above=0.0,
                                  doc="injected noise relative to sqrt(step_size)"),
            **self.sample_options}  # the base's `label` of a conditional model

    # ------------------------------------------------------------ what it is
    @property
    def likelihood(self):
        """Exact (up to the grid's quadrature error) on 2-D points; none on images."""
        return "exact" if self.data_kind == "points" else "none"

    @classmethod
    def likelihood_kinds(cls):
        return ("exact", "none")

    @property
    def likelihood_description(self):
        if self.likelihood == "exact":
            return (f"exact NLL of the continuous data, the normaliser computed on the grid "
                    f"{self.grid_description} (quadrature error in grid_normalizer)")
        return INTRACTABLE

    @property
    def grid_description(self):
        return (f"[-{self.grid_limit:g}, {self.grid_limit:g}]^2, {self.grid_points} x "
                f"{self.grid_points} cells (midpoint rule)")

    @property
    def bounds(self):
        """The box the chains are clipped into, in the model's (scaled) space."""
        if self.num_levels is not None:
            return (0.0, 1.0)
        return (-self.grid_limit, self.grid_limit)

    # --------------------------------------------------------------- scaling
    def to_model(self, x):
        """Raw data -> the model's space (images to [0, 1])."""
        if self.num_levels is None:
            return x
        return x / (self.num_levels - 1.0)

    def from_model(self, x):
        """The model's space -> raw data (images to levels in [0, num_levels - 1])."""
        if self.num_levels is None:
            return x
        return tf.clip_by_value(x, 0.0, 1.0) * (self.num_levels - 1.0)

    def uniform_noise(self, n, seed):
        """`n` chain starts, uniform on the model's box."""
        low, high = self.bounds
        return tf.random.stateless_uniform(tf.concat([tf.reshape(n, [1]), self.data_shape], 0),
                                           seed=seed, minval=low, maxval=high)

    # ---------------------------------------------------------- the energy
    def energy(self, x, training=False, labels=None):
        """E(x) per example on scaled data (labels: a conditional model's
        class energies)."""
        raise NotImplementedError

    def call(self, x):
        return self.energy(self.to_model(x))

    @on_batches("data")
    def energy_of(self, x):
        """E(x) per example of raw data (checked): the ``energy`` signature."""
        return self.energy(self.to_model(self.validate_inputs(x, "energy")))

    def score_function(self, labels=None):
        """``score_fn(x, i)`` of :func:`~zoo.energy.langevin.langevin`: ``-grad E``."""
        return langevin.energy_score(lambda x: self.energy(x, training=False, labels=labels))

    def run_chains(self, start, seed, step_size, num_steps, noise, labels=None, keep=None,
                   **options):
        """Langevin chains from `start` (scaled data) under the model's energy;
        `options`: a subclass's further sampler options (NCSN's ``denoise``),
        passed on to its ``langevin_chains``."""
        chains = self.langevin_chains
        if not tf.executing_eagerly():
            return chains(start, seed, step_size, num_steps, noise, labels, keep, **options)
        # Eagerly, one compiled function per model (traced once per input structure).
        if "chains" not in self._xla.functions:
            self._xla.functions["chains"] = tf.function(chains, reduce_retracing=True)
        return self._xla.functions["chains"](
            start, tf.convert_to_tensor(seed), tf.constant(step_size, tf.float32),
            tf.constant(num_steps, tf.int32), tf.constant(noise, tf.float32), labels, keep,
            **{k: tf.constant(v, self.sample_options[k].dtype) for k, v in options.items()})

    def langevin_chains(self, start, seed, step_size, num_steps, noise, labels, keep):
        """`num_steps` steps of :func:`~zoo.energy.langevin.langevin` on the
        energy's score (traced: :meth:`run_chains` compiles it)."""
        steps = tf.fill(tf.reshape(tf.cast(num_steps, tf.int32), [1]),
                        tf.cast(step_size, tf.float32))
        return langevin.langevin(self.score_function(labels), start, steps, seed, noise,
                                 self.bounds, keep)

    def samples_labels(self, n, seed, label):
        """The classes of `n` samples of a conditional model (None otherwise)."""
        if not self.num_classes:
            return None
        return self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, 2), label)

    def draw_samples(self, n, seed, step_size=None, num_steps=None, noise=None, label=-1,
                     **options):
        """`num_steps` Langevin steps from uniform noise (a conditional model's
        on the energy of the class `label`, or of classes drawn for -1);
        `options`: a subclass's further sampler options."""
        labels = self.samples_labels(n, seed, label)
        start = self.chain_starts(n, tf.random.experimental.stateless_fold_in(seed, 0))
        x = self.run_chains(start, tf.random.experimental.stateless_fold_in(seed, 1),
                            step_size, num_steps, noise, labels, **options)
        return self.from_model(x)

    def chain_starts(self, n, seed):
        """Where sampling's chains start: uniform noise here."""
        return self.uniform_noise(n, seed)

    def draw_completion(self, x, mask, seed, step_size=None, num_steps=None, noise=None,
                        label=-1, **options):
        """Langevin dynamics with the values where `mask` is 1 clamped and the
        others started from uniform noise (Du & Mordatch 2019, Sec. 4.3)."""
        n = tf.shape(x)[0]
        labels = self.samples_labels(n, seed, label)
        kept = self.to_model(x)
        start = tf.where(mask > 0.5, kept,
                         self.uniform_noise(n, tf.random.experimental.stateless_fold_in(seed, 0)))
        out = self.run_chains(start, tf.random.experimental.stateless_fold_in(seed, 1),
                              step_size, num_steps, noise, labels, keep=(mask, kept),
                              **options)
        return self.from_model(out)

    # --------------------------------------------- the grid normaliser (points)
    def log_normalizer(self, grid_points=None):
        """log Z on the model's grid (2-D points), or on one of `grid_points` cells
        per axis."""
        if self.data_kind != "points":
            raise TypeError(f"{self.name}: the normaliser of an energy over images is "
                            "intractable; it is computed on a grid for 2-D points only")
        return langevin.grid_log_normalizer(lambda p: self.energy(p), -self.grid_limit,
                                            self.grid_limit, grid_points or self.grid_points)

    def check_in_grid(self, x, where):
        """`x` (2-D points), each inside the normaliser's grid; a clear error
        naming the grid otherwise (eagerly, or by a graph assertion)."""
        limit = self.grid_limit
        return validation.check(
            x, lambda a: not a.size or bool(np.all(np.abs(a) <= limit)),
            lambda t: tf.reduce_all(tf.abs(t) <= limit),
            f"{self.name}.{where}: expected points inside the normaliser's grid "
            f"{self.grid_description} (outside it the density is 0; widen grid_limit to "
            f"cover the data)", got=lambda a: f"|x| up to {np.abs(a).max():g}")

    @on_batches("data")
    def log_prob(self, x, labels=None):
        """log p(x) = -E(x) - log Z per example (2-D points), Z on the grid; the
        density is 0 (log p = -inf) outside the grid."""
        if self.likelihood == "none":
            return super().nll(x)
        x = self.validate_inputs(x, "log_prob")
        inside = tf.reduce_all(tf.abs(x) <= self.grid_limit, axis=-1)
        return tf.where(inside, -self.energy(x) - self.log_normalizer(), -np.inf)

    @on_batches("data")
    def nll(self, x, seed=None):
        """-log p(x) per example (2-D points; the seed is unused: no noise). A
        point outside the grid, where the NLL is infinite, is an error naming the
        grid (widen it)."""
        if self.likelihood == "none":
            return super().nll(x)
        return -self.log_prob(self.check_in_grid(self.validate_inputs(x, "nll"), "nll"))

    # ----------------------------------------------------------- evaluation
    def evaluation_defaults(self):
        return {**super().evaluation_defaults(),
                "num_samples": 10_000 if self.num_levels is None else 2_000}

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """The sampler's cost (Langevin steps per sample) and, on points, the grid
        normaliser with its quadrature error; on images, that it is intractable."""
        options = {**{k: o.default for k, o in self.sample_options.items()},
                   **settings.get("sample_options", {})}
        metrics = {"langevin_steps_per_sample": self.langevin_steps(options)}
        if self.likelihood == "exact":
            fine = float(self.log_normalizer())
            coarse = float(self.log_normalizer(self.grid_points // 2))
            metrics["grid_normalizer"] = {
                "grid": self.grid_description, "log_normalizer": fine,
                "log_normalizer_half_resolution": coarse,
                "quadrature_error_nats": abs(fine - coarse)}
        elif self.data_kind == "images":
            metrics["normalizer"] = INTRACTABLE
        return metrics

    def langevin_steps(self, options):
        """Langevin steps per sample with the sampler `options`."""
        return int(options["num_steps"])


class ContrastiveDivergence(EnergyModel):
    """Training by contrastive divergence on Langevin samples (Du & Mordatch
    2019, Algorithm 1): the loss ``E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2)``
    with ``x+`` a data batch and ``x-`` the end of ``num_steps`` Langevin steps
    (no gradient through the chain). The chains start from a replay buffer of
    past chains' ends (each from fresh uniform noise with probability
    `reinit_prob`), which they update, or with `short_run` always from noise
    (Nijkamp et al. 2019's short-run, non-persistent chains: no buffer).

    The buffer is a non-trainable weight, so checkpoints hold it and a killed
    run resumes bit for bit; sampling starts from its entries (picked by the
    seed), as Du & Mordatch's sampler does, unless `short_run`.

    Args:
        buffer_size: chains kept (at least a batch's).
        reinit_prob: the fraction of chains restarted from noise (0.05).
        regularizer: alpha of the L2 energy regulariser.
        short_run: short-run chains from noise, without the buffer.
    """

    def __init__(self, data_shape, num_levels=None, buffer_size=10_000, reinit_prob=0.05,
                 regularizer=1.0, short_run=False, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        kind = type(self).__name__
        self.buffer_size = int(buffer_size)
        self.reinit_prob = float(reinit_prob)
        self.regularizer = float(regularizer)
        self.short_run = bool(short_run)
        if self.buffer_size < 1:
            raise ValueError(f"{kind}: expected buffer_size >= 1, got {buffer_size}")
        if not 0.0 <= self.reinit_prob <= 1.0:
            raise ValueError(f"{kind}: expected 0 <= reinit_prob <= 1, got {reinit_prob}")
        if not self.regularizer >= 0:
            raise ValueError(f"{kind}: expected regularizer >= 0, got {regularizer}")
        self.buffer = None
        if not self.short_run:
            low, high = self.bounds
            self.buffer = self.add_weight(
                shape=(self.buffer_size,) + self.data_shape, name="replay_buffer",
                initializer=keras.initializers.RandomUniform(low, high, seed=0),
                trainable=False, aggregation="only_first_replica")

    def chain_starts(self, n, seed):
        if self.buffer is None:
            return super().chain_starts(n, seed)
        picked = tf.random.stateless_uniform(tf.reshape(n, [1]), seed=seed, minval=0,
                                             maxval=self.buffer_size, dtype=tf.int32)
        return tf.gather(self.buffer, picked)

    def negatives(self, batch, training, labels=None):
        """The chains' ends ``x-`` for a batch of `batch` examples: in training from
        the buffer (updated) or noise, drawn from the random stream; otherwise
        short-run chains from noise at a fixed seed (the test loss is
        deterministic and leaves the stream and buffer alone)."""
        if not training:
            seed = tf.constant([0, 0], tf.int32)
            start = self.uniform_noise(batch, tf.constant([0, 1], tf.int32))
            return self.run_chains(start, seed, self.step_size, self.num_steps, self.noise, labels)
        fresh = self.uniform_noise(batch, self.rng.next_seed())
        if self.buffer is None:
            start, picked = fresh, None
        else:
            # Distinct entries (a batch larger than the buffer wraps around).
            order = tf.math.top_k(self.rng.uniform([self.buffer_size]),
                                  k=self.buffer_size).indices
            picked = tf.gather(order, tf.range(batch) % self.buffer_size)
            restart = self.rng.uniform(tf.reshape(batch, [1])) < self.reinit_prob
            restart = tf.reshape(restart, [-1] + [1] * len(self.data_shape))
            start = tf.where(restart, fresh, tf.gather(self.buffer, picked))
        ends = self.run_chains(start, self.rng.next_seed(), self.step_size, self.num_steps,
                               self.noise, labels)
        if picked is not None:
            self.buffer.assign(tf.tensor_scatter_nd_update(self.buffer, picked[:, None], ends))
        return ends

    def contrastive_terms(self, x, training, labels=None, sample_labels=None):
        """The contrastive divergence and the regulariser on the scaled batch `x`."""
        negatives = self.negatives(tf.shape(x)[0], training, sample_labels)
        positive = self.energy(x, training=training, labels=labels)
        negative = self.energy(negatives, training=training, labels=sample_labels)
        divergence = tf.reduce_mean(positive) - tf.reduce_mean(negative)
        penalty = self.regularizer * tf.reduce_mean(tf.square(positive) + tf.square(negative))
        return divergence, penalty
