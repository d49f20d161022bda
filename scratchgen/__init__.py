"""scratchgen: generative models from scratch on a small autodiff engine over NumPy and CuPy.

    import scratchgen as sg
    import scratchgen.functional as F
    x = sg.tensor([[1.0, 2.0]], requires_grad=True)
    F.tanh(x @ x.T).sum().backward(); x.grad
"""
from scratchgen import backend
from scratchgen.autograd import (  # noqa: F401
    Function, Tensor, backward, detect_anomaly, enable_grad, grad, is_anomaly_enabled,
    is_grad_enabled, no_grad, set_grad_enabled, tensor,
)
from scratchgen.backend import (  # noqa: F401
    Device, cuda_is_available, device, get_default_dtype, manual_seed, set_default_dtype,
)
from scratchgen.creation import *  # noqa: F401,F403
from scratchgen import functional  # noqa: F401
from scratchgen import viz  # noqa: F401
from scratchgen import testing  # noqa: F401
from scratchgen import nn, optim  # noqa: F401
from scratchgen.serialization import load, save  # noqa: F401
# use_reference_kernels(True) -- or ``with use_reference_kernels(): ...``, or the environment's
# SCRATCHGEN_REFERENCE=1 -- runs every kernel on its textbook version (kernels/reference/)
from scratchgen.kernels.reference import use as use_reference_kernels  # noqa: F401

float32 = backend.numpy.float32
float64 = backend.numpy.float64

__version__ = "0.1.0"
