"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017)."""

import keras
import tensorflow_probability as tfp

from zoo.datasets.toy import for_each_density
from zoo.flows.base import FlowModel, TOY_TRAINING
from zoo.flows.steps.channel_split import ChannelSplit
from zoo.flows.steps.coupling import AffineCoupling
from zoo.flows.steps.squeeze import Squeeze
from zoo.registry import register

tfb = tfp.bijectors



@register(
    "realnvp",
    presets={
        **for_each_density(num_couplings=8, hidden_units=64, num_blocks=2),
        "digits": dict(num_scales=2, hidden_units=32, num_blocks=2),
        "fashion_mnist": dict(num_scales=2, hidden_units=64, num_blocks=4),
    },
    training={
        **for_each_density(TOY_TRAINING),
        "digits": dict(batch_size=64, epochs=30, learning_rate=1e-3),
        "fashion_mnist": dict(batch_size=64, epochs=10, learning_rate=1e-3),
    },
    default_dataset="digits",
)
@keras.saving.register_keras_serializable(package="zoo")
class RealNVP(FlowModel):
    """Real-valued non-volume preserving flow.

    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017,
    https://arxiv.org/abs/1605.08803.

    On vectors: ``num_couplings`` affine couplings with alternating halves fixed.
    On images, the multi-scale architecture of Sec. 3.6: each scale applies
    ``couplings_per_scale`` checkerboard couplings, squeezes, applies as many
    channel couplings, and factors out half the channels; the last scale applies
    ``final_couplings`` checkerboard couplings. Factored-out variables go straight
    to the standard normal prior; the latent is arranged in the data's shape.

    Args:
        data_shape: ``(D,)`` or ``(H, W, C)`` with H and W divisible by 2**(num_scales-1).
        num_levels: intensity levels of raw images (None for continuous data).
        num_couplings: couplings on vector data.
        num_scales: scales on image data.
        couplings_per_scale: checkerboard (and channel) couplings per scale.
        final_couplings: checkerboard couplings of the last scale.
        hidden_units: MLP width or ResNet filters of each coupling network.
        num_blocks: MLP hidden layers or ResNet blocks of each coupling network.
        logit_alpha: alpha of the logit preprocessing.
    """

    def __init__(
        self,
        data_shape=(2,),
        num_levels=None,
        num_couplings=8,
        num_scales=2,
        couplings_per_scale=3,
        final_couplings=4,
        hidden_units=64,
        num_blocks=2,
        logit_alpha=0.05,
        **kwargs,
    ):
        kwargs.setdefault("name", "realnvp")
        super().__init__(data_shape=data_shape, num_levels=num_levels,
                         logit_alpha=logit_alpha, **kwargs)
        self.num_couplings = num_couplings
        self.num_scales = num_scales
        self.couplings_per_scale = couplings_per_scale
        self.final_couplings = final_couplings
        self.hidden_units = hidden_units
        self.num_blocks = num_blocks
        if len(self.data_shape) == 1:
            self.couplings = [
                AffineCoupling(self.data_shape, "channel", i % 2, hidden_units, num_blocks,
                               name=f"coupling_{i}")
                for i in range(num_couplings)
            ]
        elif len(self.data_shape) == 3:
            self._check_image_shape()
            self.couplings = self._image_couplings()
        else:
            raise ValueError(f"RealNVP: expected data_shape (D,) or (H, W, C), got {self.data_shape}")
        self.build_model()

    def _check_image_shape(self):
        h, w, c = self.data_shape
        factor = 2 ** (self.num_scales - 1)
        if self.num_scales < 1 or h % factor or w % factor:
            raise ValueError(
                f"RealNVP: {self.num_scales} scales need H and W divisible by {factor}, "
                f"got data_shape {self.data_shape}"
            )

    def _image_couplings(self):
        """Per scale: a list of layers, checkerboard then (but the last) channel."""
        layers = []
        h, w, c = self.data_shape
        for scale in range(self.num_scales):
            last = scale == self.num_scales - 1
            shape = (h, w, c)
            n = self.final_couplings if last else self.couplings_per_scale
            layers += [
                AffineCoupling(shape, "checkerboard", i % 2, self.hidden_units, self.num_blocks,
                               name=f"scale_{scale}_checkerboard_{i}")
                for i in range(n)
            ]
            if last:
                break
            h, w, c = h // 2, w // 2, 4 * c
            layers += [
                AffineCoupling((h, w, c), "channel", i % 2, self.hidden_units, self.num_blocks,
                               name=f"scale_{scale}_channel_{i}")
                for i in range(self.couplings_per_scale)
            ]
            c //= 2
        return layers

    def flow_bijector(self):
        """Latent -> logit space. TFP's Chain applies its list right to left."""
        if len(self.data_shape) == 1:
            return tfb.Chain([c.bijector() for c in reversed(self.couplings)])
        return self._scale_bijector(0, list(self.couplings))

    def _scale_bijector(self, scale, layers):
        last = scale == self.num_scales - 1
        n = self.final_couplings if last else self.couplings_per_scale
        checkerboard, layers = layers[:n], layers[n:]
        # Data direction (inverse): checkerboard couplings, squeeze, channel couplings,
        # factor out half the channels, recurse, unsqueeze back to this scale's shape.
        steps = [c.bijector() for c in reversed(checkerboard)]
        if not last:
            channel, layers = layers[: self.couplings_per_scale], layers[self.couplings_per_scale:]
            channels = 4 * self.data_shape[-1] * 2 ** scale  # after this scale's squeeze
            inner = self._scale_bijector(scale + 1, layers)
            steps += [tfb.Invert(Squeeze())]
            steps += [c.bijector() for c in reversed(channel)]
            steps += [ChannelSplit(inner, channels // 2), Squeeze()]
        return tfb.Chain(steps)
