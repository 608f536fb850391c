"""The layers the models are built from: spectrally normalised conv/linear/embedding, the
self-attention block, conditional batch norm, the projection head and
the minibatch-std feature."""

from accelerated.layers.attention import SelfAttention
from accelerated.layers.batchnorm import ConditionalBatchNorm2d
from accelerated.layers.minibatch_std import MinibatchStd
from accelerated.layers.projection import ProjectionHead
from accelerated.layers.spectral_norm import SN_EPS, sn_conv2d, sn_embedding, sn_linear

__all__ = [
    "SN_EPS",
    "ConditionalBatchNorm2d",
    "MinibatchStd",
    "ProjectionHead",
    "SelfAttention",
    "sn_conv2d",
    "sn_embedding",
    "sn_linear",
]
