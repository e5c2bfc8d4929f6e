"""The encoder and decoder under the names multi-network training uses."""


class AutoencoderNetworks:
    """A mixin for autoencoders trained network by network
    (:class:`~zoo.adversarial.MultiNetworkTraining`, whose ``optimizer_terms``
    name ``model.<network>_network``): the encoder and decoder as
    ``encoder_network`` and ``decoder_network``."""

    @property
    def encoder_network(self):
        return self.encoder

    @property
    def decoder_network(self):
        return self.decoder
