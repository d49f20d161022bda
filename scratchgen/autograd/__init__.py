"""Reverse-mode automatic differentiation.

A ``Tensor`` wraps an array (NumPy or CuPy) and remembers the ``Function`` that made it. Calling
a Function records one node of a graph: the node keeps its input Tensors, and each output keeps
a pointer back to the node (``_ctx``) and which of the node's outputs it is (``_idx``).

``backward`` walks that graph from the outputs to the leaves in reverse topological order,
applying the chain rule at every node:

    dL/dinput_j = sum_i  (d output_i / d input_j)^T  dL/doutput_i       (a vector-Jacobian product)

Each Function's ``backward`` is written with differentiable ops on Tensors. So when we ask for
``create_graph=True`` the backward pass itself is recorded as a new graph, and differentiating
it again gives second derivatives (needed by WGAN-GP's gradient penalty and R1).

Gradients are accumulated per (node, output index), not per Tensor object: a node can hand out
fresh Tensor views of its outputs to its own backward (``Function.output``) without keeping a
reference cycle between the node and its outputs.

The core reads in this order: ``tensor`` (Tensor), ``function`` (Function and how an op is
recorded), ``engine`` (the backward loop, ``backward`` and ``grad``). Around it: ``grad_mode``
(``no_grad``), ``hooks`` (gradient hooks, ``retain_grad``), ``anomaly`` (``detect_anomaly``)
and ``tensor_ops`` (the operators and methods, each an op of ``scratchgen.functional``).
"""
from scratchgen.autograd.grad_mode import (  # noqa: F401
    enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
)
from scratchgen.autograd.anomaly import detect_anomaly, is_anomaly_enabled  # noqa: F401
from scratchgen.autograd.tensor import Tensor, tensor  # noqa: F401
from scratchgen.autograd.function import Function  # noqa: F401
from scratchgen.autograd.engine import backward, grad, graph_nodes  # noqa: F401
from scratchgen.autograd import tensor_ops as _tensor_ops

__all__ = [
    "Tensor", "Function", "tensor", "grad", "backward", "no_grad", "enable_grad",
    "is_grad_enabled", "set_grad_enabled", "detect_anomaly", "is_anomaly_enabled", "graph_nodes",
]

# The operators call the ops of scratchgen.functional, which are built on Tensor and Function:
# the two are joined here, once both exist.
from scratchgen import functional as _functional  # noqa: E402

_tensor_ops.F, _tensor_ops.Tensor = _functional, Tensor
