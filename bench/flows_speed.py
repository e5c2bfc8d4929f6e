"""Flow speed on FFJORD moons: the zoo's RealNVP / MAF / NSF vs TFP stock (and zuko).

Config (the README's speed table): 2-D moons from ``zoo.datasets.load("moons", "train",
256, repeat=True, drop_remainder=True)``, batch 256, Adam 1e-3.

* RealNVP, 8 affine couplings, MLP 64x64: ``zoo.get("realnvp", dataset="moons", ...)``
  through ``model.fit`` (at the zoo's defaults: ``compile`` chooses
  ``steps_per_execution`` from the step's time; and with ``steps_per_execution=1``) vs TFP's
  stock ``tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=
  tfb.real_nvp_default_template([64, 64]))`` chained with ``tfb.Permute([1, 0])``,
  trained by a ``tf.function`` step with a ``tf_keras`` Adam (the tf.compat.v1
  template works under TF2 eager / tf.function; its variables are read from the
  templates after a first call).
* MAF, 5 layers, MADE [64, 64]: ``zoo.get("maf", dataset="moons", ...)`` vs
  ``tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=tfb.AutoregressiveNetwork(
  params=2, hidden_units=[64, 64], activation="relu"))`` (relu, as ours: TFP's default
  is linear) with reversals between layers.
* NSF, 6 rational-quadratic spline couplings, 8 bins on [-4, 4], MLP 64x64:
  ``zoo.get("nsf", dataset="moons", ...)`` vs ``tfb.RealNVP(num_masked=1,
  bijector_fn=...)`` making a ``tfb.RationalQuadraticSpline`` (the recipe of its
  docstring, with the same MLP; :func:`StockSplineNet`). zuko's NSF (bound 5) has
  no coupling class: in 2-D its autoregressive one also splines the first variable.
* The same TFP flows as the strongest TFP a user could write in a page
  (``tfp_<flow>_xla``, :func:`tfp_xla`): the train step compiled with XLA
  (``tf.function(jit_compile=True)``), K steps per call in a ``tf.while_loop`` over
  K batches stacked in one tensor, the ``tf_keras`` Adam's update inside, and the
  sampler compiled with XLA. Every stock bijector above compiles as it is (the
  tf.compat.v1 template, the MADE, the spline). K "auto" (``--tfp-k``) is chosen by
  ours' rule (zoo.fitting: 0.2 s worth of steps a call, at most 100, a divisor of
  ``--steps``) from the time of one step called alone under XLA (ours times its
  step as a plain graph); the table's ``spe`` column gives it, and ``--tfp-k 100``
  gives TFP the most that ours may choose.
* zuko (PyTorch) RealNVP / MAF / NSF, when .bench-venv exists (bench/flows_speed_torch.py).

Training is timed two ways for ours: the wall time of one ``model.fit`` of
``--steps`` steps ("examples/s": fit's set-up and a new iterator included), and
from the end of its first execution to the end of its last (a callback; "steady
ex/s"). Before it, ours runs a first fit of the same length (tracing, and timing
the step to choose ``steps_per_execution``), the peers ``--warmup`` steps (their
tracing; ``tfp_<flow>_xla`` whole calls of K steps, at least one, after the 6 steps
that time it for "auto"). The peers' loops keep one iterator, so for them both
numbers are the same.

Metrics, each configuration in a fresh subprocess (so that peak memory is its own),
configurations interleaved within each repeat, medians over ``--repeats``:
training examples/s over ``--steps`` steps after a warm-up; sampling samples/s for
n=10000 after a warm-up (ours ``model.sample(n, seed)`` in a ``tf.function``, TFP
``dist.sample`` in a ``tf.function``, and for reference in one with
``jit_compile=True``, the ``tfp_<flow>_xla`` rows' samplers only so, zuko
``flow().sample`` under ``no_grad``); peak
RSS (VmHWM) of the process, and its RSS after imports (the peak minus it is
what the model, data and training added).

The host's speed drifts (up to 2x within minutes on a shared machine), which moves
ratios between fresh processes. So sampling against TFP is also measured paired:
one more worker per flow (``paired_<flow>``) trains both as above, then times
ours, TFP's and TFP's XLA samplers in rotating rounds in one process; its table
gives the medians of the per-round ratios.

    .venv/bin/python bench/flows_speed.py --repeats 3

``--only tfp_xla`` runs only ours at the defaults, TFP, TFP under XLA and the
paired sampling (12 workers a repeat, against 15, and 21 with zuko; one repeat of
them took 6.6 minutes on the shared 2-core host); ``--flows`` picks flows.
bench/flows_xla_split.py gives one step's HLO sizes and time split, ours
against TFP under XLA.

Prints a table with ratios (ours / peer) and writes bench/results/flows_speed.json
(and the zoo's moons batches to bench/results/moons_batches.npy for the torch side).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from process_memory import peak_rss_mb, rss_mb  # bench/, the scripts' folder

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
DATA = os.path.join(RESULTS, "moons_batches.npy")
BENCH_PY = os.path.join(ROOT, ".bench-venv", "bin", "python")
BATCH = 256

TF_CONFIGS = {
    # name: (flow, implementation, steps_per_execution)
    "ours_realnvp": ("realnvp", "ours", "auto"),
    "ours_realnvp_spe1": ("realnvp", "ours", 1),
    "tfp_realnvp": ("realnvp", "tfp", None),
    "tfp_realnvp_xla": ("realnvp", "tfp_xla", "auto"),
    "ours_maf": ("maf", "ours", "auto"),
    "ours_maf_spe1": ("maf", "ours", 1),
    "tfp_maf": ("maf", "tfp", None),
    "tfp_maf_xla": ("maf", "tfp_xla", "auto"),
    "ours_nsf": ("nsf", "ours", "auto"),
    "ours_nsf_spe1": ("nsf", "ours", 1),
    "tfp_nsf": ("nsf", "tfp", None),
    "tfp_nsf_xla": ("nsf", "tfp_xla", "auto"),
}
TORCH_CONFIGS = {"zuko_realnvp": "realnvp", "zuko_maf": "maf", "zuko_nsf": "nsf"}
FLOWS = ("realnvp", "maf", "nsf")
PAIRED = {f"paired_{flow}": flow for flow in FLOWS}  # ours and TFP sampling in one process


def data():
    import zoo

    return zoo.datasets.load("moons", "train", BATCH, repeat=True, drop_remainder=True)


def ours_model(flow):
    """The zoo's `flow` as the module docstring configures it (not compiled)."""
    import zoo

    if flow == "realnvp":
        return zoo.get("realnvp", dataset="moons", num_couplings=8, hidden_units=64,
                       num_blocks=2)
    if flow == "maf":
        return zoo.get("maf", dataset="moons", num_layers=5, hidden_units=64, num_hidden=2)
    return zoo.get("nsf", dataset="moons", variant="coupling", num_layers=6,
                   hidden_units=64, num_hidden=2, num_bins=8, bound=4.0)


def ours(flow, spe, steps, warmup, sample_n, sample_reps):
    import keras
    import tensorflow as tf

    model = ours_model(flow)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=spe)
    ds = data()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)  # traces; "auto" chooses
    spe = model.steps_per_execution

    class Timer(keras.callbacks.Callback):
        """Times executions 2.. of the fit: no fit set-up, no new iterator, no
        first execution."""

        ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    start = time.perf_counter()
    history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
    train_s = time.perf_counter() - start
    loss = float(history.history["loss"][-1])
    ends = Timer.ends
    assert len(ends) == steps // spe, (len(ends), steps, spe)
    steady_s = (ends[-1] - ends[0]) / (steps - spe)  # seconds per step
    ours.fit_overhead = {"first_execution_s": ends[0] - start}
    ours.fit_overhead["after_last_s"] = start + train_s - ends[-1]
    ours.fit_overhead["steps_per_execution"] = spe
    return train_s, steady_s, loss, tf.function(lambda: model.sample(sample_n, seed=1))


def StockSplineNet(bins=8, bound=4.0, min_width=1e-3, min_slope=1e-3):
    """TFP's documented spline coupling (the ``tfb.RationalQuadraticSpline``
    docstring's ``SplineParams``), with a relu MLP 64x64 before its three Dense
    heads so that it matches ours: widths and heights by softmax on [-B, B], slopes
    by softplus. A ``tf.Module`` whose variables appear after a first call."""
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.built = False

        def __call__(self, x, nunits):
            if not self.built:
                def positions(h):
                    h = tf.reshape(h, tf.concat([tf.shape(h)[:-1], [nunits, bins]], 0))
                    return tf.math.softmax(h, -1) * (2 * bound - bins * min_width) + min_width

                def slopes(h):
                    h = tf.reshape(h, tf.concat([tf.shape(h)[:-1], [nunits, bins - 1]], 0))
                    return tf.math.softplus(h) + min_slope

                self.mlp = tf_keras.Sequential([tf_keras.layers.Dense(64, "relu"),
                                                tf_keras.layers.Dense(64, "relu")])
                self.w = tf_keras.layers.Dense(nunits * bins, activation=positions)
                self.h = tf_keras.layers.Dense(nunits * bins, activation=positions)
                self.s = tf_keras.layers.Dense(nunits * (bins - 1), activation=slopes)
                self.built = True
            h = self.mlp(x)
            return tfp.bijectors.RationalQuadraticSpline(
                bin_widths=self.w(h), bin_heights=self.h(h), knot_slopes=self.s(h),
                range_min=-bound)

    return Net()


def tfp_flow(flow):
    """TFP's stock flow for `flow` (the module docstring), as a
    ``tfd.TransformedDistribution`` with its variables created, and the list of
    its trainable variables."""
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    if flow == "realnvp":
        templates = [tfb.real_nvp_default_template([64, 64]) for _ in range(8)]
        layers = [tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=t) for t in templates]
    elif flow == "nsf":
        templates = [StockSplineNet() for _ in range(6)]
        layers = [tfb.RealNVP(num_masked=1, bijector_fn=t) for t in templates]
    else:
        nets = [tfb.AutoregressiveNetwork(params=2, hidden_units=[64, 64], activation="relu")
                for _ in range(5)]
        layers = [tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=n) for n in nets]
    steps_list = []
    for i, layer in enumerate(layers):
        if i:
            steps_list.append(tfb.Permute([1, 0]))
        steps_list.append(layer)
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2)),
                                       tfb.Chain(steps_list[::-1]))
    dist.log_prob(tf.zeros([1, 2]))  # creates the variables
    if flow in ("realnvp", "nsf"):
        variables = [v for t in templates for v in t.trainable_variables]
    else:
        variables = list(dist.trainable_variables)
    assert variables, "no trainable variables found"
    return dist, variables


def tfp_stock(flow, steps, warmup, sample_n, sample_reps):
    import tensorflow as tf
    import tf_keras

    dist, variables = tfp_flow(flow)
    optimizer = tf_keras.optimizers.Adam(1e-3)

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    it = iter(data().prefetch(tf.data.AUTOTUNE))
    for _ in range(warmup):
        train_step(next(it))
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(next(it))
    loss = float(loss)
    train_s = time.perf_counter() - start

    def sample():
        return dist.sample(sample_n, seed=(1, 2))

    tfp_stock.sample_xla = tf.function(sample, jit_compile=True)
    return train_s, train_s / steps, loss, tf.function(sample)


def steps_per_call(step_seconds, steps):
    """The zoo's rule for ``steps_per_execution="auto"`` (zoo.fitting's
    ``auto_steps_per_execution`` for a fit of `steps` steps): ``EXECUTION_SECONDS``
    worth of steps of `step_seconds` each, at most ``MAX_STEPS_PER_EXECUTION``,
    the largest such number that divides `steps`."""
    from zoo import fitting

    most = min(fitting.MAX_STEPS_PER_EXECUTION, steps,
               max(1, int(fitting.EXECUTION_SECONDS / step_seconds)))
    return max(k for k in range(1, most + 1) if steps % k == 0)


def tfp_xla(flow, k, steps, warmup, sample_n, sample_reps):
    """TFP's stock flow (:func:`tfp_flow`) trained as the strongest TFP a user
    could write in a page: `k` train steps per call, in a ``tf.while_loop`` over
    `k` batches stacked in one tensor (the dataset batched by `k`), compiled
    with XLA (``tf.function(jit_compile=True)``), the ``tf_keras`` Adam's update
    inside it (built eagerly first); its sampler compiled with XLA too. Every
    stock bijector here compiles as it is: ``real_nvp_default_template``'s
    tf.compat.v1 layers, the MADE and the spline.

    `k` "auto" chooses as ours does (:func:`steps_per_call`), from this step's
    time: the median of 5 calls of one compiled step after a first (those 6
    steps train too, before the warm-up)."""
    import tensorflow as tf
    import tf_keras

    dist, variables = tfp_flow(flow)
    optimizer = tf_keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def train_step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function(jit_compile=True)
    def train_steps(xs):  # xs: [steps, batch, 2]
        def body(i, loss):
            return i + 1, train_step(xs[i])

        return tf.while_loop(lambda i, _: i < tf.shape(xs)[0], body,
                             [tf.constant(0), tf.constant(0.0)])[1]

    step_seconds = None
    if k == "auto":
        one = tf.function(train_step, jit_compile=True)
        batch = next(iter(data()))
        one(batch).numpy()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            one(batch).numpy()
            times.append(time.perf_counter() - start)
        step_seconds = statistics.median(times)
        k = steps_per_call(step_seconds, steps)
    if steps % k:
        raise ValueError(f"--tfp-k must divide --steps ({steps}), got {k}")
    it = iter(data().batch(k, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    for _ in range(max(1, round(warmup / k))):  # traces and compiles for k
        train_steps(next(it))
    start = time.perf_counter()
    for _ in range(steps // k):
        loss = train_steps(next(it))
    loss = float(loss)
    train_s = time.perf_counter() - start
    tfp_xla.fit_overhead = {"steps_per_execution": k}
    if step_seconds is not None:
        tfp_xla.fit_overhead["one_step_s"] = step_seconds

    def sample():
        return dist.sample(sample_n, seed=(1, 2))

    return train_s, train_s / steps, loss, tf.function(sample, jit_compile=True)


def measure(name, steps, warmup, sample_n, sample_reps, tfp_k="auto"):
    import tensorflow as tf

    import zoo  # noqa: F401  (imports counted in the baseline)

    base_rss = rss_mb()
    flow, impl, spe = TF_CONFIGS[name]
    if impl == "ours":
        train_s, steady_s, loss, sample = ours(flow, spe, steps, warmup, sample_n, sample_reps)
    elif impl == "tfp_xla":
        train_s, steady_s, loss, sample = tfp_xla(flow, tfp_k if spe == "auto" else spe, steps,
                                                  warmup, sample_n, sample_reps)
    else:
        train_s, steady_s, loss, sample = tfp_stock(flow, steps, warmup, sample_n, sample_reps)
    def samples_per_s(sample):
        s = sample()  # trace + warm-up
        start = time.perf_counter()
        for _ in range(sample_reps):
            s = sample()
        s = s.numpy()
        assert s.shape == (sample_n, 2), s.shape
        return sample_reps * sample_n / (time.perf_counter() - start)

    extra = {}
    if impl == "tfp":  # for reference: TFP's sampler compiled with XLA, on request
        extra["samples_per_s_xla"] = samples_per_s(tfp_stock.sample_xla)
    return {
        "config": name,
        "framework": f"TF {tf.__version__}",
        "examples_per_s": steps * BATCH / train_s,
        "steady_examples_per_s": BATCH / steady_s,
        "samples_per_s": samples_per_s(sample),
        **extra,
        "final_loss": loss,
        **getattr(ours, "fit_overhead", {}),
        **getattr(tfp_xla, "fit_overhead", {}),
        "rss_after_import_mb": base_rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def paired_sampling(flow, steps, warmup, sample_n, rounds, calls=5):
    """Ours and TFP's samplers (in a ``tf.function``, and with ``jit_compile=True``)
    in one process, each trained as in its own worker, timed in alternation:
    ``rounds`` rounds of ``calls`` calls each, the one that goes first rotating.
    The host's speed drifts by up to 2x over seconds to minutes; a ratio within
    one round is not moved by that drift."""
    _, _, _, mine = ours(flow, "auto", steps, warmup, sample_n, 1)
    _, _, _, peer = tfp_stock(flow, steps, warmup, sample_n, 1)
    samplers = {"ours": mine, "tfp": peer, "tfp_xla": tfp_stock.sample_xla}

    def seconds(sample):
        start = time.perf_counter()
        for _ in range(calls):
            s = sample()
        s.numpy()
        return (time.perf_counter() - start) / calls

    for sample in samplers.values():  # trace + warm-up
        seconds(sample)
    names = list(samplers)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(seconds(samplers[name]))
    result = {"config": f"paired_{flow}"}
    for peer, key in (("tfp", "ratio"), ("tfp_xla", "ratio_xla")):
        ratios = [p / o for o, p in zip(times["ours"], times[peer])]
        result.update({key: statistics.median(ratios), key + "_min": min(ratios),
                       key + "_max": max(ratios)})
    for name in names:
        result[name + "_ms"] = 1e3 * statistics.median(times[name])
    return result


# ---------------------------------------------------------------------- driver
def save_batches(count):
    """The zoo's moons batches, for the torch side (same data, same order)."""
    import numpy as np

    batches = [b.numpy() for b in data().take(count)]
    os.makedirs(RESULTS, exist_ok=True)
    np.save(DATA, np.stack(batches))


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise RuntimeError(f"failed: {' '.join(cmd)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=list(TF_CONFIGS) + list(PAIRED))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--sample-n", type=int, default=10000)
    parser.add_argument("--sample-reps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds of the paired sampling comparison")
    parser.add_argument("--torch-threads", default="2,1",
                        help="torch thread counts to run zuko with ('' to skip zuko)")
    parser.add_argument("--only", default="",
                        help="comma list of configs to run, or 'tfp_xla' for ours at the "
                             "defaults, TFP, TFP under XLA and the paired sampling")
    parser.add_argument("--flows", default=",".join(FLOWS),
                        help="comma list of flows to run (default: all)")
    parser.add_argument("--tfp-k", default="auto",
                        help="train steps per call of the tfp_<flow>_xla configs: 'auto' "
                             "(chosen as ours chooses) or an int that divides --steps")
    args = parser.parse_args()
    if args.tfp_k != "auto":
        try:
            args.tfp_k = int(args.tfp_k)
        except ValueError:
            parser.error(f"--tfp-k must be 'auto' or an int, got {args.tfp_k!r}")
        if args.tfp_k < 1 or args.steps % args.tfp_k:
            parser.error(f"--tfp-k must be an int >= 1 that divides --steps ({args.steps}), "
                         f"got {args.tfp_k}")
    flows = [f for f in args.flows.split(",") if f]
    if not flows or set(flows) - set(FLOWS):
        parser.error(f"--flows must be a comma list of {', '.join(FLOWS)}, got {args.flows!r}")
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup),
              "--sample-n", str(args.sample_n), "--sample-reps", str(args.sample_reps)]
    if args.worker in PAIRED:
        print(json.dumps(paired_sampling(PAIRED[args.worker], args.steps, args.warmup,
                                         args.sample_n, args.rounds)))
        return
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.warmup, args.sample_n,
                                 args.sample_reps, args.tfp_k)))
        return

    jobs = {name: [sys.executable, os.path.abspath(__file__), "--worker", name,
                   "--tfp-k", str(args.tfp_k)] + common for name in TF_CONFIGS}
    jobs.update({name: [sys.executable, os.path.abspath(__file__), "--worker", name,
                        "--rounds", str(args.rounds)] + common for name in PAIRED})
    threads = [int(t) for t in args.torch_threads.split(",") if t]
    if threads and os.path.exists(BENCH_PY):
        save_batches(args.warmup + args.steps)
        for t in threads:
            for name in TORCH_CONFIGS:
                jobs[f"{name}_{t}t"] = [BENCH_PY, os.path.join(HERE, "flows_speed_torch.py"),
                                        "--worker", name, "--threads", str(t),
                                        "--data", DATA] + common
    elif threads:
        print(f"(no {BENCH_PY}: zuko skipped, see bench/flows_speed_torch.py)")
    only = set(args.only.split(",")) - {""}
    if "tfp_xla" in only:
        only = (only - {"tfp_xla"}) | {f"{kind}_{flow}{tail}" for flow in FLOWS for kind, tail
                                       in (("ours", ""), ("tfp", ""), ("tfp", "_xla"),
                                           ("paired", ""))}
    known = set(TF_CONFIGS) | set(PAIRED) | {
        f"{name}_{t}t" for name in TORCH_CONFIGS for t in threads}
    if only - known:
        parser.error(f"--only: unknown configs {', '.join(sorted(only - known))} (known: "
                     f"tfp_xla, {', '.join(sorted(known))})")
    jobs = {k: v for k, v in jobs.items() if (not only or k in only) and
            any(k.split("_")[1] == flow for flow in flows)}

    runs = {name: [] for name in jobs}
    for r in range(args.repeats):  # interleaved: every config once per repeat
        for name, cmd in jobs.items():
            runs[name].append(run(cmd))
            got = runs[name][-1]
            print(f"  repeat {r + 1}/{args.repeats} {name}: " + (
                f"sampling ms TFP/ours {got['ratio']:.2f} ({got['ratio_min']:.2f}-"
                f"{got['ratio_max']:.2f}), TFP XLA/ours {got['ratio_xla']:.2f}"
                if name in PAIRED else
                f"{got['examples_per_s']:.0f} ex/s, {got['samples_per_s']:.0f} samples/s"),
                flush=True)
    paired = {name: runs.pop(name) for name in PAIRED if name in runs}

    rows = {}
    for name, rs in runs.items():
        rows[name] = {"config": name, "framework": rs[0]["framework"], "repeats": rs}
        for r in rs:  # the peers' loops have no per-fit set-up: steady = wall
            r.setdefault("steady_examples_per_s", r["examples_per_s"])
        for key in ("examples_per_s", "steady_examples_per_s", "samples_per_s", "peak_rss_mb",
                    "rss_after_import_mb", "samples_per_s_xla"):
            if key in rs[0]:
                rows[name][key] = statistics.median(r[key] for r in rs)
        for key in ("examples_per_s", "samples_per_s"):
            rows[name][key + "_min"] = min(r[key] for r in rs)
            rows[name][key + "_max"] = max(r[key] for r in rs)
        rows[name]["steps_per_execution"] = "/".join(
            str(k) for k in sorted({r["steps_per_execution"] for r in rs
                                    if "steps_per_execution" in r})) or "-"
        rows[name]["added_rss_mb"] = statistics.median(
            r["peak_rss_mb"] - r["rss_after_import_mb"] for r in rs)

    print()
    print(f"FFJORD moons, batch {BATCH}, Adam 1e-3, {args.steps} timed steps after "
          f"{args.warmup} warm-up, sampling n={args.sample_n} x{args.sample_reps}; "
          f"{os.cpu_count()} CPU cores (shared), medians of {args.repeats} fresh processes")
    head = (f"{'config':<20} {'spe':>5} {'examples/s':>10} {'(min-max)':>15} {'steady ex/s':>11} "
            f"{'samples/s':>10} {'peak RSS MB':>11} {'added MB':>8}")
    print(head)
    print("-" * len(head))
    for name, row in rows.items():
        print(f"{name:<20} {row['steps_per_execution']:>5} {row['examples_per_s']:>10.0f} "
              f"{row['examples_per_s_min']:>7.0f}-{row['examples_per_s_max']:<7.0f} "
              f"{row['steady_examples_per_s']:>11.0f} {row['samples_per_s']:>10.0f} {row['peak_rss_mb']:>11.0f} "
              f"{row['added_rss_mb']:>8.0f}")

    ratios = []
    for flow in FLOWS:
        peers = [f"tfp_{flow}", f"tfp_{flow}_xla"] + [f"zuko_{flow}_{t}t" for t in threads]
        for mine in (f"ours_{flow}", f"ours_{flow}_spe1"):
            for peer in peers:
                if mine in rows and peer in rows:
                    a, b = rows[mine], rows[peer]
                    ratios.append({
                        "ours": mine, "peer": peer,
                        "train": a["examples_per_s"] / b["examples_per_s"],
                        "train_steady": a["steady_examples_per_s"] / b["steady_examples_per_s"],
                        "sample": a["samples_per_s"] / b["samples_per_s"],
                        "sample_vs_xla": (a["samples_per_s"] / b["samples_per_s_xla"]
                                          if "samples_per_s_xla" in b else None),
                        "peak_rss": a["peak_rss_mb"] / b["peak_rss_mb"],
                        "added_rss": a["added_rss_mb"] / max(b["added_rss_mb"], 1e-9),
                    })
    if ratios:
        print()
        head = (f"{'ours':<20} {'/ peer':<18} {'train':>6} {'steady':>6} {'sample':>7} "
                f"{'/ XLA':>6} {'peak RSS':>8} {'added':>6}")
        print(head)
        print("-" * len(head))
        for r in ratios:
            vs_xla = "-" if r["sample_vs_xla"] is None else f"{r['sample_vs_xla']:.2f}"
            print(f"{r['ours']:<20} {r['peer']:<18} {r['train']:>6.2f} "
                  f"{r['train_steady']:>6.2f} {r['sample']:>7.2f} {vs_xla:>6} "
                  f"{r['peak_rss']:>8.2f} {r['added_rss']:>6.2f}")
    print("(ratios > 1: ours faster for train/sample, ours bigger for memory; '/ XLA': "
          "ours against TFP's sampler with jit_compile=True; tfp_<flow>_xla: TFP's train "
          "steps and sampler under XLA)")
    paired_rows = []
    if paired:
        print()
        print(f"sampling n={args.sample_n}, ours, TFP and TFP under XLA alternating in one "
              f"process ({args.rounds} rounds; medians over rounds, then over repeats)")
        head = (f"{'flow':<8} {'ours ms':>8} {'TFP ms':>8} {'TFP/ours':>8} {'(rounds min-max)':>17}"
                f" {'XLA ms':>8} {'XLA/ours':>8} {'(rounds min-max)':>17}")
        print(head)
        print("-" * len(head))
        for name, rs in paired.items():
            row = {"config": name, "repeats": rs,
                   **{k: statistics.median(r[k] for r in rs)
                      for k in ("ours_ms", "tfp_ms", "tfp_xla_ms", "ratio", "ratio_xla")},
                   **{k: min(r[k] for r in rs) for k in ("ratio_min", "ratio_xla_min")},
                   **{k: max(r[k] for r in rs) for k in ("ratio_max", "ratio_xla_max")}}
            paired_rows.append(row)
            print(f"{PAIRED[name]:<8} {row['ours_ms']:>8.2f} {row['tfp_ms']:>8.2f} "
                  f"{row['ratio']:>8.2f} {row['ratio_min']:>8.2f}-{row['ratio_max']:<8.2f} "
                  f"{row['tfp_xla_ms']:>8.2f} {row['ratio_xla']:>8.2f} "
                  f"{row['ratio_xla_min']:>8.2f}-{row['ratio_xla_max']:<8.2f}")

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "flows_speed.json"), "w") as f:
        json.dump({"args": vars(args), "rows": list(rows.values()), "ratios": ratios,
                   "paired_sampling": paired_rows}, f, indent=1)


if __name__ == "__main__":
    main()
