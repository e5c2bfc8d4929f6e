"""The PyTorch peers of bench/family_speed.py's part "autoregressive": a
PixelCNN of the zoo's ``pixelcnn`` digits preset and a minGPT of its
``transformer`` fortunes preset, in plain PyTorch; training examples/s and
sampling examples/s.

Runs in its own venv (never in the zoo's), e.g. the one of
bench/family_speed_torch.py:

    ~/venvs/torch/bin/python bench/autoregressive_speed_torch.py --worker pixelcnn --threads 1

bench/family_speed.py runs it that way (``--part autoregressive``),
interleaved with the zoo's runs, one JSON line per measurement. ``--check``
tests the peers instead: each PixelCNN output depends on the pixels before it
only, and the cached step gives minGPT's logits at every position.

The peers, layer for layer the sizes of the zoo's presets:

* ``pixelcnn`` (van den Oord, Kalchbrenner & Kavukcuoglu 2016, the reference
  PixelCNN): 8x8x1 images of 17 levels scaled to [-1, 1]; a 5x5 convolution of
  mask A to 64 channels, 4 residual blocks (ReLU, 1x1 to 32, ReLU, 3x3 mask B,
  ReLU, 1x1 back to 64: the paper's Fig. 5), ReLU, 1x1 to 64, ReLU, 1x1 to the
  17-way logits; the masks multiply the kernels at each call, as the zoo's
  ``MaskedConv2D``. Sampling the reference way: the whole network on the
  whole batch for each of the 64 pixels (``naive``), under ``torch.no_grad``.
* ``transformer``: Karpathy's minGPT (github.com/karpathy/minGPT, ``model.py``):
  token and learned position embeddings, pre-norm blocks of causal
  self-attention (one ``c_attn`` linear to q, k, v; the masked softmax written
  out) and a 4x GELU MLP, a final layer norm, a bias-free head; no dropout.
  n_layer 4, n_head 4, n_embd 128, block_size 128, 256 byte symbols, plus a
  start symbol in the token embedding (the zoo's decoder reads the symbol
  before each position, a start symbol at the first), so both train on the
  same 128 predictions per sequence. Sampling 128 symbols after the start
  symbol: minGPT's ``generate`` (``nocache``: the whole sequence so far at each
  step, no cache) and a step with a key/value cache (``cache``: one position's
  work per step; preallocated keys and values per block).

Training: Adam at 1e-3 (the presets' rate), the presets' batch (64), the loss
the zoo's (the NLL summed over dimensions, averaged over the batch), on
uniformly random levels (speed does not depend on the values; the zoo trains
on the datasets). Timing: ``--warmup`` steps, then ``--steps`` timed; sampling
one untimed draw of ``-n`` examples, then ``--sample-repeats`` timed.

What still differs from the zoo's models (same layers, same sizes): minGPT's
GELU is the tanh approximation (the zoo's the exact one), its embeddings a
lookup (the zoo's a one-hot product, for dense gradients), its head has no bias
(256 parameters fewer), its trainer's AdamW, weight decay and gradient clipping
are left out (Adam, as the zoo's); its ``generate`` runs the sequence drawn so
far (1 to 128 positions), the zoo's loop without cache all 128 at every step,
and the zoo's cached step attends over the whole preallocated cache, masked,
where the peer's attends over the positions so far (fixed shapes in a
``tf.while_loop``).
"""

import argparse
import json
import math
import time

MODELS = ("pixelcnn", "transformer")
# The zoo's presets (zoo/autoregressive: pixelcnn digits, transformer fortunes).
PIXELCNN = dict(shape=(8, 8), levels=17, filters=64, num_blocks=4, output_units=64,
                first_kernel=5, kernel=3)
MIN_GPT = dict(length=128, levels=256, n_layer=4, n_head=4, n_embd=128)


def pixelcnn():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class MaskedConv2d(nn.Conv2d):
        """A "same" convolution of one data channel whose kernel is masked: the
        rows above and the pixels to the left (and the pixel itself: mask B)."""

        def __init__(self, cin, cout, k, mask_type):
            super().__init__(cin, cout, k, padding=k // 2)
            mask = torch.ones_like(self.weight)
            c = k // 2
            mask[:, :, c, c + (mask_type == "B"):] = 0
            mask[:, :, c + 1:] = 0
            self.register_buffer("mask", mask)

        def forward(self, x):
            return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    class PixelCNN(nn.Module):
        def __init__(self, filters, num_blocks, output_units, levels, first_kernel, kernel,
                     **_):
            super().__init__()
            half = filters // 2
            self.first = MaskedConv2d(1, filters, first_kernel, "A")
            self.blocks = nn.ModuleList(
                nn.ModuleList([MaskedConv2d(filters, half, 1, "B"),
                               MaskedConv2d(half, half, kernel, "B"),
                               MaskedConv2d(half, filters, 1, "B")])
                for _ in range(num_blocks))
            self.hidden = MaskedConv2d(filters, output_units, 1, "B")
            self.out = MaskedConv2d(output_units, levels, 1, "B")

        def forward(self, x):
            h = self.first(x)
            for a, b, c in self.blocks:
                h = h + c(F.relu(b(F.relu(a(F.relu(h))))))
            return self.out(F.relu(self.hidden(F.relu(h))))

    return PixelCNN(**PIXELCNN)


def min_gpt():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, n_head, block_size):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.n_head, self.n_embd = n_head, n_embd
            self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                                 .view(1, 1, block_size, block_size))

        def heads(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                    for t in (q, k, v)]

        def forward(self, x):  # minGPT's
            B, T, C = x.size()
            q, k, v = self.heads(x)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

        def step(self, x, t, cache):
            """Position `t` alone, `x` (B, 1, C); `cache` the keys and values
            (B, nh, block_size, hs) of positions < t, position t written in."""
            B, _, C = x.size()
            q, k, v = self.heads(x)
            keys, values = cache
            keys[:, :, t] = k[:, :, 0]
            values[:, :, t] = v[:, :, 0]
            att = (q @ keys[:, :, :t + 1].transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            y = F.softmax(att, dim=-1) @ values[:, :, :t + 1]
            return self.c_proj(y.transpose(1, 2).reshape(B, 1, C))

    class Block(nn.Module):
        def __init__(self, n_embd, n_head, block_size):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention(n_embd, n_head, block_size)
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd),
                                          c_proj=nn.Linear(4 * n_embd, n_embd)))

        def mlpf(self, x):  # minGPT's NewGELU is GELU's tanh approximation
            return self.mlp.c_proj(F.gelu(self.mlp.c_fc(x), approximate="tanh"))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlpf(self.ln_2(x))

        def step(self, x, t, cache):
            x = x + self.attn.step(self.ln_1(x), t, cache)
            return x + self.mlpf(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, length, levels, n_layer, n_head, n_embd):
            super().__init__()
            self.block_size, self.start = length, levels
            self.n_head, self.n_embd = n_head, n_embd
            self.wte = nn.Embedding(levels + 1, n_embd)  # + the start symbol
            self.wpe = nn.Embedding(length, n_embd)
            self.h = nn.ModuleList(Block(n_embd, n_head, length) for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, levels, bias=False)

        def forward(self, idx):
            pos = torch.arange(idx.size(1), device=idx.device)
            x = self.wte(idx) + self.wpe(pos)[None]
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

        @torch.no_grad()
        def generate(self, idx, max_new_tokens):  # minGPT's, at temperature 1, no top-k
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
                logits = self(idx_cond)[:, -1, :]
                idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
                idx = torch.cat((idx, idx_next), dim=1)
            return idx

        @torch.no_grad()
        def generate_cached(self, n):
            """`n` sequences of block_size symbols, one position per step."""
            hs = self.n_embd // self.n_head
            caches = [(torch.zeros(n, self.n_head, self.block_size, hs),
                       torch.zeros(n, self.n_head, self.block_size, hs)) for _ in self.h]
            previous = torch.full((n, 1), self.start, dtype=torch.long)
            out = []
            for t in range(self.block_size):
                x = self.wte(previous) + self.wpe.weight[t]
                for block, cache in zip(self.h, caches):
                    x = block.step(x, t, cache)
                logits = self.lm_head(self.ln_f(x))[:, -1, :]
                previous = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
                out.append(previous)
            return torch.cat(out, dim=1)

    return GPT(**MIN_GPT)



def trainer(name, batch):
    """(network, train_step(), a random batch's symbols per example)."""
    import torch
    import torch.nn.functional as F

    if name == "pixelcnn":
        net = pixelcnn()
        levels, shape = PIXELCNN["levels"], PIXELCNN["shape"]

        def loss_of():
            x = torch.randint(0, levels, (batch, 1) + shape)
            logits = net(2.0 * x.float() / (levels - 1) - 1.0)
            return F.cross_entropy(logits, x[:, 0], reduction="sum") / batch
    else:
        net = min_gpt()
        levels, length = MIN_GPT["levels"], MIN_GPT["length"]

        def loss_of():
            x = torch.randint(0, levels, (batch, length))
            inputs = torch.cat([torch.full((batch, 1), levels), x[:, :-1]], dim=1)
            logits = net(inputs)
            return F.cross_entropy(logits.reshape(-1, levels), x.reshape(-1),
                                   reduction="sum") / batch
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        loss = loss_of()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return net, step


def samplers(name, net):
    """{variant: draw(n)} and the symbols per example."""
    import torch
    import torch.nn.functional as F

    if name == "pixelcnn":
        levels, (height, width) = PIXELCNN["levels"], PIXELCNN["shape"]

        @torch.no_grad()
        def naive(n):
            x = torch.zeros(n, 1, height, width)
            for i in range(height):
                for j in range(width):
                    logits = net(2.0 * x / (levels - 1) - 1.0)[:, :, i, j]
                    x[:, 0, i, j] = torch.multinomial(F.softmax(logits, -1), 1)[:, 0].float()
            return x

        return {"naive": naive}, height * width
    length, start = MIN_GPT["length"], MIN_GPT["levels"]
    return {"cache": net.generate_cached,
            "nocache": lambda n: net.generate(torch.full((n, 1), start), length)}, length


def measure(name, threads, batch, steps, warmup, n, sample_repeats):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, step = trainer(name, batch)
    params = sum(p.numel() for p in net.parameters())
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss = loss.item()
    seconds = time.perf_counter() - start
    net.eval()
    sampling = {}
    draws, symbols = samplers(name, net)
    for variant, draw in draws.items():
        draw(n)
        start = time.perf_counter()
        for _ in range(sample_repeats):
            draw(n)
        per_draw = (time.perf_counter() - start) / sample_repeats
        sampling[variant] = {"examples_per_s": n / per_draw,
                             "symbols_per_s": n * symbols / per_draw}
    return {"impl": "torch", "model": name, "threads": threads, "parameters": params,
            "batch": batch, "steps": steps, "seconds": seconds,
            "examples_per_s": steps * batch / seconds, "loss": loss, "n": n,
            "symbols_per_example": symbols, "sampling": sampling,
            "framework": f"torch {torch.__version__}"}


def check():
    """The peers are what they should be: each PixelCNN output depends only on
    the pixels before it in raster order (gradients), and the cached step gives
    minGPT's logits at every position. Raises AssertionError if not."""
    import torch

    torch.manual_seed(0)
    net = pixelcnn()
    height, width = PIXELCNN["shape"]
    x = torch.randn(1, 1, height, width, requires_grad=True)
    out = net(x)
    for i in range(height * width):
        grad, = torch.autograd.grad(out[0, :, i // width, i % width].sum(), x, retain_graph=True)
        seen = (grad.flatten() != 0).nonzero().flatten().tolist()
        assert all(k < i for k in seen) and (i == 0 or seen), (i, seen)
    gpt = min_gpt().eval()
    levels, length = MIN_GPT["levels"], MIN_GPT["length"]
    inputs = torch.cat([torch.full((3, 1), levels), torch.randint(0, levels, (3, length - 1))], 1)
    hs = MIN_GPT["n_embd"] // MIN_GPT["n_head"]
    caches = [(torch.zeros(3, MIN_GPT["n_head"], length, hs),
               torch.zeros(3, MIN_GPT["n_head"], length, hs)) for _ in gpt.h]
    with torch.no_grad():
        full = gpt(inputs)
        for t in range(length):
            h = gpt.wte(inputs[:, t:t + 1]) + gpt.wpe.weight[t]
            for block, cache in zip(gpt.h, caches):
                h = block.step(h, t, cache)
            step = gpt.lm_head(gpt.ln_f(h))[:, 0]
            assert torch.allclose(step, full[:, t], atol=1e-4), (t, (step - full[:, t]).abs().max())
    print("ok: the PixelCNN is causal; the cached steps give minGPT's logits")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=MODELS)
    parser.add_argument("--check", action="store_true",
                        help="check the peers (causal, the cache exact) and exit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("-n", type=int, default=16, help="examples per draw")
    parser.add_argument("--sample-repeats", type=int, default=1)
    args = parser.parse_args()
    if args.check:
        return check()
    if not args.worker:
        parser.error("expected --worker MODEL or --check")
    print(json.dumps(measure(args.worker, args.threads, args.batch, args.steps, args.warmup,
                             args.n, args.sample_repeats)))


if __name__ == "__main__":
    main()
