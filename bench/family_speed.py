"""Training speed of the zoo's VAE, DCGAN and WGAN-GP against keras.io's examples
and plain PyTorch, with the same networks; and what XLA executions give each family.

    .venv/bin/python bench/family_speed.py --repeats 3          # both parts
    .venv/bin/python bench/family_speed.py --repeats 3 --part peers
    .venv/bin/python bench/family_speed.py --repeats 3 --part xla
    .venv/bin/python bench/family_speed.py --repeats 3 --part autoregressive
    .venv/bin/python bench/family_speed.py --repeats 1 --part diffusion
    .venv/bin/python bench/family_speed.py --repeats 1 --part memory
    .venv/bin/python bench/family_speed.py --repeats 3 --part evaluate

Part "peers". Three keras.io examples (bench/keras_io_generative.py says which,
and what was changed to put them on 28x28x1 images): the VAE, the DCGAN and
WGAN-GP, with the example's optimizers, on the zoo's Fashion-MNIST training
batches, at the example's batch size for the VAE (128) and the DCGAN (32) and
at 64 for WGAN-GP (the example's 512, one critic update of which took 35 s on
the shared 2-core host: ``--batch wgan_gp=512``); the same batch for all three
implementations. Each is trained three ways, every
measurement in a fresh process, configurations interleaved within each repeat,
medians over ``--repeats``:

* ``ours``: the zoo's model (``vae``, ``dcgan``, ``wgan_gp``) built with the
  example's networks (:func:`ours_model`: the model's network hooks return
  them), compiled at the zoo's defaults (``steps_per_execution="auto"``), with
  the example's optimizers; at 2 TensorFlow threads (intra- and inter-op) and
  at 1;
* ``keras_io``: the example's model and ``train_step``
  (bench/keras_io_generative.py) through ``model.fit``, at 2 threads;
* ``torch``: the same networks, step and optimizers in plain PyTorch
  (bench/family_speed_torch.py, in the venv of ``--torch-python``: default
  $ZOO_TORCH_PYTHON, else .bench-venv/bin/python), at 1 and 2 threads
  (``torch.set_num_threads``).

What still differs between ours and the peers (same layers, same sizes, same
batch, same optimizers): the VAE's observation model is the zoo's Bernoulli on
dynamically binarized pixels (the example: binary cross-entropy against the
grey levels); the zoo's GANs dequantize the raw levels (``x + u``) and take the
generator's images in [-1, 1] (the DCGAN generator ends in ``tanh``, the
example's in a sigmoid to [0, 1]), score real and generated batches in two
critic calls (the DCGAN example: one call on both), and train the DCGAN by
the non-saturating loss on logits (the example: cross-entropy on a sigmoid, with
0.05 U[0, 1) noise on the labels); the zoo's WGAN-GP interpolates at
``eps ~ U[0, 1]`` (the paper; the example draws N(0, 1)) and runs one critic
update per train step, with a generator update every third step (``n_critic=3``),
where the example runs three critic updates and one generator update per step
on the same batch. So the WGAN-GP's examples/s count critic updates: batch *
critic updates / s, for all three implementations, the example's run for a
third as many train steps (for the others, one update of each network per
batch: batch * steps / s).

Timing: each measurement runs a first ``fit`` (or loop) of ``WARMUP`` steps
(tracing), then times one of ``STEPS`` steps (times ``--steps-scale``): its
wall time, fit's set-up included. Ours is compiled at "auto", which keeps one
step per execution in fits shorter than ``zoo.fitting.AUTO_MIN_STEPS`` (200);
with ``--steps-scale`` making a model's steps at least that, ours' first fit
is as long as the timed one, and "auto" chooses the steps per execution there.
The torch loops time the same steps after ``WARMUP`` steps. The table's ratios:
ours / keras.io at 2 threads each, ours / torch at 1 thread each and at 2 each.

Part "xla". The zoo's own families at their presets and ``zoo train`` batch
sizes (``XLA_MODELS``): ``fit`` with ``prefers_xla_executions()`` forced False
and True, the same ``--xla-spe`` steps per execution for both (``compile`` at
"auto" with the number fixed, so that only the XLA choice differs), ``XLA_STEPS``
steps (times ``--xla-steps-scale``: more on the 2-D data, whose 200 steps took
under a second, mostly fit's set-up) after a first fit of the same length; the
ratio is XLA / not.

Part "flows" (only when asked) runs ``bench/flows_speed.py --only tfp_xla`` with
the same ``--repeats``: the zoo's RealNVP, MAF and NSF against TFP's stock flows,
plain and under XLA (that script writes bench/results/flows_speed.json).

Part "diffusion" (only when asked: ``--part all`` runs the two above). The
zoo's ``ddpm`` on Fashion-MNIST (28x28x1) against keras.io's DDIM example
(bench/keras_io_generative.py: its network, ``train_step`` and
``reverse_diffusion``, moved onto 28x28x1) and against diffusers'
``UNet2DModel`` + ``DDIMScheduler`` (bench/family_speed_torch.py ``--worker
ddpm``). Each measurement, in a fresh process, trains ``DIFFUSION_STEPS``
steps (times ``--steps-scale``) at batch 64 (the preset's and the example's)
after ``WARMUP`` untimed ones, then samples ``--sample-batch`` images (64) by
DDIM with ``--sample-steps`` steps (50, eta = 0) after an untimed one-step
draw; it gives training examples/s and sampling images/s:

* ``ours_kio``: the zoo's ``ddpm`` with keras.io's network (:func:`ddim_ours_model`:
  the network sees ``1 - abar_t``, the noise variance it is fed in the example),
  compiled with the example's AdamW at the zoo's defaults (``steps_per_execution``
  "auto"), EMA 0.999 as the example's, sampled by ``sample`` (the zoo's
  sampler: one ``tf.while_loop`` in one ``tf.function``), 2 threads;
* ``keras_io``: the example's model through ``model.fit``, sampled by its
  ``generate`` (a Python loop calling the EMA network eagerly each step), 2 threads;
* ``ours``: the zoo's ``ddpm`` at its Fashion-MNIST preset (U-Net of 32, 64, 64
  channels, 1.11M parameters), Adam at the preset's 2e-4, at 2 and 1 threads;
* ``torch``: diffusers' ``UNet2DModel`` configured to the same U-Net (the same
  parameter count), trained as the zoo trains (MSE on the noise, Adam 2e-4,
  EMA), sampled by ``DDIMPipeline``, at 1 and 2 threads;
* ``ours_xla`` (with ``--with-xla``): ``ours`` at 2 threads with each train step
  one XLA program (``compile(jit_compile=True)``) and the sampler traced into one
  (``tf.function(jit_compile=True)`` around ``sample``, its first call at the
  timed steps, untimed); the table's last row compares it with ``ours``.

What differs between ``ours_kio`` and ``keras_io`` beside the code around the
same network: the zoo's discrete linear schedule over T = 1000 against the
example's continuous cosine one, MSE against the example's mean absolute error,
data scaled to [-1, 1] against the example's normalizer, and the zoo's clipped
x_0 in the sampler. Results go to the "diffusion" entry of bench/results/family_speed.json.

A measurement that runs past ``--timeout`` seconds (300) is killed and shows as
"-": on the shared 2-core host, the DCGAN's first XLA fit (its compilation
included) ran past 10 minutes.

Part "autoregressive" (not in "all"): the zoo's ``pixelcnn`` (digits preset) and
``transformer`` (fortunes preset) against plain PyTorch peers of the same sizes
(bench/autoregressive_speed_torch.py: the reference PixelCNN and minGPT, in the
venv of ``--torch-python``), at 1 and 2 threads each: training examples/s and
sampling examples/s, our compiled loop (with and without the transformer's
key/value cache) and Python loop against the reference samplers (the section
``autoregressive`` below says what is timed). It writes the "autoregressive"
entry of the JSON and keeps the file's others.
Parts "memory" (peak RSS of ``zoo train`` per family at its digits preset, at 2
and 6 epochs) and "evaluate" (wall time of ``zoo evaluate`` and ``zoo compare`` on
digits runs, before and after a commit): bench/family_memory.py says how.

Results go to bench/results/family_speed.json; the tables (markdown) to stdout.
Never run by the tests.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import family_memory  # bench/: the parts "memory" and "evaluate"

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
# The PyTorch venv (bench/family_speed_torch.py): $ZOO_TORCH_PYTHON, else the
# .bench-venv of bench/flows_speed_torch.py.
TORCH_PY = os.environ.get("ZOO_TORCH_PYTHON", os.path.join(ROOT, ".bench-venv", "bin", "python"))
MODELS = ("vae", "dcgan", "wgan_gp")
# Timed steps per model: about 5-10 s each on a quiet 2-core host.
STEPS = {"vae": 60, "dcgan": 12, "wgan_gp": 6}
# Batch sizes: the examples' (keras_io_generative.BATCH), but WGAN-GP's 512, whose
# critic update took 35 s on the 2-core host under load: `--batch wgan_gp=512`.
DEFAULT_BATCH = {"vae": 128, "dcgan": 32, "wgan_gp": 64}
WARMUP = 3  # untimed steps first (tracing), unless "auto" needs a long first fit
XLA_MODELS = {"vae": "digits", "gan": "8gaussians", "wgan_gp": "8gaussians",
              "dcgan": "digits", "ddpm": "moons", "ebm": "moons", "glow": "fashion_mnist"}
# Timed fit steps of each (a multiple of the 20 steps per execution): 2-D data 1000.
XLA_STEPS = {"vae": 200, "gan": 1000, "wgan_gp": 1000, "dcgan": 200, "ddpm": 1000,
             "ebm": 1000, "glow": 40}


def xla_steps(name, scale):
    return max(1, round(XLA_STEPS[name] * scale))


def set_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


# ------------------------------------------------------------------ ours
def ours_model(name):
    """The zoo's `name` with the keras.io example's networks, compiled with its
    optimizers (module docstring: what still differs)."""
    import keras

    import keras_io_generative as kio  # bench/, the scripts' folder
    from zoo.gan.dcgan import DCGAN
    from zoo.gan.wgan_gp import WGANGP
    from zoo.vae.gaussian_vae import GaussianVAE

    class Network(keras.layers.Layer):
        """A keras.io network as a zoo network (critics are called with `labels`)."""

        def __init__(self, net, **kwargs):
            super().__init__(**kwargs)
            self.net = net

        def call(self, x, labels=None, training=None):
            return self.net(x, training=training)

    class KerasIOVAE(GaussianVAE):
        def make_networks(self):
            encoder, decoder = kio.vae_networks(self.latent_dim, heads=1)
            self.encoder, self.decoder = Network(encoder), Network(decoder)

    class KerasIODCGAN(DCGAN):
        def build_generator(self):
            return Network(kio.dcgan_networks(self.latent_dim, output_activation="tanh")[1])

        def build_critic(self):
            return Network(kio.dcgan_networks(self.latent_dim, score_activation=None)[0])

    class KerasIOWGANGP(WGANGP):
        def build_generator(self):
            return Network(kio.wgan_gp_networks(self.latent_dim)[1])

        def build_critic(self):
            return Network(kio.wgan_gp_networks(self.latent_dim)[0])

    common = dict(data_shape=kio.SHAPE, num_levels=256, latent_dim=kio.LATENT[name])
    first, second = kio.optimizers(name)
    if name == "vae":
        model = KerasIOVAE(observation="bernoulli", **common)
        model.compile(optimizer=first)
    elif name == "dcgan":
        model = KerasIODCGAN(distance="non_saturating", **common)
        model.compile(optimizer=second, critic_optimizer=first)
    else:
        model = KerasIOWGANGP(n_critic=kio.WGAN_CRITIC_STEPS, gp_weight=10.0, **common)
        model.compile(optimizer=second, critic_optimizer=first)
    return model


def measure_peers(impl, name, steps, threads, batch):
    """A first ``fit`` (tracing; for ours at `steps` >= ``AUTO_MIN_STEPS``, of
    `steps` steps, in which "auto" chooses the steps per execution), then one
    of `steps` steps timed."""
    set_threads(threads)
    import keras_io_generative as kio

    import zoo
    from zoo.fitting import AUTO_MIN_STEPS

    data = zoo.datasets.load("fashion_mnist", "train", batch, repeat=True, drop_remainder=True)
    updates = 1  # critic updates per train step
    if impl == "keras_io":
        data = data.map(lambda x: kio.scale(name, x))
        model = kio.peer_model(name)
        if name == "wgan_gp":  # `steps` critic updates: steps / 3 of its train steps
            updates = kio.WGAN_CRITIC_STEPS
    else:
        model = ours_model(name)
    warmup = steps if impl == "ours" and steps >= AUTO_MIN_STEPS else WARMUP
    model.fit(data, steps_per_epoch=max(1, warmup // updates), epochs=1, verbose=0)
    steps = max(1, steps // updates)
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    losses = {k: float(v[-1]) for k, v in history.history.items()}
    return {"impl": impl, "model": name, "threads": threads, "batch": batch, "steps": steps,
            "critic_updates_per_step": updates,
            "seconds": seconds, "examples_per_s": steps * batch * updates / seconds,
            "steps_per_execution": getattr(model, "steps_per_execution", None),
            "losses": losses}


# ------------------------------------------------------------------ XLA
def measure_xla(name, xla, spe, steps):
    """``fit`` of the zoo's `name` at its preset with ``spe`` steps per
    execution and ``prefers_xla_executions()`` returning `xla`."""
    import zoo
    from zoo import fitting
    from zoo.registry import entry

    dataset = XLA_MODELS[name]
    batch = entry(name).training_for(dataset)["batch_size"]
    model = zoo.get(name, dataset=dataset)
    model.prefers_xla_executions = lambda: xla  # forced, for this model only
    fitting.auto_steps_per_execution = lambda *args, **kwargs: spe  # fixed, not timed
    model.compile()  # "auto": fit decides on XLA with the number above
    data = zoo.datasets.load(dataset, "train", batch, repeat=True, drop_remainder=True)
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    assert model.xla_executions == (xla and spe > 1), (model.xla_executions, xla, spe)
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"model": name, "dataset": dataset, "xla": xla, "batch": batch, "steps": steps,
            "steps_per_execution": model.steps_per_execution, "seconds": seconds,
            "examples_per_s": steps * batch / seconds,
            "loss": float(history.history[model.loss_names[0]][-1])}


# ------------------------------------------------------------ autoregressive
# Part "autoregressive": the zoo's `pixelcnn` (digits preset) and `transformer`
# (fortunes preset, as the README's text table) against plain PyTorch peers of
# the same sizes (bench/autoregressive_speed_torch.py: a reference PixelCNN and
# minGPT): training examples/s through `fit` at the preset's batch and rate, and
# sampling examples/s of the zoo's `sample` (the compiled loop; the
# transformer's with and without its key/value cache) and of a Python loop
# calling the network eagerly once per dimension (bench/autoregressive_sampling.py's
# code). Ours and torch at 1 and 2 threads, each (implementation, model,
# threads) one fresh process that trains then samples.
AR_PRESETS = {"pixelcnn": "digits", "transformer": "fortunes"}
# Timed training steps (times --steps-scale): fits shorter than AUTO_MIN_STEPS
# (200) run one step per execution; --steps-scale 7 lets "auto" choose for pixelcnn.
AR_STEPS = {"pixelcnn": 30, "transformer": 4}
AR_SAMPLES = {"pixelcnn": 16, "transformer": 8}  # examples per draw
AR_BATCH = {"pixelcnn": 64, "transformer": 64}  # the presets' (zoo train's) batch sizes
# Table rows: (model, what, ours' measurement, torch's measurement).
AR_ROWS = (
    ("pixelcnn", "training (ex/s)", "train", "train"),
    ("pixelcnn", "sampling (images/s): compiled loop / naive", "compiled", "naive"),
    ("pixelcnn", "sampling (images/s): Python loop / naive", "python", "naive"),
    ("transformer", "training (ex/s)", "train", "train"),
    ("transformer", "sampling (seq/s): compiled loop + cache / KV cache", "compiled",
     "cache"),
    ("transformer", "sampling (seq/s): compiled loop, no cache / minGPT generate",
     "compiled_nocache", "nocache"),
    ("transformer", "sampling (seq/s): Python loop, no cache / minGPT generate", "python",
     "nocache"),
)


def measure_autoregressive(name, threads, steps, n):
    """The zoo's `name` at its ``AR_PRESETS`` preset: a first ``fit`` (of
    ``WARMUP`` steps; at `steps` >= ``AUTO_MIN_STEPS``, of `steps`, in which
    "auto" chooses the steps per execution), then one of `steps` timed (Adam at
    the preset's rate and batch, compiled at the zoo's defaults); then draws of
    `n` examples (bench/autoregressive_sampling.py): ``sample``'s compiled loop
    (and, for a model with a cached step, the loop with the whole network at
    each step) timed after one untimed draw (its tracing), the eager Python
    loop after one eager pass of the network."""
    phases, last = {}, [time.perf_counter()]

    def mark(phase):  # the wall time of each phase (s)
        now = time.perf_counter()
        phases[phase], last[0] = now - last[0], now

    set_threads(threads)
    import autoregressive_sampling as ars  # bench/, the scripts' folder
    import tensorflow as tf

    import zoo
    from zoo.autoregressive.base import AutoregressiveModel
    from zoo.fitting import AUTO_MIN_STEPS
    from zoo.registry import entry

    dataset = AR_PRESETS[name]
    training = entry(name).training_for(dataset)
    batch = training["batch_size"]
    assert batch == AR_BATCH[name], f"{name}'s preset batch is {batch}: update AR_BATCH"
    model = zoo.get(name, dataset=dataset)
    model.compile(**model.training_optimizers(training["learning_rate"]))
    data = zoo.datasets.load(dataset, "train", batch, repeat=True, drop_remainder=True)
    mark("set_up")  # TensorFlow's import included
    warmup = steps if steps >= AUTO_MIN_STEPS else WARMUP  # as measure_peers
    model.fit(data, steps_per_epoch=warmup, epochs=1, verbose=0)
    mark("first_fit")
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    mark("timed_fit")
    seed = model.stateless_seed(0)
    draws = {"compiled": lambda: model.sample(n, seed=0)}
    if type(model).step_params is not AutoregressiveModel.step_params:  # a cached step
        whole = ars.uncached(zoo.get(name, dataset=dataset))
        draws["compiled_nocache"] = lambda: whole.sample(n, seed=0)
    per_draw = {}
    for k, draw in draws.items():
        per_draw[k] = ars.timed(draw, 1)[1]  # the draw after the first (tracing) one
        mark(k)
    model.params(tf.zeros((n,) + model.data_shape))  # one eager pass first, not a whole draw
    start = time.perf_counter()
    ars.python_loop(model, n, seed)
    per_draw["python"] = time.perf_counter() - start
    mark("python")
    return {"impl": "ours", "model": name, "dataset": dataset, "threads": threads,
            "parameters": model.count_params(), "batch": batch, "steps": steps,
            "seconds": seconds, "examples_per_s": steps * batch / seconds,
            "steps_per_execution": model.steps_per_execution,
            "loss": float(history.history["loss"][-1]), "n": n,
            "symbols_per_example": model.event_size, "phase_seconds": phases,
            "sampling": {k: {"examples_per_s": n / v, "symbols_per_s": n * model.event_size / v}
                         for k, v in per_draw.items()}}
# ------------------------------------------------------------------ diffusion
DIFFUSION_STEPS = 6  # timed training steps (2-4 s each on the shared 2-core host)
DIFFUSION_BATCH = 64  # the ddpm preset's and the DDIM example's
SAMPLE_BATCH = 64
SAMPLE_STEPS = 50
# (impl, threads) of the TensorFlow measurements, then torch's threads.
DIFFUSION_CONFIGS = (("ours_kio", 2), ("keras_io", 2), ("ours", 2), ("ours", 1))
DIFFUSION_TORCH_THREADS = (1, 2)


def ddim_ours_model():
    """The zoo's ``ddpm`` on 28x28x1 with keras.io's DDIM network (module
    docstring), compiled with the example's optimizer."""
    import keras
    import tensorflow as tf

    import keras_io_generative as kio
    from zoo.diffusion.ddpm import DDPM

    class Network(keras.layers.Layer):
        """keras.io's network as the zoo's denoiser: ``(x_t, t)`` -> the noise,
        the network fed ``1 - abar_t``, the variance of x_t's noise."""

        def __init__(self, alphas_cumprod, **kwargs):
            super().__init__(**kwargs)
            self.net = kio.ddim_network()
            self.variances = tf.constant(1.0 - alphas_cumprod, tf.float32)

        def call(self, x, t, labels=None, training=None):
            variances = tf.gather(self.variances, t)[:, None, None, None]
            return self.net([x, variances], training=training)

    class KerasIODDPM(DDPM):
        def build_model(self):
            del self.denoiser_network  # the U-Net, not built yet
            self.denoiser_network = Network(self.table["alphas_cumprod"], name="denoiser")
            super().build_model()

        def network_output(self, xt, t, labels=None, averaged=False):
            # Batch norm in training mode for the update, as the example's.
            net = self.averaged("denoiser") if averaged else self.denoiser_network
            return net(xt, t, training=not averaged)

    model = KerasIODDPM(data_shape=kio.SHAPE, num_levels=256, ema_decay=kio.DDIM_EMA,
                        sampling_steps=SAMPLE_STEPS)
    model.compile(optimizer=kio.ddim_optimizer())
    return model


def measure_diffusion(impl, threads, steps, sample_batch, sample_steps):
    """Training examples/s (`steps` after ``WARMUP``) and sampling images/s (one
    draw of `sample_batch` images in `sample_steps` DDIM steps after one of a step)."""
    set_threads(threads)
    import keras_io_generative as kio

    import zoo

    data = zoo.datasets.load("fashion_mnist", "train", DIFFUSION_BATCH, repeat=True,
                             drop_remainder=True)
    if impl == "keras_io":
        data = data.map(lambda x: x / 255.0)
        model = kio.ddim_model(data)
        network = model.network

        def draw(num_steps):
            return model.generate(sample_batch, num_steps)
    else:
        if impl in ("ours", "ours_xla"):
            model = zoo.get("ddpm", dataset="fashion_mnist")
            model.compile(optimizer=model.default_optimizer(
                zoo.registry.entry("ddpm").training_for("fashion_mnist")["learning_rate"]),
                jit_compile=True if impl == "ours_xla" else "auto")  # "auto": the default
        else:
            model = ddim_ours_model()
        network = model.denoiser_network

        if impl == "ours_xla":  # one XLA program of `sample_steps` steps
            import tensorflow as tf

            xla_draw = tf.function(lambda: model.sample(
                sample_batch, seed=0, num_steps=sample_steps, eta=0.0), jit_compile=True)

            def draw(num_steps):  # the first call (untimed) compiles it, at the timed steps
                return xla_draw()
        else:
            def draw(num_steps):
                return model.sample(sample_batch, seed=0, num_steps=num_steps, eta=0.0)
    model.fit(data, steps_per_epoch=WARMUP, epochs=1, verbose=0)
    start = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    draw(1).numpy()  # tracing (ours), the first eager calls (keras.io)
    start = time.perf_counter()
    samples = draw(sample_steps).numpy()
    sample_seconds = time.perf_counter() - start
    assert samples.shape == (sample_batch,) + kio.SHAPE, samples.shape
    return {"impl": impl, "model": "ddpm", "threads": threads, "batch": DIFFUSION_BATCH,
            "steps": steps, "seconds": seconds,
            "examples_per_s": steps * DIFFUSION_BATCH / seconds,
            "steps_per_execution": getattr(model, "steps_per_execution", None),
            "losses": {k: float(v[-1]) for k, v in history.history.items()},
            "parameters": network.count_params(), "sample_batch": sample_batch,
            "sample_steps": sample_steps, "sample_seconds": sample_seconds,
            "images_per_s": sample_batch / sample_seconds}


def diffusion_main(args):
    """``--part diffusion``: its worker, or its measurements and table."""
    if args.worker:
        impl, threads, steps = args.worker[1:]
        print(json.dumps(measure_diffusion(impl, int(threads), int(steps), args.sample_batch,
                                           args.sample_steps)))
        return
    steps = max(1, round(DIFFUSION_STEPS * args.steps_scale))
    sampling = ["--sample-batch", str(args.sample_batch), "--sample-steps", str(args.sample_steps)]
    configs = DIFFUSION_CONFIGS + ((("ours_xla", 2),) if args.with_xla else ())
    jobs = {(impl, threads): [sys.executable, os.path.abspath(__file__), "--part", "diffusion",
                              *sampling, "--worker", "diffusion", impl, str(threads), str(steps)]
            for impl, threads in configs}
    if args.torch_python and os.path.exists(args.torch_python):
        for threads in DIFFUSION_TORCH_THREADS:
            jobs["torch", threads] = [
                args.torch_python, os.path.join(HERE, "family_speed_torch.py"), "--worker",
                "ddpm", "--steps", str(steps), "--warmup", str(WARMUP), "--threads",
                str(threads), "--batch", str(DIFFUSION_BATCH), *sampling]
    elif args.torch_python:
        print(f"(no {args.torch_python}: torch skipped, see bench/family_speed_torch.py)")
    runs = {key: [] for key in jobs}
    began = time.perf_counter()
    for r in range(args.repeats):  # interleaved: every configuration once per repeat
        for key, cmd in jobs.items():
            start = time.perf_counter()
            got = run(cmd, args.timeout)
            runs[key].append(got)
            print(f"  repeat {r + 1}/{args.repeats} {key[0]} {key[1]} threads: " +
                  (f"{got['examples_per_s']:.1f} ex/s training, {got['images_per_s']:.2f} "
                   f"images/s sampling" if got["examples_per_s"] is not None
                   else f"killed after {args.timeout:.0f} s") +
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"  ({time.perf_counter() - began:.0f} s in all)")

    def params(key):
        return next((r["parameters"] for r in runs.get(key, []) if "parameters" in r), None)

    print(f"\n{os.cpu_count()} CPU cores; medians of {args.repeats} fresh processes; "
          f"Fashion-MNIST 28x28x1; training at batch {DIFFUSION_BATCH} ({steps} steps), "
          f"sampling {args.sample_batch} images by DDIM in {args.sample_steps} steps\n")
    print("| ours | peer | threads | parameters (ours / peer) | ours train ex/s | peer train "
          "ex/s | ours/peer | ours images/s | peer images/s | ours/peer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for ours, peer, threads, label in (
            (("ours_kio", 2), ("keras_io", 2), 2, ("ddpm, keras.io's network",
                                                   "keras.io DDIM example")),
            (("ours", 1), ("torch", 1), 1, ("ddpm preset", "diffusers")),
            (("ours", 2), ("torch", 2), 2, ("ddpm preset", "diffusers")),
            *([(("ours_xla", 2), ("ours", 2), 2, ("ddpm preset, XLA", "ddpm preset"))]
              if args.with_xla else [])):
        row = {"ours": label[0], "peer": label[1], "threads": threads,
               "parameters": [params(ours), params(peer)]}
        for what in ("examples_per_s", "images_per_s"):
            a, b = median(runs.get(ours, []), what), median(runs.get(peer, []), what)
            row[what] = [a, b, ratio(a, b)]
        table.append(row)
        train, sample = row["examples_per_s"], row["images_per_s"]
        print(f"| {label[0]} | {label[1]} | {threads} | {fmt(params(ours))} / "
              f"{fmt(params(peer))} | {fmt(train[0], 1)} | {fmt(train[1], 1)} | "
              f"{fmt(train[2], 2)} | {fmt(sample[0], 2)} | {fmt(sample[1], 2)} | "
              f"{fmt(sample[2], 2)} |")
    update_results({"diffusion": part_entry(args, table, runs)})


# ------------------------------------------------------------------ driver
def run(cmd, timeout):
    """The JSON line of a worker; one that runs past `timeout` seconds is killed
    and gives ``{"examples_per_s": None, "timed_out": timeout}``."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"examples_per_s": None, "timed_out": timeout}
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise RuntimeError(f"failed: {' '.join(cmd)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(runs, key="examples_per_s"):
    """The median over the runs that finished (None if none did)."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


fmt = family_memory.fmt


def ratio(a, b):
    return None if a is None or b is None else a / b


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "peers", "xla", "autoregressive",
                                           "diffusion", "flows", *family_memory.PARTS),
                        default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiplies each model's timed steps (STEPS)")
    parser.add_argument("--batch", default="",
                        help="batch sizes other than DEFAULT_BATCH, e.g. 'wgan_gp=512'")
    parser.add_argument("--xla-spe", type=int, default=20,
                        help="steps per execution of both XLA configurations")
    parser.add_argument("--xla-steps-scale", type=float, default=1.0,
                        help="multiplies each family's timed steps (XLA_STEPS)")
    parser.add_argument("--torch-python", default=TORCH_PY,
                        help="the PyTorch venv's python ('' to skip torch)")
    parser.add_argument("--only", default="", help="comma list of models to run")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds after which a measurement is killed (shown as '-')")
    parser.add_argument("--sample-batch", type=int, default=SAMPLE_BATCH,
                        help="diffusion: images per timed DDIM draw")
    parser.add_argument("--sample-steps", type=int, default=SAMPLE_STEPS,
                        help="diffusion: DDIM steps of the timed draw")
    parser.add_argument("--with-xla", action="store_true",
                        help="diffusion: also ours with XLA train steps and sampler")
    family_memory.add_arguments(parser)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "autoregressive" in (args.part, (args.worker or [""])[0]):
        return autoregressive_part(args)
    if args.part == "flows":  # bench/flows_speed.py: the flows against TFP under XLA
        return subprocess.run([sys.executable, os.path.join(HERE, "flows_speed.py"), "--only",
                               "tfp_xla", "--repeats", str(args.repeats)]).returncode
    if args.part == "diffusion" or (args.worker and args.worker[0] == "diffusion"):
        return diffusion_main(args)
    if args.worker:
        kind, *rest = args.worker
        if kind in family_memory.WORKERS:
            result = family_memory.worker(kind, rest)
        elif kind == "xla":
            name, xla, spe, steps = rest
            result = measure_xla(name, xla == "1", int(spe), int(steps))
        else:
            impl, name, steps, threads, batch = rest
            result = measure_peers(impl, name, int(steps), int(threads), int(batch))
        print(json.dumps(result))
        return

    me = [sys.executable, os.path.abspath(__file__), "--worker"]
    only = set(args.only.split(",")) - {""}
    batches = dict(DEFAULT_BATCH)
    for item in filter(None, args.batch.split(",")):
        name, _, size = item.partition("=")
        if name not in batches or not size.isdigit() or int(size) < 1:
            parser.error(f"--batch: expected NAME=SIZE with NAME in {MODELS}, got {item!r}")
        batches[name] = int(size)
    if args.part in family_memory.PARTS:
        return update_results(family_memory.run_parts(me, args, only))
    jobs = {}
    if args.part in ("all", "peers"):
        torch = args.torch_python and os.path.exists(args.torch_python)
        if args.torch_python and not torch:
            print(f"(no {args.torch_python}: torch skipped, see bench/family_speed_torch.py)")
        for name in MODELS:
            if only and name not in only:
                continue
            steps = max(1, round(STEPS[name] * args.steps_scale))
            if name == "wgan_gp":  # whole generator turns: n_critic = 3
                steps = max(3, steps - steps % 3)
            size = str(batches[name])
            for impl, threads in (("ours", 2), ("keras_io", 2), ("ours", 1)):
                jobs[impl, name, threads] = me + ["peers", impl, name, str(steps), str(threads),
                                                  size]
            if torch:
                for threads in (1, 2):
                    jobs["torch", name, threads] = [
                        args.torch_python, os.path.join(HERE, "family_speed_torch.py"),
                        "--worker", name, "--steps", str(steps), "--warmup", str(WARMUP),
                        "--threads", str(threads), "--batch", size]
    if args.part in ("all", "xla"):
        for name in XLA_MODELS:
            if only and name not in only:
                continue
            for xla in (0, 1):
                jobs["xla", name, xla] = me + ["xla", name, str(xla), str(args.xla_spe),
                                               str(xla_steps(name, args.xla_steps_scale))]

    runs = {key: [] for key in jobs}
    for r in range(args.repeats):  # interleaved: every configuration once per repeat
        for key, cmd in jobs.items():
            runs[key].append(run(cmd, args.timeout))
            got = runs[key][-1]["examples_per_s"]
            print(f"  repeat {r + 1}/{args.repeats} {' '.join(map(str, key))}: " +
                  (f"{got:.0f} ex/s" if got is not None else f"killed after {args.timeout:.0f} s"),
                  flush=True)

    print(f"\n{os.cpu_count()} CPU cores; medians of {args.repeats} fresh processes; "
          "examples/s of training (WGAN-GP: batch x critic updates / s)\n")
    table = []
    names = [n for n in MODELS if ("ours", n, 2) in runs]
    if names:
        print("| model | batch | ours ex/s | keras.io ex/s | ours/keras.io | ours 1-thread "
              "ex/s | torch 1-thread ex/s | ours/torch (1 thread) | torch 2-thread ex/s | "
              "ours/torch (2 threads) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        row = {"model": name, "batch": next((r["batch"] for r in runs["ours", name, 2]
                                             if "batch" in r), "-"),
               "ours": median(runs["ours", name, 2]),
               "keras_io": median(runs["keras_io", name, 2]),
               "ours_1t": median(runs["ours", name, 1]),
               "torch_1t": median(runs.get(("torch", name, 1), [])),
               "torch_2t": median(runs.get(("torch", name, 2), [])),
               "ours_spe": sorted({r["steps_per_execution"] for r in runs["ours", name, 2]
                                   if "steps_per_execution" in r})}
        row["ours_over_keras_io"] = ratio(row["ours"], row["keras_io"])
        row["ours_over_torch_1t"] = ratio(row["ours_1t"], row["torch_1t"])
        row["ours_over_torch_2t"] = ratio(row["ours"], row["torch_2t"])
        table.append(row)
        print(f"| {name} | {row['batch']} | {fmt(row['ours'])} | {fmt(row['keras_io'])} | "
              f"{fmt(row['ours_over_keras_io'], 2)} | {fmt(row['ours_1t'])} | "
              f"{fmt(row['torch_1t'])} | {fmt(row['ours_over_torch_1t'], 2)} | "
              f"{fmt(row['torch_2t'])} | {fmt(row['ours_over_torch_2t'], 2)} |")
    xla_table = []
    xla_names = [n for n in XLA_MODELS if ("xla", n, 0) in runs]
    if xla_names:
        print(f"\n`fit` at the presets, {args.xla_spe} steps per execution, "
              "steps as the table says: prefers_xla_executions() forced False / True\n")
        print("| model | dataset | batch | steps | no XLA ex/s | XLA ex/s | XLA / no XLA |")
        print("|---|---|---|---|---|---|---|")
    for name in xla_names:
        off, on = median(runs["xla", name, 0]), median(runs["xla", name, 1])
        batch = next((r["batch"] for r in runs["xla", name, 0] + runs["xla", name, 1]
                      if "batch" in r), "-")
        row = {"model": name, "dataset": XLA_MODELS[name], "batch": batch, "no_xla": off,
               "xla": on, "ratio": ratio(on, off)}
        xla_table.append(row)
        row["steps"] = xla_steps(name, args.xla_steps_scale)
        print(f"| {name} | {row['dataset']} | {batch} | {row['steps']} | {fmt(off)} | {fmt(on)} | "
              f"{fmt(row['ratio'], 2)} |")

    update_results({"args": vars(args), "cpu_count": os.cpu_count(), "peers": table,
                    "xla": xla_table,
                    "runs": [{"config": list(k), "repeats": v} for k, v in runs.items()]})
    update_results(family_memory.run_parts(me, args, only))


def part_entry(args, table, runs):
    """A part's entry of the results: its arguments, table and every run."""
    return {"args": vars(args), "cpu_count": os.cpu_count(), "table": table,
            "runs": [{"config": list(k), "repeats": v} for k, v in runs.items()]}


def update_results(entries):
    """Writes `entries` into bench/results/family_speed.json, keeping the file's
    other keys (every part writes its own)."""
    path = os.path.join(RESULTS, "family_speed.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w") as f:
        json.dump({**results, **entries}, f, indent=1)


def autoregressive_part(args):
    """``--part autoregressive`` (and its workers): ours and the torch peers
    interleaved in fresh processes, medians over ``--repeats``; one markdown
    table, and the "autoregressive" entry of bench/results/family_speed.json
    (the file's other entries kept)."""
    if args.worker:
        _, name, threads, steps, n = args.worker
        print(json.dumps(measure_autoregressive(name, int(threads), int(steps), int(n))))
        return
    me = [sys.executable, os.path.abspath(__file__), "--worker", "autoregressive"]
    only = set(args.only.split(",")) - {""}
    torch = args.torch_python and os.path.exists(args.torch_python)
    if args.torch_python and not torch:
        print(f"(no {args.torch_python}: torch skipped, see bench/autoregressive_speed_torch.py)")
    jobs = {}
    for name in AR_PRESETS:
        if only and name not in only:
            continue
        steps, n = str(max(1, round(AR_STEPS[name] * args.steps_scale))), str(AR_SAMPLES[name])
        for threads in (2, 1):
            jobs["ours", name, threads] = me + [name, str(threads), steps, n]
            if torch:
                jobs["torch", name, threads] = [
                    args.torch_python, os.path.join(HERE, "autoregressive_speed_torch.py"),
                    "--worker", name, "--threads", str(threads), "--steps", steps,
                    "--warmup", str(WARMUP), "-n", n, "--batch", str(AR_BATCH[name])]
    runs = {key: [] for key in jobs}
    for r in range(args.repeats):  # interleaved: every configuration once per repeat
        for key, cmd in jobs.items():
            start = time.perf_counter()
            runs[key].append(run(cmd, args.timeout))
            got = runs[key][-1]
            print(f"  repeat {r + 1}/{args.repeats} {' '.join(map(str, key))}: " + (
                f"train {got['examples_per_s']:.0f} ex/s"
                + (f" ({got['steps_per_execution']} steps/execution)"
                   if "steps_per_execution" in got else "") + ", sampling " + ", ".join(
                    f"{k} {v['examples_per_s']:.2f} ex/s" for k, v in got["sampling"].items())
                if got["examples_per_s"] is not None else f"killed after {args.timeout:.0f} s")
                + f" ({time.perf_counter() - start:.0f} s)", flush=True)

    def value(impl, name, threads, what):
        """The median over the repeats of training or a sampler's examples/s."""
        values = [r["examples_per_s"] if what == "train" else r["sampling"][what]["examples_per_s"]
                  for r in runs.get((impl, name, threads), [])
                  if r.get("examples_per_s") is not None]
        return statistics.median(values) if values else None

    print(f"\n{os.cpu_count()} CPU cores; medians of {args.repeats} fresh processes; ours "
          "(the zoo's preset) / torch (bench/autoregressive_speed_torch.py) at the same "
          "threads\n")
    for name in [n for n in AR_PRESETS if ("ours", n, 2) in runs]:
        sizes = {impl: next((r["parameters"] for r in runs.get((impl, name, 2), [])
                             if "parameters" in r), "-") for impl in ("ours", "torch")}
        print(f"{name} ({AR_PRESETS[name]} preset, batch {AR_BATCH[name]}, draws of "
              f"{AR_SAMPLES[name]}): {sizes['ours']} parameters ours, {sizes['torch']} torch")
    print("\n| model | measure (ours / torch) | ours 2 threads | torch 2 threads | "
          "ours/torch (2 threads) | ours 1 thread | torch 1 thread | ours/torch (1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    table = []
    for name, what, ours, peer in AR_ROWS:
        if ("ours", name, 2) not in runs:
            continue
        row = {"model": name, "measure": what, "ours": ours, "torch": peer}
        for threads in (2, 1):
            row[f"ours_{threads}t"] = value("ours", name, threads, ours)
            row[f"torch_{threads}t"] = value("torch", name, threads, peer)
            row[f"ratio_{threads}t"] = ratio(row[f"ours_{threads}t"], row[f"torch_{threads}t"])
        table.append(row)
        digits = 0 if what.startswith("training") else 2
        print(f"| {name} | {what} | {fmt(row['ours_2t'], digits)} | "
              f"{fmt(row['torch_2t'], digits)} | {fmt(row['ratio_2t'], 2)} | "
              f"{fmt(row['ours_1t'], digits)} | {fmt(row['torch_1t'], digits)} | "
              f"{fmt(row['ratio_1t'], 2)} |")
    update_results({"autoregressive": part_entry(args, table, runs)})


if __name__ == "__main__":
    main()
