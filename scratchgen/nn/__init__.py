"""Layers and networks: ``Module``, ``Parameter`` and the layers generative models are built
from, with PyTorch's names, argument orders and defaults.

    import scratchgen.nn as nn
    net = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
"""
from scratchgen.nn.parameter import Parameter  # noqa: F401
from scratchgen.nn.module import IncompatibleKeys, Module, RemovableHandle  # noqa: F401
from scratchgen.nn.container import ModuleDict, ModuleList, Sequential  # noqa: F401
from scratchgen.nn.layers import (  # noqa: F401
    ELU, Dropout, Embedding, Flatten, Identity, LeakyReLU, Linear, ReLU, Sigmoid, Softplus, Tanh,
    Unflatten,
)
from scratchgen.nn.conv import Conv2d, ConvTranspose2d, MaskedConv2d  # noqa: F401
from scratchgen.nn.norm import (  # noqa: F401
    BatchNorm1d, BatchNorm2d, ConditionalBatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm,
)
from scratchgen.nn.pooling import (  # noqa: F401
    AvgPool2d, MaxPool2d, ReflectionPad2d, ReplicationPad2d, Upsample, ZeroPad2d,
)
from scratchgen.nn.attention import SelfAttention2d  # noqa: F401
from scratchgen.nn.spectral_norm import remove_spectral_norm, spectral_norm  # noqa: F401
from scratchgen.nn import functional_norm, init, utils  # noqa: F401
