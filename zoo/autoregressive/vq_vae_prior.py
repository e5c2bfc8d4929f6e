"""A learned prior over a trained VQ-VAE's codes (van den Oord, Vinyals &
Kavukcuoglu 2017, Sec. 3.2): a Gated PixelCNN over the code maps."""

import math

import keras
import tensorflow as tf

from zoo import validation
from zoo.autoregressive.gated_pixelcnn import GatedPixelCNNNetwork
from zoo.base import GenerativeModel, SampleOption
from zoo.distributions import Categorical
from zoo.metrics.likelihood import NonFiniteMetricError, bits_per_dim
from zoo.registry import register
from zoo.two_stage import TwoStage
from zoo.validation import on_batches


@register(
    "vq_vae_prior",
    presets={
        "digits": dict(filters=32, num_layers=4, output_units=64),
        "fashion_mnist": dict(filters=64, num_layers=8, output_units=128),
    },
    training={
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class VQVAEPrior(TwoStage, GenerativeModel):
    """A Gated PixelCNN prior p(c) over the code maps of a trained, frozen VQ-VAE.

    van den Oord, Vinyals & Kavukcuoglu, "Neural Discrete Representation
    Learning", NeurIPS 2017, https://arxiv.org/abs/1711.00937 (Sec. 3.2: after
    training, an autoregressive prior is fitted to the codes ``encode`` gives).
    The prior is the network of Gated PixelCNN (van den Oord et al., "Conditional
    Image Generation with PixelCNN Decoders", NeurIPS 2016,
    https://arxiv.org/abs/1606.05328) on the one-hot codes, with a categorical
    over the K codes at each position of the (h, w) grid, in raster order; it is
    trained by maximum likelihood on the first stage's codes of the training data.
    Only the prior is trained: the VQ-VAE is a frozen sub-layer (its weights are
    in every checkpoint and export, and are not trainable).

    The VQ-VAE's posterior is one-hot, so its KL to a prior is -log p(c(x)): the
    bound ``nll`` reports is ``-log p(x | z_q(x)) - log p(c(x))`` (nats), the
    VQ-VAE's own bound with the learned prior in place of the uniform one, whose
    KL is the constant N log K (``evidence`` gives both). Sampling draws a code
    map from the prior (one compiled loop over the N positions, each draw
    tempered by ``temperature``), then x ~ p(x | z_q) through the VQ-VAE's
    decoder.

    Build it with a trained first stage: ``zoo.get("vq_vae_prior",
    dataset="digits", first_stage=vq)`` (the model is copied, not changed), or
    ``zoo train vq_vae_prior --first-stage RUN`` (:func:`zoo.runs.load_first_stage`).

    Args:
        data_shape, num_levels: the dataset's (the first stage's).
        first_stage: a trained ``vq_vae`` (its weights are copied), or
            ``{"model": "vq_vae", "config": config}`` as ``get_config`` gives it
            (the weights then come from a checkpoint).
        num_embeddings: K, the first stage's codebook size (None: the first
            stage's; another value is an error).
        filters: channels of each stack of the Gated PixelCNN.
        num_layers: its gated layers.
        output_units: channels of its hidden output layer.
        kernel: side of its vertical stack's window (odd).

    Losses (``loss_names``): ``loss``, -log p(c) of the codes (nats per example),
    and ``bits_per_code``, the same in bits per code.
    """

    family = "autoregressive"
    likelihood = "bound"
    loss_names = ("loss", "bits_per_code")
    first_stage_kinds = ("vq_vae",)
    sample_options = {
        "temperature": SampleOption(1.0, above=0.0,
                                    doc="divides the logits of every code's conditional "
                                        "(1: the prior's distribution)"),
    }

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, first_stage=None,
                 num_embeddings=None, filters=32, num_layers=4, output_units=64, kernel=3,
                 **kwargs):
        kwargs.setdefault("name", "vq_vae_prior")
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.first_stage_model = self.make_first_stage(first_stage, self.data_shape,
                                                       self.num_levels)
        self.first_stage_model.trainable = False
        codebook = self.first_stage_model.num_embeddings
        if num_embeddings is not None and int(num_embeddings) != codebook:
            raise ValueError(f"VQVAEPrior: expected a first stage with a codebook of "
                             f"num_embeddings={int(num_embeddings)} codes, got one of "
                             f"{codebook}")
        self.num_embeddings = codebook
        self.filters = int(filters)
        self.num_layers = int(num_layers)
        self.output_units = int(output_units)
        self.kernel = int(kernel)
        if min(self.filters, self.num_layers, self.output_units) < 1:
            raise ValueError(f"VQVAEPrior: expected filters, num_layers and output_units "
                             f">= 1, got {filters}, {num_layers}, {output_units}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"VQVAEPrior: expected an odd kernel >= 1, got {kernel}")
        # One "channel" per position (the code); its one-hot K inputs are one group.
        self.network = GatedPixelCNNNetwork(self.filters, self.num_layers, self.output_units,
                                            self.num_embeddings, 1, self.kernel, name="network")
        # The categorical over the K codes of a position, which draws them.
        self.code_model = Categorical(self.num_embeddings)
        self.build_model()

    # ------------------------------------------------------------ the first stage
    @property
    def latent_shape(self):
        """The grid (h, w) of code indices."""
        return tuple(self.first_stage_model.latent_shape)

    @property
    def num_latents(self):
        """N = h * w, the codes per example (the first stage's)."""
        return self.first_stage_model.num_latents

    @property
    def integer_input_ranges(self):
        """[low, high) of the integer inputs of the serving signatures: the first
        stage's codes (its codebook size is this model's ``num_embeddings``)."""
        return self.first_stage_model.integer_input_ranges

    # ------------------------------------------------------------ the prior
    def call(self, x):
        """log p(c) of the codes of `x` (touches every weight; used to build)."""
        return self.code_log_prob_of(self.codes_of(x))

    def codes_of(self, x):
        """The first stage's codes of checked raw levels `x`: int32 (B, h, w)."""
        first = self.first_stage_model
        return tf.stop_gradient(first.posterior(first.deterministic_observed(x)))

    def logits(self, codes):
        """The prior's logits (B, N, K) of every code given those before it in
        raster order."""
        one_hot = tf.one_hot(codes, self.num_embeddings)
        logits = self.network(one_hot)
        return tf.reshape(logits, [-1, self.num_latents, self.num_embeddings])

    def conditionals_of(self, codes):
        """log p(c_i | c_<i) per position (B, N) of checked codes."""
        log_p = tf.nn.log_softmax(self.logits(codes))
        flat = tf.reshape(codes, [-1, self.num_latents])
        return tf.gather(log_p, flat, axis=-1, batch_dims=2)

    def code_log_prob_of(self, codes):
        """log p(c) per example of checked codes."""
        return tf.reduce_sum(self.conditionals_of(codes), axis=-1)

    def check_codes(self, codes, where):
        """A batch of code indices (batch, h, w) of an integer dtype in [0, K), as
        int32 (:func:`zoo.validation.check_codes`)."""
        return validation.check_codes(codes, f"{self.name}.{where}", self.latent_shape,
                                      self.num_embeddings)

    def validate_inputs(self, x, where="input", values=True):
        """Raw data: ``(batch,) + data_shape``, integer levels in [0, num_levels - 1]."""
        return self.check_batch(x, where, self.data_shape, self.value_range,
                                what="raw pixel values", integers=True, values=values)

    # -------------------------------------------------------------- training
    def compute_losses(self, x, training=False):
        nll = -tf.reduce_mean(self.code_log_prob_of(self.codes_of(x)))
        return {"loss": nll, "bits_per_code": nll / (self.num_latents * math.log(2.0))}

    # ----------------------------------------------------------- the bound
    def evidence_terms(self, x, seed):
        """The first stage's reconstruction term -log p(x | z_q(x)), the KL to the
        learned prior -log p(c(x)) and to the uniform one N log K, per example, of
        checked levels `x` (any data noise of the observation model from `seed`)."""
        first = self.first_stage_model
        data_seed, z_seed = first.split_seed(seed, 2)
        observed = first.observed(x, seed=data_seed)
        latents = first.infer(observed, z_seed, 1)
        reconstruction = -first.decoder_log_prob(observed, latents["z"])[0]
        kl = -self.code_log_prob_of(latents["codes"])
        return reconstruction, kl, latents["kl"][0]

    @on_batches("data")
    def evidence(self, x, seed=None):
        """The VQ-VAE's ELBO with the learned prior per example and its terms
        (nats): ``{"elbo", "reconstruction", "kl"}`` (kl = -log p(c(x))), and
        ``uniform_elbo`` and ``uniform_kl`` (N log K), the bound with the VQ-VAE's
        uniform prior."""
        x = self.validate_inputs(x, "elbo")
        reconstruction, kl, uniform = self.evidence_terms(x, self.stateless_seed(seed))
        return {"elbo": -reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
                "uniform_elbo": -reconstruction - uniform, "uniform_kl": uniform}

    @on_batches("data")
    def nll(self, x, seed=None):
        """The negative ELBO with the learned prior per example (nats), an upper
        bound on -log p(x)."""
        reconstruction, kl, _ = self.evidence_terms(self.validate_inputs(x, "nll"),
                                                    self.stateless_seed(seed))
        return reconstruction + kl

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """``uniform_prior``: the same bound with the VQ-VAE's uniform prior over
        the same examples as ``nll_nats`` (``nll_examples``), beside the two KL
        terms, so that what the learned prior gains is read off one file."""
        terms = tf.function(lambda batch, step: self.evidence(
            batch, seed=tf.stack([tf.constant(seed), step])))
        limit = settings.get("nll_examples")
        totals, count = {"elbo": 0.0, "kl": 0.0, "uniform_elbo": 0.0}, 0
        for step, batch in enumerate(data):
            if limit is not None and count >= limit:
                break
            batch = batch[0] if isinstance(batch, (tuple, list)) else batch
            batch = batch if limit is None else batch[:limit - count]
            values = terms(batch, tf.constant(step))
            for key in totals:
                totals[key] += float(tf.reduce_sum(values[key]))
            count += int(tf.shape(batch)[0])
        means = {key: value / max(count, 1) for key, value in totals.items()}
        if not all(math.isfinite(v) for v in means.values()):
            raise NonFiniteMetricError(f"{self.name}: the bounds over {count} examples are "
                                       f"{means}")
        uniform = -means["uniform_elbo"]
        return {"uniform_prior": {
            "num_examples": count,
            "nll_nats": uniform,
            "bits_per_dim": bits_per_dim(uniform, self.event_size),
            "kl_nats": self.num_latents * math.log(self.num_embeddings),
            "learned_kl_nats": means["kl"],
            "bound": "negative ELBO of the first stage with its uniform prior over codes "
                     "(KL N log K), an upper bound on the NLL",
        }}

    # ------------------------------------------------------------ public API
    @on_batches("data")
    def encode(self, x):
        """The first stage's code indices of raw levels `x`: int32 (batch, h, w)."""
        return self.codes_of(self.validate_inputs(x, "encode"))

    def on_codes(self, codes, where, fn):
        """``fn`` of checked `codes`; an empty batch gives an empty result (``fn``
        runs on one map of zeros, cut to none)."""
        codes = self.check_codes(codes, where)
        one = tf.zeros((1, *self.latent_shape), tf.int32)
        if tf.executing_eagerly():
            return fn(one)[:0] if codes.shape[0] == 0 else fn(codes)
        size = tf.shape(codes)[0]
        return fn(tf.cond(tf.equal(size, 0), lambda: one, lambda: codes))[:size]

    def code_log_prob(self, codes):
        """log p(c) (nats) of code maps (batch, h, w) under the learned prior."""
        return self.on_codes(codes, "code_log_prob", self.code_log_prob_of)

    def conditional_log_probs(self, codes):
        """log p(c_i | c_<i) (nats) per code ``(batch, h * w)`` in raster order: the
        causal structure seen from outside."""
        return self.on_codes(codes, "conditional_log_probs", self.conditionals_of)

    def decode(self, codes):
        """Code maps (batch, h, w) -> the first stage decoder's mean image."""
        return self.first_stage_model.decode(self.check_codes(codes, "decode"))

    def draw_codes(self, n, seed, temperature=1.0):
        """`n` code maps from the prior: each position in raster order drawn from
        its conditional (logits divided by `temperature`) given those before it,
        by the inverse CDF of its own uniform (``Categorical.sample_from_noise``),
        the uniforms drawn from the stateless `seed` before the loop. One
        ``tf.while_loop``, compiled at every call: under XLA where ``xla_sampling``
        says it wins, outside the serving signatures
        (:meth:`~zoo.serving.Serving.xla_where_traced`), else a plain graph."""
        n = tf.convert_to_tensor(n, tf.int32)
        noise = self.code_model.noise(tf.stack([n, self.num_latents]), tf.cast(seed, tf.int32))
        return self.xla_where_traced("codes", self._code_loop, noise,
                                     tf.convert_to_tensor(temperature, tf.float32), loop=True)

    def _code_loop(self, noise, temperature):
        size = self.num_latents
        n = tf.shape(noise)[0]
        shape = tf.stack([n, *self.latent_shape])

        def body(i, flat):
            logits = self.code_model.temper(
                tf.gather(self.logits(tf.reshape(flat, shape)), i, axis=1), temperature)
            drawn = tf.cast(self.code_model.sample_from_noise(logits, noise[:, i][:, None]),
                            tf.int32)[:, 0]
            here = tf.equal(tf.range(size), i)[None]
            return i + 1, tf.where(here, drawn[:, None], flat)

        _, flat = tf.while_loop(lambda i, _: i < size, body,
                                (tf.constant(0), tf.zeros(tf.stack([n, size]), tf.int32)),
                                maximum_iterations=size, parallel_iterations=1)
        return tf.reshape(flat, shape)

    def draw_samples(self, n, seed, temperature=1.0):
        """A code map from the prior, then x ~ p(x | z_q) of the first stage, as
        integer levels."""
        code_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        codes = self.draw_codes(n, code_seed, temperature)
        first = self.first_stage_model
        return first.decoder_sample(first.decoder_params(first.embed(codes)), x_seed)

    def data_signatures(self):
        codes = tf.TensorSpec((None, *self.latent_shape), tf.int32, name="codes")
        seed = tf.TensorSpec([], tf.int32, name="seed")
        return {
            "elbo": (lambda x, seed: self.evidence(x, seed), [self.data_spec(), seed]),
            "encode": (lambda x: {"codes": self.encode(x)}, [self.data_spec()]),
            "code_log_prob": (lambda codes: {"log_prob": self.code_log_prob(codes)}, [codes]),
            "conditional_log_probs": (
                lambda codes: {"log_probs": self.conditional_log_probs(codes)}, [codes]),
            "decode": (lambda codes: {"x": self.decode(codes)}, [codes]),
        }
