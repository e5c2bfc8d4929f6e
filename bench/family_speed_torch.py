"""The PyTorch peer of bench/family_speed.py: keras.io's VAE, DCGAN and WGAN-GP
examples (bench/keras_io_generative.py) in plain PyTorch.

Runs in its own venv (never in the zoo's), e.g. one outside the checkout:

    python3 -m venv ~/venvs/torch
    ~/venvs/torch/bin/pip install torch numpy   # a CPU wheel where the index has one
    ~/venvs/torch/bin/python bench/family_speed_torch.py --worker vae --threads 1 --batch 128

bench/family_speed.py runs it that way, interleaved with the TensorFlow runs,
with the python of ``--torch-python`` (default $ZOO_TORCH_PYTHON, else
.bench-venv/bin/python, bench/flows_speed_torch.py's venv), one JSON line per
measurement.

The networks are those of bench/keras_io_generative.py layer for layer (NCHW;
Keras' "same" padding of strided convolutions, asymmetric where the input is
odd, by :class:`SameConv`; Keras' batch norm momentum and epsilon), as are the
train steps (the VAE's binary cross-entropy and closed-form KL; the DCGAN's
discriminator update on [generated, real] with noisy labels, then the
generator's; WGAN-GP's three critic updates with the gradient penalty at
``alpha ~ N(0, 1)``, then one generator update) and the optimizers (Adam at the
examples' rates and betas). The data are Fashion-MNIST's training images read
from the IDX file the zoo reads (``ZOO_FASHION_MNIST_DIR``, default
/usr/share/datasets/fashion-mnist), in shuffled batches, scaled as each example
scales them. ``--steps`` counts critic updates for WGAN-GP (``--steps / 3`` of
its train steps), as bench/family_speed.py does.

``--worker ddpm`` (bench/family_speed.py's ``--part diffusion``): diffusers'
``UNet2DModel`` configured to the zoo's ``ddpm`` U-Net at its Fashion-MNIST preset
(:func:`ddpm_unet`: levels of 32, 64, 64 channels, one residual block each (two
on the way up), single-head attention at the lowest level and in the middle,
group norm of 8 groups, a 4 * 32 wide timestep embedding), trained as the zoo
trains ``ddpm`` (``DDPMScheduler``'s linear schedule over T = 1000, MSE on the
noise, Adam at the preset's 2e-4, an EMA copy of the weights at the preset's
0.9995 updated after each step; data scaled to [-1, 1]), then sampled by
diffusers' ``DDIMPipeline`` with the EMA copy and a ``DDIMScheduler`` (eta = 0,
``--sample-steps`` steps, clipped x_0 as the zoo's sampler) at ``--sample-batch``
images. Needs ``diffusers`` in the torch venv (``pip install diffusers``).
"""

import argparse
import gzip
import json
import os
import time

import numpy as np

LATENT = {"vae": 2, "dcgan": 128, "wgan_gp": 128}
CRITIC_STEPS = 3  # WGAN-GP's critic updates per train step


def fashion_mnist():
    """Fashion-MNIST's training images, uint8 (60000, 28, 28)."""
    folder = os.environ.get("ZOO_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz")) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def networks(name):
    import torch.nn.functional as F
    from torch import nn

    class SameConv(nn.Conv2d):
        """``Conv2d`` with Keras' "same" padding (extra on the right and bottom)."""

        def forward(self, x):
            k, s = self.kernel_size[0], self.stride[0]
            pads = []
            for size in (x.shape[-1], x.shape[-2]):
                total = max(k - (s if size % s == 0 else size % s), 0)
                pads += [total // 2, total - total // 2]
            return super().forward(F.pad(x, pads))

    def transpose(cin, cout, k):  # Keras' stride-2 "same": output 2x the input
        return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=(k - 1) // 2,
                                  output_padding=1 if k % 2 else 0)

    def bn(channels, dims=2):
        cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        return cls(channels, eps=1e-3, momentum=0.01)

    class Reshape(nn.Module):
        def __init__(self, *shape):
            super().__init__()
            self.shape = shape

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

    class Crop(nn.Module):
        def forward(self, x):
            return x[:, :, 2:-2, 2:-2]

    latent = LATENT[name]
    lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
    if name == "vae":
        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.trunk = nn.Sequential(
                    SameConv(1, 32, 3, stride=2), nn.ReLU(), SameConv(32, 64, 3, stride=2),
                    nn.ReLU(), nn.Flatten(), nn.Linear(7 * 7 * 64, 16), nn.ReLU())
                self.mean, self.log_var = nn.Linear(16, latent), nn.Linear(16, latent)

            def forward(self, x):
                h = self.trunk(x)
                return self.mean(h), self.log_var(h)

        decoder = nn.Sequential(
            nn.Linear(latent, 7 * 7 * 64), nn.ReLU(), Reshape(64, 7, 7),
            transpose(64, 64, 3), nn.ReLU(), transpose(64, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())
        return Encoder(), decoder
    if name == "dcgan":
        discriminator = nn.Sequential(
            SameConv(1, 64, 4, stride=2), lrelu(), SameConv(64, 128, 4, stride=2), lrelu(),
            SameConv(128, 128, 4, stride=2), lrelu(), nn.Flatten(), nn.Dropout(0.2),
            nn.Linear(4 * 4 * 128, 1), nn.Sigmoid())
        generator = nn.Sequential(
            nn.Linear(latent, 7 * 7 * 128), Reshape(128, 7, 7),
            transpose(128, 128, 4), lrelu(), transpose(128, 256, 4), lrelu(),
            nn.Conv2d(256, 1, 5, padding=2), nn.Sigmoid())
        return discriminator, generator
    critic = nn.Sequential(
        nn.ZeroPad2d(2),
        SameConv(1, 64, 5, stride=2), lrelu(),
        SameConv(64, 128, 5, stride=2), lrelu(), nn.Dropout(0.3),
        SameConv(128, 256, 5, stride=2), lrelu(), nn.Dropout(0.3),
        SameConv(256, 512, 5, stride=2), lrelu(),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * 2 * 512, 1))
    layers = [nn.Linear(latent, 4 * 4 * 256, bias=False), bn(4 * 4 * 256, 1), lrelu(),
              Reshape(256, 4, 4)]
    for cin, cout in ((256, 128), (128, 64), (64, 1)):
        layers += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                   bn(cout), nn.Tanh() if cout == 1 else lrelu()]
    generator = nn.Sequential(*layers, Crop())
    return critic, generator


def trainer(name):
    """(train_step(x) -> loss, critic updates per step) for the example `name`."""
    import torch
    import torch.nn.functional as F

    latent = LATENT[name]
    first, second = networks(name)

    def bce(p, y):  # Keras' binary cross-entropy on probabilities (targets may pass 1)
        p = p.clamp(1e-7, 1 - 1e-7)
        return -(y * p.log() + (1 - y) * (1 - p).log()).mean()

    if name == "vae":
        encoder, decoder = first, second
        params = list(encoder.parameters()) + list(decoder.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)

        def step(x):
            mean, log_var = encoder(x)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            reconstruction = decoder(z)
            rec = F.binary_cross_entropy(reconstruction, x, reduction="none").sum((1, 2, 3)).mean()
            kl = (-0.5 * (1 + log_var - mean**2 - log_var.exp())).sum(1).mean()
            loss = rec + kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        return step, 1
    if name == "dcgan":
        disc, gen = first, second
        d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4)
        g_opt = torch.optim.Adam(gen.parameters(), lr=1e-4)

        def step(real):
            batch = real.shape[0]
            with torch.no_grad():
                fake = gen(torch.randn(batch, latent))
            combined = torch.cat([fake, real])
            labels = torch.cat([torch.ones(batch, 1), torch.zeros(batch, 1)])
            labels += 0.05 * torch.rand_like(labels)
            d_loss = bce(disc(combined), labels)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            disc.requires_grad_(False)  # the generator's gradients only, as the example's tape
            g_loss = bce(disc(gen(torch.randn(batch, latent))), torch.zeros(batch, 1))
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            disc.requires_grad_(True)
            return d_loss

        return step, 1
    critic, gen = first, second
    d_opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.9))
    g_opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.9))

    def penalty(real, fake):
        alpha = torch.randn(real.shape[0], 1, 1, 1)
        interpolated = (real + alpha * (fake - real)).requires_grad_(True)
        grads, = torch.autograd.grad(critic(interpolated).sum(), interpolated, create_graph=True)
        return ((grads.square().sum((1, 2, 3)).sqrt() - 1.0) ** 2).mean()

    def step(real):
        batch = real.shape[0]
        for _ in range(CRITIC_STEPS):
            fake = gen(torch.randn(batch, latent)).detach()  # the critic's gradients only
            d_loss = critic(fake).mean() - critic(real).mean() + 10.0 * penalty(real, fake)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
        critic.requires_grad_(False)
        g_loss = -critic(gen(torch.randn(batch, latent))).mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        critic.requires_grad_(True)
        return d_loss

    return step, CRITIC_STEPS


def measure(name, steps, warmup, threads, batch):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = fashion_mnist()
    rng = np.random.default_rng(0)
    step, updates = trainer(name)
    steps, warmup = max(1, steps // updates), max(1, warmup // updates)

    def batches():  # shuffled each epoch, whole batches
        while True:
            order = rng.permutation(len(images))
            for i in range(0, len(images) - batch + 1, batch):
                yield images[order[i:i + batch]]

    it = batches()

    def run(count):
        for _ in range(count):
            x = torch.from_numpy(next(it)).float().unsqueeze(1)
            x = (x - 127.5) / 127.5 if name == "wgan_gp" else x / 255.0
            loss = step(x)
        return loss.item()

    run(warmup)
    start = time.perf_counter()
    loss = run(steps)
    seconds = time.perf_counter() - start
    return {"impl": "torch", "model": name, "threads": threads, "batch": batch, "steps": steps,
            "critic_updates_per_step": updates, "seconds": seconds,
            "examples_per_s": steps * batch * updates / seconds, "loss": loss,
            "framework": f"torch {torch.__version__}"}


# ------------------------------------------------------------------ ddpm
DDPM_EMA = 0.9995  # the zoo's ddpm preset on Fashion-MNIST
DDPM_LEARNING_RATE = 2e-4


def ddpm_unet():
    """diffusers' ``UNet2DModel`` at the size of the zoo's ``ddpm`` U-Net on
    Fashion-MNIST (``channels=32, channel_mults=(1, 2, 2), num_res_blocks=1``)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=64)  # 64 / 64: one head, as the zoo's


def measure_ddpm(steps, warmup, threads, batch, sample_steps, sample_batch):
    """Training examples/s (`steps` timed after `warmup`) and DDIM sampling images/s."""
    import copy

    import diffusers
    import torch
    import torch.nn.functional as F
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = fashion_mnist()
    rng = np.random.default_rng(0)
    unet = ddpm_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    params, ema_params = list(unet.parameters()), list(ema.parameters())
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.Adam(params, lr=DDPM_LEARNING_RATE)

    def step(x):
        noise = torch.randn_like(x)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x.shape[0],))
        loss = F.mse_loss(unet(noise_scheduler.add_noise(x, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1.0 - DDPM_EMA)
        return loss

    def run(count):
        for _ in range(count):
            x = torch.from_numpy(images[rng.integers(0, len(images), batch)]).float()
            loss = step(x.unsqueeze(1) / 127.5 - 1.0)
        return loss.item()

    run(warmup)
    start = time.perf_counter()
    loss = run(steps)
    seconds = time.perf_counter() - start
    pipeline = DDIMPipeline(unet=ema, scheduler=DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=True))
    pipeline.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    pipeline(batch_size=sample_batch, generator=generator, eta=0.0, num_inference_steps=1,
             output_type="np")  # first call, untimed
    start = time.perf_counter()
    samples = pipeline(batch_size=sample_batch, generator=generator, eta=0.0,
                       num_inference_steps=sample_steps, output_type="np").images
    sample_seconds = time.perf_counter() - start
    assert samples.shape == (sample_batch, 28, 28, 1), samples.shape
    return {"impl": "torch", "model": "ddpm", "threads": threads, "batch": batch,
            "steps": steps, "seconds": seconds, "examples_per_s": steps * batch / seconds,
            "loss": loss, "parameters": sum(p.numel() for p in params),
            "sample_batch": sample_batch, "sample_steps": sample_steps,
            "sample_seconds": sample_seconds, "images_per_s": sample_batch / sample_seconds,
            "framework": f"torch {torch.__version__}, diffusers {diffusers.__version__}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=tuple(LATENT) + ("ddpm",), required=True)
    parser.add_argument("--steps", type=int, default=60,
                        help="timed steps (WGAN-GP: critic updates)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--sample-steps", type=int, default=50, help="ddpm: DDIM steps")
    parser.add_argument("--sample-batch", type=int, default=64, help="ddpm: images sampled")
    args = parser.parse_args()
    if args.worker == "ddpm":
        print(json.dumps(measure_ddpm(args.steps, args.warmup, args.threads, args.batch,
                                      args.sample_steps, args.sample_batch)))
        return
    print(json.dumps(measure(args.worker, args.steps, args.warmup, args.threads, args.batch)))


if __name__ == "__main__":
    main()
