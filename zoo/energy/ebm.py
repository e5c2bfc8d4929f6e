"""An energy-based model trained by contrastive divergence on Langevin samples."""

import keras

from zoo.datasets.toy import for_each_density
from zoo.energy.base import TOY_TRAINING, ContrastiveDivergence
from zoo.energy.networks import EnergyNetwork
from zoo.registry import register


@register(
    "ebm",
    presets={
        **for_each_density(hidden_units=128, num_hidden=3, step_size=0.01, num_steps=20,
                           noise=1.0, regularizer=0.01, spectral_norm=False),
        "digits": dict(filters=32, num_downsamplings=2, step_size=2.0, num_steps=40,
                       noise=0.005, regularizer=1.0, spectral_norm=True),
        "fashion_mnist": dict(filters=32, num_downsamplings=2, step_size=2.0, num_steps=60,
                              noise=0.005, regularizer=1.0, spectral_norm=True),
    },
    training={
        **for_each_density(TOY_TRAINING),
        # At 1e-3 the contrastive divergence on rings ran away from epoch 10 (seeds
        # 0 and 1: the energies spiked, NLL 40 nats); at 3e-4 both seeds trained.
        "rings": dict(TOY_TRAINING, learning_rate=3e-4),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-4),
        "fashion_mnist": dict(batch_size=64, epochs=5, learning_rate=1e-4),
    },
    default_dataset="moons",
)
@keras.saving.register_keras_serializable(package="zoo")
class EBM(ContrastiveDivergence):
    """An energy network ``E(x)`` trained by contrastive divergence on Langevin
    samples from a replay buffer.

    Du & Mordatch, "Implicit Generation and Modeling with Energy-Based Models",
    NeurIPS 2019, https://arxiv.org/abs/1903.08689 (Algorithm 1: SGLD chains
    started 95% from a replay buffer and 5% from uniform noise, the L2
    regulariser of the energies, spectral normalisation of the energy network
    on images); with ``short_run=True`` the chains of Nijkamp, Hill, Zhu & Wu,
    "Learning Non-Convergent Non-Persistent Short-Run MCMC Toward Energy-Based
    Model", NeurIPS 2019, https://arxiv.org/abs/1904.09770 (always from noise).

    Args:
        hidden_units, num_hidden: the energy MLP (points).
        filters, num_downsamplings: the energy convolutions (images).
        activation: ``"swish"`` or ``"leaky_relu"``.
        spectral_norm: spectral normalisation of every layer.
        (others): :class:`~zoo.energy.base.ContrastiveDivergence` (the buffer,
            the regulariser, short-run chains) and
            :class:`~zoo.energy.base.EnergyModel` (the sampler, the grid).
    """

    loss_names = ("loss", "contrastive_divergence", "energy_regularizer")

    def __init__(self, data_shape=(2,), num_levels=None, hidden_units=128, num_hidden=3,
                 filters=32, num_downsamplings=2, activation="swish", spectral_norm=False,
                 **kwargs):
        super().__init__(data_shape=data_shape, num_levels=num_levels, **kwargs)
        self.hidden_units = int(hidden_units)
        self.num_hidden = int(num_hidden)
        self.filters = int(filters)
        self.num_downsamplings = int(num_downsamplings)
        self.activation = activation
        self.spectral_norm = bool(spectral_norm)
        if min(self.hidden_units, self.num_hidden, self.filters) < 1 or \
                self.num_downsamplings < 0:
            raise ValueError(f"EBM: expected hidden_units, num_hidden and filters >= 1 and "
                             f"num_downsamplings >= 0, got {hidden_units}, {num_hidden}, "
                             f"{filters} and {num_downsamplings}")
        self.energy_network = EnergyNetwork(
            1, self.hidden_units, self.num_hidden, self.filters, self.num_downsamplings,
            activation, self.spectral_norm, name="energy_network")
        self.build_model()

    def energy(self, x, training=False, labels=None):
        return self.energy_network(x, training=training)[:, 0]

    def compute_losses(self, x, training=False):
        divergence, penalty = self.contrastive_terms(self.to_model(x), training)
        return {"loss": divergence + penalty, "contrastive_divergence": divergence,
                "energy_regularizer": penalty}

    def data_signatures(self):
        signatures = {"energy": (lambda x: {"energy": self.energy_of(x)}, [self.data_spec()])}
        if self.likelihood == "exact":
            signatures = {"log_prob": (lambda x: {"log_prob": self.log_prob(x)},
                                       [self.data_spec()]), **signatures}
        return signatures
