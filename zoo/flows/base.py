"""What every normalizing flow of the zoo shares."""

import tensorflow as tf
import tensorflow_probability as tfp

from zoo.base import GenerativeModel, SampleOption
from zoo.metrics.likelihood import bits_per_dim
from zoo.preprocessing import dequantize, logit_bijector
from zoo.validation import on_batches

tfb = tfp.bijectors
tfd = tfp.distributions

# The flows' training defaults on the 2-D densities (each flow registers them
# with ``zoo.datasets.toy.for_each_density``).
TOY_TRAINING = dict(batch_size=256, epochs=20, learning_rate=1e-3, steps_per_epoch=200)


class FlowModel(GenerativeModel):
    """A flow: x = preprocess^-1(f(z)), z ~ N(0, I), trained by maximum likelihood.

    Subclasses implement ``flow_bijector()`` (latent -> preprocessed space, with
    the latent shaped like the data). For images (``num_levels`` set) the data are
    dequantized during training and evaluation, and the logit preprocessing with
    its log-det is part of the model, so ``log_prob`` is the density of dequantized
    data in raw pixel units and ``bits_per_dim`` follows from it directly.

    Args:
        data_shape: shape of one example.
        num_levels: intensity levels of raw image data, None for continuous data.
        logit_alpha: the alpha of the logit preprocessing (images only).
    """

    family = "flow"

    @property
    def draws_training_noise(self):
        """Images are dequantized with noise from the stream; vectors are not."""
        return self.num_levels is not None
    xla_sampling = True
    loss_names = ("loss", "bits_per_dim")
    sample_options = {
        "temperature": SampleOption(1.0, above=0.0,
                                    doc="scale of the base distribution's draw (Glow, Sec. 5)"),
    }

    def __init__(self, data_shape, num_levels=None, logit_alpha=0.05, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.logit_alpha = float(logit_alpha)

    def flow_bijector(self):
        raise NotImplementedError

    def prefers_xla_executions(self):
        """On vectors, yes: a step there is mostly small ops, whose launches XLA
        removes. On 2-D moons (batch 256, 2 CPU cores) ``fit`` ran RealNVP, MAF
        and NSF 2.2x, 2.7x and 4x faster so. Not on images: the VAE's
        convolutions on digits ran 1.4x slower so, and the same comparison for
        RealNVP on digits did not finish in 8 minutes."""
        return len(self.data_shape) == 1

    def reversing_chain(self, steps):
        """Bijectors of flat events chained latent -> data, the order of the
        variables reversed between consecutive ones (``steps[0]`` acts on the
        latent; TFP's Chain applies its list right to left)."""
        reverse = tfb.Permute(list(range(self.event_size))[::-1])
        chain = []
        for i, step in enumerate(steps):
            if i:
                chain.append(reverse)
            chain.append(step)
        return tfb.Chain(chain[::-1])

    def on_data_shape(self, flat):
        """Wraps a bijector of flat ``(D,)`` events so that it acts on data-shaped
        ones (images are flattened inside the flow; the latent keeps their shape)."""
        if len(self.data_shape) == 1:
            return flat
        return tfb.Chain([
            tfb.Reshape(event_shape_out=self.data_shape, event_shape_in=(self.event_size,)),
            flat,
            tfb.Reshape(event_shape_out=(self.event_size,), event_shape_in=self.data_shape),
        ])

    @property
    def likelihood(self):
        """Exact for continuous data; for images, that of the dequantized data."""
        return "exact" if self.num_levels is None else "dequantized"

    @classmethod
    def likelihood_kinds(cls):
        return ("exact", "dequantized")

    @property
    def value_range(self):
        """The support: the logit preprocessing maps it onto the real line.

        It is a little wider than the data's [0, num_levels], so samples can fall
        just outside the data range (clip them for display).
        """
        if self.num_levels is None:
            return super().value_range
        a, levels = self.logit_alpha, self.num_levels
        return (-a * levels / (1 - 2 * a), (1 - a) * levels / (1 - 2 * a))

    @property
    def bijector(self):
        """Latent -> data bijector, preprocessing included."""
        flow = self.flow_bijector()
        if self.num_levels is None:
            return flow
        return tfb.Chain([tfb.Invert(logit_bijector(self.num_levels, self.logit_alpha)), flow])

    @property
    def base_distribution(self):
        return tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=self.data_shape)

    @property
    def distribution(self):
        return tfd.TransformedDistribution(self.base_distribution, self.bijector)

    def call(self, x):
        return self.distribution.log_prob(x)

    # ----------------------------------------------------------- public API
    @on_batches("data")
    def log_prob(self, x):
        """Exact log-density of `x` (nats); for images, of dequantized raw pixels."""
        return self.distribution.log_prob(self.validate_inputs(x, "log_prob"))

    @on_batches("data")
    def nll(self, x, seed=None):
        """-log p(x) per example (nats); images are first dequantized, x + u with
        u ~ U[0, 1) drawn statelessly from `seed`."""
        x = self.validate_inputs(x, "nll")
        if self.num_levels is not None:
            x = dequantize(x, self.stateless_seed(seed))
        return -self.distribution.log_prob(x)

    def bits_per_dim(self, x):
        """-log_prob / (D ln 2) per example."""
        return bits_per_dim(-self.log_prob(x), self.event_size)

    @on_batches("data")
    def encode(self, x):
        """Data -> latent z (the normalizing direction)."""
        return self.bijector.inverse(self.validate_inputs(x, "encode"))

    @on_batches("latent")
    def decode(self, z):
        """Latent z -> data (the generative direction)."""
        return self.bijector.forward(self.check_batch(z, "decode", self.data_shape, what="z"))

    def draw_samples(self, n, seed, temperature=1.0):
        """z from the base distribution, scaled by `temperature`, mapped to data."""
        z = temperature * self.base_distribution.sample(n, seed=seed)
        return self.xla_where_traced("decode", lambda z: self.bijector.forward(z), z)

    # -------------------------------------------------------------- training
    def compute_losses(self, x, training=False):
        if self.num_levels is not None:
            x = dequantize(x, self.rng.next_seed())
        nll = -tf.reduce_mean(self.distribution.log_prob(x))
        return {"loss": nll, "bits_per_dim": bits_per_dim(nll, self.event_size)}

    def data_signatures(self):
        return {
            "log_prob": (lambda x: {"log_prob": self.log_prob(x)}, [self.data_spec()]),
            "encode": (lambda x: {"z": self.encode(x)}, [self.data_spec()]),
            "decode": (lambda z: {"x": self.decode(z)}, [self.data_spec("z")]),
        }


class TransformStackFlow(FlowModel):
    """A flow that is a stack of ``num_layers`` transforms of one Keras layer type
    (``transform_layer``, whose ``bijector()`` maps latent -> data side), on vectors.

    Planar and radial flows are this with different layers.
    """

    transform_layer = None  # set by subclasses
    mixed_precision_refusal = ("its transforms have no neural network to compute in half "
                               "precision, only float32 arithmetic")

    def __init__(self, data_shape=(2,), num_levels=None, num_layers=32, logit_alpha=0.05,
                 **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        kind = type(self).__name__
        if len(self.data_shape) != 1:
            raise ValueError(f"{kind}: expected data_shape (D,), got {self.data_shape}")
        if num_layers < 1:
            raise ValueError(f"{kind}: expected num_layers >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.transforms = [self.transform_layer(self.event_size, name=f"{self.name}_{i}")
                           for i in range(num_layers)]
        self.build_model()

    def flow_bijector(self):
        """Latent -> data; TFP's Chain applies its list right to left."""
        return tfb.Chain([t.bijector() for t in reversed(self.transforms)])
