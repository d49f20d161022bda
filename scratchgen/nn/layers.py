"""Dense layers, embeddings, dropout, activations and shape layers."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy

import scratchgen.functional as F
from scratchgen import backend
from scratchgen.autograd import Tensor
from scratchgen.nn import init
from scratchgen.nn.module import Module
from scratchgen.nn.parameter import Parameter

__all__ = [
    "Linear", "Identity", "Flatten", "Unflatten", "Embedding", "Dropout", "ReLU", "LeakyReLU",
    "Tanh", "Sigmoid", "ELU", "Softplus",
]


def _empty(shape: Sequence[int], device: Any = None, dtype: Any = None) -> Parameter:
    dev = backend.device(device)
    arr = backend.numpy.zeros(tuple(shape), dtype=backend.as_dtype(dtype))
    return Parameter(backend.to_device(arr, dev) if dev.type != "cpu" else arr)


def reset_parameters_like_pytorch(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for linear and convolution layers: weights by
    kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features); x is (..., in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = _empty((out_features, in_features), device, dtype)
        if bias:
            self.bias = _empty((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_parameters_like_pytorch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """y = x (a placeholder that accepts and ignores any constructor arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Merge axes ``start_dim..end_dim`` into one; by default (N, ...) -> (N, prod(...))."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size``: (N, 256) -> (N, 16, 4, 4)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        d = self.dim % x.ndim
        return F.reshape(x, x.shape[:d] + self.unflattened_size + x.shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Embedding(Module):
    """A lookup table: ``forward(idx)`` returns rows ``weight[idx]`` of the
    (num_embeddings, embedding_dim) weight, initialised N(0, 1) as PyTorch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = _empty((num_embeddings, embedding_dim), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)

    def forward(self, idx: Any) -> Tensor:
        a = idx.data if isinstance(idx, Tensor) else idx
        xp = self.weight.xp
        a = backend.to_device(backend.numpy.asarray(a) if not hasattr(a, "dtype") else a,
                              self.weight.device)
        if a.dtype.kind not in "iu":
            raise TypeError(f"Embedding needs integer indices, got dtype {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) >= self.num_embeddings):
            raise IndexError(
                f"Embedding: indices must lie in [0, {self.num_embeddings}), got range "
                f"[{int(a.min())}, {int(a.max())}]"
            )
        return F.getitem(self.weight, xp.asarray(a))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Inverted dropout (Srivastava et al., 2014): in training, y = x * m / (1 - p) with
    m ~ Bernoulli(1 - p) drawn from the device's generator; the identity in evaluation."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        dev = x.device
        gen = backend.generator(dev)
        dt = x.dtype if x.dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float64)
        if dev.type == "cpu":
            u = gen.random(x.shape, dtype=dt)
        else:
            with backend._cupy().cuda.Device(dev.index or 0):
                u = gen.random(x.shape, dtype=dt)
        keep = u >= self.p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * Tensor(mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise (Maas et al., 2013)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """y = tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """y = 1 / (1 + e^-x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class ELU(Module):
    """y = x for x > 0, alpha (e^x - 1) otherwise (Clevert et al., 2016)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """y = log(1 + e^(beta x)) / beta, linear above ``threshold`` (for beta x)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"
