"""Training several networks of one model, each by its own optimizer."""

import keras
import tensorflow as tf

from zoo import precision


class MultiNetworkTraining:
    """A mixin for models of several networks, each minimising its own loss term
    with its own optimizer (GANs, the adversarial autoencoder, VAE-GAN).

    * ``optimizer_terms``: network name -> the loss term its optimizer minimises
      (a name in ``loss_names``). The first network's optimizer is
      ``self.optimizer``; each other network ``N`` has its own,
      ``self.N_optimizer`` (``compile(N_optimizer=...)``, default a fresh copy of
      the first). Network ``N`` is the layer ``self.N_network``.
    * ``critic_networks``: the networks that are updated on their own first in a
      step (critics, discriminators); some of ``optimizer_terms``, not all.
    * ``update(networks, terms, tape)`` applies each network's optimizer to the
      gradient of its term. The ``train_step`` here updates every network from
      one forward pass (simultaneous updates: the adversarial autoencoder,
      VAE-GAN); a model with a schedule (a GAN's ``n_critic``) has its own.

    A model mixes it in before its base: ``class M(MultiNetworkTraining,
    GenerativeModel)``, sets the two attributes and calls
    ``check_optimizer_terms()`` once its networks exist.
    """

    optimizer_terms = {}
    critic_networks = ()

    def check_optimizer_terms(self):
        """Every network of ``optimizer_terms`` exists and minimises a loss term."""
        kind = type(self).__name__
        for network, term in self.optimizer_terms.items():
            if not isinstance(self.network(network), keras.layers.Layer):
                raise ValueError(f"{kind}.optimizer_terms names the network {network!r}, "
                                 f"but the model has no {network}_network layer")
            if term not in self.loss_names:
                raise ValueError(f"{kind}.optimizer_terms: network {network!r} minimises "
                                 f"{term!r}, which is not one of its loss terms "
                                 f"{list(self.loss_names)}")
        unknown = set(self.critic_networks) - set(self.optimizer_terms)
        if unknown or len(self.critic_networks) == len(self.optimizer_terms):
            raise ValueError(f"{kind}.critic_networks must name some (or no), not all, "
                             f"networks of optimizer_terms {list(self.optimizer_terms)}; got "
                             f"{list(self.critic_networks)}")

    def network(self, name):
        return getattr(self, f"{name}_network", None)

    def optimizer_for(self, name):
        """The optimizer of network `name` (None before ``compile``)."""
        if name == next(iter(self.optimizer_terms)):
            return getattr(self, "optimizer", None)
        return getattr(self, f"{name}_optimizer", None)

    def all_optimizers(self):
        return [self.optimizer_for(name) for name in self.optimizer_terms]

    def training_optimizers(self, learning_rate, critic_learning_rate=None):
        """``default_optimizer(learning_rate)``, and for each of ``critic_networks``
        its own at `critic_learning_rate` where set (two time-scale updates).

        Raises:
            ValueError: a `critic_learning_rate` for a model without critics.
        """
        if critic_learning_rate is None:
            return {"optimizer": self.default_optimizer(learning_rate)}
        if not self.critic_networks:
            raise ValueError(f"{type(self).__name__} trains no critic")
        return {"optimizer": self.default_optimizer(learning_rate),
                **{f"{network}_optimizer": self.default_optimizer(critic_learning_rate)
                   for network in self.critic_networks}}

    def compile(self, optimizer=None, **kwargs):
        """Configures training with one optimizer per network.

        Args:
            optimizer: the first network's optimizer (name, config or instance);
                default ``default_optimizer()``.
            **kwargs: ``N_optimizer`` for each other network ``N`` of
                ``optimizer_terms`` (default: a fresh optimizer of the same class
                and config as `optimizer`); the rest goes to ``keras.Model.compile``
                (``jit_compile``, ``steps_per_execution``, ...).
        """
        first, *others = self.optimizer_terms
        optimizer = keras.optimizers.get(optimizer if optimizer is not None
                                         else self.default_optimizer())
        chosen = {}
        for network in others:
            given = kwargs.pop(f"{network}_optimizer", None)
            if given is None:
                config = optimizer.get_config()
                config["name"] = f"{network}_{config.get('name') or 'optimizer'}"
                chosen[network] = type(optimizer).from_config(config)
            else:
                chosen[network] = keras.optimizers.get(given)
            if chosen[network] is optimizer:
                raise ValueError(f"{type(self).__name__}.compile: the {network} needs its own "
                                 f"optimizer instance, got the {first}'s optimizer as "
                                 f"{network}_optimizer")
        super().compile(optimizer=optimizer, **kwargs)
        for network, network_optimizer in chosen.items():
            setattr(self, f"{network}_optimizer",
                    precision.loss_scaled(network_optimizer, self.precision))
        # Each optimizer owns slots for its own network only; building them now
        # (not lazily inside the first step) also lets a reload restore them.
        for network in self.optimizer_terms:
            self.optimizer_for(network).build(self.network(network).trainable_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            for network in list(self.optimizer_terms)[1:]:
                network_optimizer = self.optimizer_for(network)
                if network_optimizer is not None:
                    config[f"{network}_optimizer"] = keras.saving.serialize_keras_object(
                        network_optimizer)
        return config

    def update(self, networks, terms, tape):
        """Applies each network's optimizer to the gradient of its loss term."""
        for network in networks:
            weights = self.network(network).trainable_variables
            optimizer = self.optimizer_for(network)
            grads = self.scaled_gradients(tape, terms[network], weights, optimizer)
            optimizer.apply_gradients(zip(grads, weights))

    def train_step(self, data):
        """Every network's update from one forward pass on the batch."""
        if any(o is None for o in self.all_optimizers()):
            raise RuntimeError(f"{type(self).__name__}: call compile() before fit()")
        x = self.unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            terms = self.compute_losses(x, training=True)
            scaled = {n: self.replica_scaled(terms[t]) for n, t in self.optimizer_terms.items()}
        self.update(list(self.optimizer_terms), scaled, tape)
        return self.update_trackers(terms)
