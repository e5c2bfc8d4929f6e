"""JEM: a classifier whose logits define an energy-based model of the data."""

import os

import keras
import numpy as np
import tensorflow as tf

from zoo import plotting
from zoo.energy.base import ContrastiveDivergence
from zoo.energy.networks import EnergyNetwork
from zoo.registry import register
from zoo.validation import on_batches

# Expected calibration error's bins (Guo et al. 2017 use 15, as does JEM, Sec. 5.2).
ECE_BINS = 15


@register(
    "jem",
    presets={
        "digits": dict(num_classes=10, filters=32, num_downsamplings=2, step_size=2.0,
                       num_steps=20, noise=0.01, regularizer=0.1, spectral_norm=False),
        "fashion_mnist": dict(num_classes=10, filters=32, num_downsamplings=2, step_size=2.0,
                              num_steps=20, noise=0.01, regularizer=0.1, spectral_norm=False),
    },
    training={
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-4),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-4),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class JEM(ContrastiveDivergence):
    """Joint Energy-based Model: a classifier ``f(x)`` (logits over
    ``num_classes``) read as the energies ``E(x, y) = -f(x)[y]`` and
    ``E(x) = -logsumexp_y f(x)[y]``.

    Grathwohl, Wang, Jacobsen, Duvenaud, Norouzi & Swersky, "Your Classifier
    is Secretly an Energy Based Model and You Should Treat it Like One", ICLR
    2020, https://arxiv.org/abs/1912.03263: trained on the cross-entropy of
    p(y | x) plus the contrastive divergence of p(x) on SGLD samples from a
    replay buffer (5% restarted from uniform noise), Algorithm 1. It classifies
    (the ``classify`` signature; ``zoo evaluate`` reports test accuracy and
    expected calibration error) and generates, class-conditionally with the
    sampler option ``label`` (Langevin on ``E(x, y)``; -1: classes at random).
    It needs labelled data: images with classes (digits, Fashion-MNIST).

    Args:
        num_classes: the classes (>= 2).
        filters, num_downsamplings, activation, spectral_norm: the classifier
            (:class:`~zoo.energy.networks.EnergyNetwork` with ``num_classes``
            outputs; JEM's Wide ResNet has no batch norm, nor has this).
        (others): :class:`~zoo.energy.base.ContrastiveDivergence`.
    """

    conditional = True
    evaluation_labels = True
    loss_names = ("loss", "cross_entropy", "contrastive_divergence", "energy_regularizer")

    def __init__(self, data_shape=(8, 8, 1), num_levels=17, num_classes=10, filters=32,
                 num_downsamplings=2, activation="swish", spectral_norm=False, **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         num_classes=num_classes, **kwargs)
        if self.num_classes < 2:
            raise ValueError(f"JEM: a classifier needs num_classes >= 2, got {num_classes}")
        if self.data_kind != "images":
            raise ValueError(f"JEM: expected images (H, W, C) with num_levels, got data_shape "
                             f"{self.data_shape} and num_levels {self.num_levels}")
        self.filters = int(filters)
        self.num_downsamplings = int(num_downsamplings)
        self.activation = activation
        self.spectral_norm = bool(spectral_norm)
        self.classifier_network = EnergyNetwork(
            self.num_classes, filters=self.filters, num_downsamplings=self.num_downsamplings,
            activation=activation, spectral_norm=self.spectral_norm, name="classifier_network")
        self.build_model()

    @classmethod
    def likelihood_kinds(cls):
        return ("none",)  # images only

    def logits(self, x, training=False):
        """f(x) on scaled images."""
        return self.classifier_network(x, training=training)

    def energy(self, x, training=False, labels=None):
        logits = self.logits(x, training)
        if labels is None:
            return -tf.reduce_logsumexp(logits, axis=1)
        return -tf.gather(logits, tf.cast(labels, tf.int32), batch_dims=1)

    def compute_losses(self, x, training=False, labels=None):
        if labels is None:  # a batch without labels (the contract's): classes drawn
            seed = self.rng.next_seed() if training else tf.constant([0, 3], tf.int32)
            labels = self.sample_labels(tf.shape(x)[0], seed, -1)
        scaled = self.to_model(x)
        logits = self.logits(scaled, training)
        cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(labels, tf.int32), logits))
        divergence, penalty = self.contrastive_terms(scaled, training)
        return {"loss": cross_entropy + divergence + penalty, "cross_entropy": cross_entropy,
                "contrastive_divergence": divergence, "energy_regularizer": penalty}

    @on_batches("data")
    def classify(self, x):
        """p(y | x) per class, and the most probable class, of raw images."""
        logits = self.logits(self.to_model(self.validate_inputs(x, "classify")))
        return {"probabilities": tf.nn.softmax(logits),
                "label": tf.argmax(logits, axis=1, output_type=tf.int32)}

    def data_signatures(self):
        return {"classify": (lambda x: self.classify(x), [self.data_spec()]),
                "energy": (lambda x: {"energy": self.energy_of(x)}, [self.data_spec()])}

    def extra_metrics(self, data, settings, seed=0, batch_size=64, run_dir=None):
        """Test accuracy and expected calibration error (15 bins), and a
        histogram of the energies of the test images against those of uniform
        noise images (JEM's out-of-distribution scores, Sec. 5.3)."""
        metrics = super().extra_metrics(data, settings, seed, batch_size, run_dir)
        probabilities, labels, energies = [], [], []
        for x, y in data:
            out = self.classify(x)
            probabilities.append(out["probabilities"].numpy())
            labels.append(np.asarray(y))
            energies.append(self.energy_of(x).numpy())
        probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
        energies = np.concatenate(energies)
        noise = self.from_model(self.uniform_noise(len(energies), tf.constant([seed, 9])))
        noise_energies = self.energy_of(noise).numpy()
        metrics["classifier"] = {"test_accuracy": float(np.mean(
            probabilities.argmax(1) == labels)), "expected_calibration_error":
            expected_calibration_error(probabilities, labels), "num_examples": len(labels)}
        metrics["energies"] = {"test_mean": float(energies.mean()),
                               "uniform_noise_mean": float(noise_energies.mean())}
        if run_dir is not None:
            path = os.path.join(os.fspath(run_dir), "evaluation", "energy_histogram.png")
            plotting.histograms([("test images", energies), ("uniform noise", noise_energies)],
                                path)
            metrics["pictures"] = [os.path.join("evaluation", "energy_histogram.png")]
        return metrics


def expected_calibration_error(probabilities, labels, bins=ECE_BINS):
    """ECE (Guo, Pleiss, Sun & Weinberger 2017): the examples binned by their
    confidence (the top probability) into `bins` equal intervals of [0, 1], and
    the bins' |accuracy - mean confidence| averaged, weighted by their counts."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(labels))
