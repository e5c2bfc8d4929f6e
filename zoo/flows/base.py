"""What every normalizing flow of the zoo shares."""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from zoo.base import GenerativeModel, SampleOption
from zoo.metrics.likelihood import bits_per_dim
from zoo.nn.class_conditional_gaussian import ClassConditionalGaussian
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

    Class-conditional (``num_classes > 0``): the latent of class y is
    ``z = loc_y + exp(log_scale_y) * e``, ``e`` from the base distribution, with
    learned ``loc_y`` and ``log_scale_y`` (a class-conditional prior, as Glow's,
    Kingma & Dhariwal 2018, Sec. 5; :class:`ClassConditionalGaussian`), and the
    flow itself shared by all classes. ``log_prob(x, labels)`` is then log p(x | y);
    without labels, ``log_prob`` and ``nll`` give log p(x) under classes uniform a
    priori, ``logsumexp_y log p(x | y) - log K``, an exact density too.

    Args:
        data_shape: shape of one example.
        num_levels: intensity levels of raw image data, None for continuous data.
        logit_alpha: the alpha of the logit preprocessing (images only).
        (others): as :class:`~zoo.base.GenerativeModel` (``num_classes``).
    """

    family = "flow"
    conditional = True

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
        self.class_prior = (ClassConditionalGaussian(self.num_classes, self.data_shape,
                                                     name="class_prior")
                            if self.num_classes else None)

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

    def distribution_given(self, labels):
        """p(x | y) for a batch of classes `labels` (the class's prior shift and
        scale, then the flow); ``distribution`` for None."""
        if labels is None:
            return self.distribution
        loc, log_scale = self.class_prior(labels)
        prior = tfb.Chain([tfb.Shift(loc), tfb.Scale(log_scale=log_scale)])
        return tfd.TransformedDistribution(self.base_distribution,
                                           tfb.Chain([self.bijector, prior]))

    def conditional_log_prob(self, x, labels):
        """log p(x | y); for a conditional model without labels, log p(x) with
        classes uniform a priori (the mixture over every class)."""
        if not self.num_classes or labels is not None:
            return self.distribution_given(labels).log_prob(x)
        batch = tf.shape(x)[0]
        per_class = tf.stack([
            self.distribution_given(tf.fill(tf.stack([batch]), k)).log_prob(x)
            for k in range(self.num_classes)])
        return tf.reduce_logsumexp(per_class, axis=0) - math.log(self.num_classes)

    def call(self, x):
        if self.num_classes:
            return self.distribution_given(tf.zeros(tf.shape(x)[:1], tf.int32)).log_prob(x)
        return self.distribution.log_prob(x)

    # ----------------------------------------------------------- public API
    @on_batches("data")
    def log_prob(self, x, labels=None):
        """Exact log-density of `x` (nats); for images, of dequantized raw pixels.
        A conditional model gives log p(x | y) for `labels`, and without them
        log p(x) under uniform classes."""
        x = self.validate_inputs(x, "log_prob")
        labels = None if labels is None else self.check_labels(labels, x, "log_prob")
        return self.conditional_log_prob(x, labels)

    @on_batches("data")
    def nll(self, x, seed=None, labels=None):
        """-log p(x) per example (nats); images are first dequantized, x + u with
        u ~ U[0, 1) drawn statelessly from `seed`. A conditional model: -log p(x | y)
        for `labels`, else -log p(x) under uniform classes."""
        x = self.validate_inputs(x, "nll")
        labels = None if labels is None else self.check_labels(labels, x, "nll")
        if self.num_levels is not None:
            x = dequantize(x, self.stateless_seed(seed))
        return -self.conditional_log_prob(x, labels)

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

    def draw_samples(self, n, seed, temperature=1.0, label=-1):
        """z from the base distribution, scaled by `temperature` (and for a
        conditional model moved to the class's prior: `label`, or classes drawn
        uniformly for -1), mapped to data."""
        z = temperature * self.base_distribution.sample(n, seed=seed)
        if self.num_classes:
            labels = self.sample_labels(n, tf.random.experimental.stateless_fold_in(seed, 1),
                                        label)
            loc, log_scale = self.class_prior(labels)
            z = loc + tf.exp(log_scale) * z
        return self.xla_where_traced("decode", lambda z: self.bijector.forward(z), z)

    # -------------------------------------------------------------- training
    def compute_losses(self, x, training=False, labels=None):
        if self.num_levels is not None:
            x = dequantize(x, self.rng.next_seed())
        nll = -tf.reduce_mean(self.conditional_log_prob(x, labels))
        return {"loss": nll, "bits_per_dim": bits_per_dim(nll, self.event_size)}

    def data_signatures(self):
        if self.num_classes:
            log_prob = (lambda x, label: {"log_prob": self.log_prob(x, label)},
                        [self.data_spec(), self.label_spec()])
        else:
            log_prob = (lambda x: {"log_prob": self.log_prob(x)}, [self.data_spec()])
        return {
            "log_prob": log_prob,
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
