"""Normalisation layers: batch, conditional batch, instance, layer and group norm.

The math lives in ``scratchgen.nn.functional_norm`` (on the op ``F.normalize_over``); these
classes hold the parameters and the running statistics.
"""
from __future__ import annotations

from typing import Any, Sequence

from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn import functional_norm as FN
from scratchgen.nn import init
from scratchgen.nn.layers import Embedding, _empty
from scratchgen.nn.module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "ConditionalBatchNorm2d", "InstanceNorm2d",
           "LayerNorm", "GroupNorm"]


def _buffer(values: Any, device: Any, dtype: Any) -> Tensor:
    arr = backend.numpy.asarray(values, dtype=dtype)
    dev = backend.device(device)
    return Tensor(backend.to_device(arr, dev) if dev.type != "cpu" else arr)


class _NormBase(Module):
    """Parameters (gamma, beta) and running statistics shared by batch and instance norm."""

    def __init__(self, num_features: int, eps: float, momentum: float | None, affine: bool,
                 track_running_stats: bool, device: Any, dtype: Any) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = backend.as_dtype(dtype)
        if affine:
            self.weight = _empty((num_features,), device, dt)
            self.bias = _empty((num_features,), device, dt)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", _buffer(backend.numpy.zeros(num_features),
                                                         device, dt))
            self.register_buffer("running_var", _buffer(backend.numpy.ones(num_features),
                                                        device, dt))
            self.register_buffer("num_batches_tracked", _buffer(0, device, "int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data = self.running_mean.xp.zeros_like(self.running_mean.data)
            self.running_var.data = self.running_var.xp.ones_like(self.running_var.data)
            self.num_batches_tracked.data = self.num_batches_tracked.xp.zeros_like(
                self.num_batches_tracked.data)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _momentum_now(self) -> float:
        """The momentum of this step; ``momentum=None`` gives the cumulative average
        (momentum 1/t at the t-th batch), as PyTorch."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:
                return 1.0 / int(self.num_batches_tracked.item())
        return 0.0 if self.momentum is None else self.momentum

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """Batch normalisation (Ioffe & Szegedy, 2015):
    y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta, per channel.

    Training mode normalises with the batch statistics and moves the running statistics
    towards them (momentum 0.1, unbiased variance); evaluation mode uses the running
    statistics, so y is then the fixed affine map gamma (x - mu_run) / sqrt(var_run + eps) + beta.
    """

    _expected_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._expected_dims:
            dims = " or ".join(map(str, self._expected_dims))
            raise ValueError(f"{type(self).__name__} expects a {dims}-d input, got shape "
                             f"{x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got {x.shape[1]} "
                             f"channels (input shape {x.shape})")
        if self.training and x.size // x.shape[1] <= 1:
            raise ValueError(f"{type(self).__name__} in training mode needs more than 1 value "
                             f"per channel, got input of shape {x.shape}")
        momentum = self._momentum_now()
        use_batch = self.training or not self.track_running_stats
        return FN.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                             use_batch, momentum, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs; statistics per channel C."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs; statistics per channel C."""

    _expected_dims = (4,)


class ConditionalBatchNorm2d(Module):
    """Conditional batch norm (de Vries et al., 2017; Miyato & Koyama, 2018 for cGANs):
    batch norm without its own affine map, followed by a class-dependent one,

        y = gamma[y_class] * BN(x) + beta[y_class],

    with gamma and beta looked up in two Embeddings of shape (num_classes, num_features),
    initialised to 1 and 0 so that it starts as plain batch norm. ``forward(x, y)`` takes the
    integer class labels y of shape (N,).
    """

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_features, self.num_classes = num_features, num_classes
        self.bn = BatchNorm2d(num_features, eps, momentum, affine=False, device=device,
                              dtype=dtype)
        self.gamma = Embedding(num_classes, num_features, device=device, dtype=dtype)
        self.beta = Embedding(num_classes, num_features, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.ones_(self.gamma.weight)
        init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, y: Any) -> Tensor:
        n, c = x.shape[0], x.shape[1]
        g = self.gamma(y).reshape(n, c, 1, 1)
        b = self.beta(y).reshape(n, c, 1, 1)
        return self.bn(x) * g + b

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_classes={self.num_classes}"


class InstanceNorm2d(_NormBase):
    """Instance normalisation (Ulyanov et al., 2016): each sample's each channel is normalised
    over H, W: y = (x - mu_nc) / sqrt(sigma_nc^2 + eps) * gamma + beta. As PyTorch, no affine
    map and no running statistics by default (then training and evaluation behave alike)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"InstanceNorm2d expects a 4-d input, got shape {x.shape}")
        momentum = self._momentum_now()
        use_input_stats = self.training or not self.track_running_stats
        return FN.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                use_input_stats, momentum, self.eps)


class LayerNorm(Module):
    """Layer normalisation (Ba et al., 2016) over the trailing ``normalized_shape`` axes, with
    an elementwise affine map of that shape (gamma = 1, beta = 0 at start)."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _empty(self.normalized_shape, device, dtype)
            init.ones_(self.weight)
            if bias:
                self.bias = _empty(self.normalized_shape, device, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return FN.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalisation (Wu & He, 2018): channels split into ``num_groups`` groups, each
    sample's each group normalised; then a per-channel affine map."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        if affine:
            self.weight = _empty((num_channels,), device, dtype)
            self.bias = _empty((num_channels,), device, dtype)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return FN.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
