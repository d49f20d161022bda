"""Spectral normalisation of a layer's weight (Miyato et al., 2018, "Spectral Normalization
for Generative Adversarial Networks", Alg. 1), as ``torch.nn.utils.spectral_norm``.

The weight, viewed as a matrix W of shape (out, -1), is divided by an estimate of its largest
singular value sigma(W), which makes the layer (at most) 1-Lipschitz. sigma is estimated by
power iteration with vectors u and v kept between calls, one iteration per training step:

    v <- W^T u / ||W^T u||,   u <- W v / ||W v||        (no gradient through u, v)
    sigma = u^T W v                                     (with gradient through W)
    W_SN = W / sigma.
"""
from __future__ import annotations

from typing import Any, TypeVar

from scratchgen import backend
from scratchgen.autograd import Tensor
import scratchgen.functional as F
from scratchgen.nn.module import Module
from scratchgen.nn.parameter import Parameter

__all__ = ["spectral_norm", "remove_spectral_norm", "SpectralNorm"]

M = TypeVar("M", bound=Module)


def _normalize(a: Any, eps: float) -> Any:
    xp = backend.get_array_module(a)
    return a / xp.maximum(xp.sqrt((a * a).sum()), eps)


class SpectralNorm:
    """The forward pre-hook that recomputes ``module.<name>`` = weight_orig / sigma before
    every forward; power iterations only in training mode."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        if n_power_iterations <= 0:
            raise ValueError(f"n_power_iterations must be positive, got {n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def _matrix(self, w: Tensor) -> Tensor:
        """W as a (shape[dim], -1) matrix."""
        if self.dim != 0:
            perm = (self.dim,) + tuple(d for d in range(w.ndim) if d != self.dim)
            w = F.permute(w, perm)
        return F.reshape(w, (w.shape[0], -1))

    def power_iteration(self, module: Module, n: int) -> None:
        """n steps of v <- W^T u / ||W^T u||, u <- W v / ||W v|| on the stored u, v."""
        w = self._matrix(Tensor(getattr(module, self.name + "_orig").data)).data
        u_buf = getattr(module, self.name + "_u")
        v_buf = getattr(module, self.name + "_v")
        u, v = u_buf.data, v_buf.data
        for _ in range(n):
            v = _normalize(backend.matmul(w.T, u), self.eps)
            u = _normalize(backend.matmul(w, v), self.eps)
        # new arrays, never in place: an earlier forward's graph may still hold the old ones
        u_buf.data, v_buf.data = u, v

    def compute_weight(self, module: Module) -> Tensor:
        """W / sigma with sigma = u^T W v, differentiable w.r.t. W (u, v constants)."""
        w = getattr(module, self.name + "_orig")
        u = Tensor(getattr(module, self.name + "_u").data)
        v = Tensor(getattr(module, self.name + "_v").data)
        sigma = F.sum(u * F.matmul(self._matrix(w), v))
        return w / sigma

    def __call__(self, module: Module, args: tuple) -> None:
        if module.training:
            self.power_iteration(module, self.n_power_iterations)
        object.__setattr__(module, self.name, self.compute_weight(module))


def spectral_norm(module: M, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> M:
    """Spectrally normalise ``module.<name>`` (Miyato et al., 2018): the learned weight moves
    to the parameter ``<name>_orig``, u and v become buffers ``<name>_u`` and ``<name>_v``
    (random unit vectors at first), and ``module.<name>`` becomes W / sigma, recomputed before
    each forward. ``dim`` is the output axis (1 for transposed convolutions, 0 otherwise).
    Returns the module."""
    from scratchgen.nn.conv import ConvTranspose2d

    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            raise RuntimeError(f"spectral_norm is already applied to {name!r} of "
                               f"{type(module).__name__}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"{type(module).__name__} has no parameter {name!r} to normalise")
    if dim is None:
        dim = 1 if isinstance(module, ConvTranspose2d) else 0
    fn = SpectralNorm(name, n_power_iterations, dim, eps)
    mat = fn._matrix(Tensor(weight.data)).data
    h, w = mat.shape
    dev = weight.device
    gen = backend.generator(dev)
    if dev.type == "cpu":
        u0, v0 = gen.standard_normal(h), gen.standard_normal(w)
    else:
        with backend._cupy().cuda.Device(dev.index or 0):
            u0, v0 = gen.standard_normal(h), gen.standard_normal(w)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    module.register_buffer(name + "_u", Tensor(_normalize(u0.astype(weight.dtype), eps)))
    module.register_buffer(name + "_v", Tensor(_normalize(v0.astype(weight.dtype), eps)))
    # a plain attribute until the first forward computes W / sigma
    object.__setattr__(module, name, Tensor(weight.data))
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module: M, name: str = "weight") -> M:
    """Undo ``spectral_norm``: ``<name>`` becomes a Parameter again holding the current
    W / sigma (with the stored u, v), and the hook and buffers go."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            w = hook.compute_weight(module)
            del module._forward_pre_hooks[key]
            module.__dict__.pop(name, None)
            del module._parameters[name + "_orig"]
            del module._buffers[name + "_u"]
            del module._buffers[name + "_v"]
            module.register_parameter(name, Parameter(w.data.copy()))
            return module
    raise ValueError(f"spectral_norm of {name!r} not found in {type(module).__name__}")
