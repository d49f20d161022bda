"""Differentiable ops. Each is a ``Function`` (forward on arrays, backward on Tensors) behind a
plain function, and each is registered in ``OPS`` with a gradient check in the test suite.

``import scratchgen.functional as F`` gives the PyTorch-like namespace.
"""
from scratchgen.functional.registry import OPS, OpInfo, register  # noqa: F401
from scratchgen.functional.shape import *  # noqa: F401,F403
from scratchgen.functional.elementwise import *  # noqa: F401,F403
from scratchgen.functional.piecewise import *  # noqa: F401,F403
from scratchgen.functional.reduction import *  # noqa: F401,F403
from scratchgen.functional.linalg import *  # noqa: F401,F403
from scratchgen.functional.loss import *  # noqa: F401,F403
from scratchgen.functional.conv import *  # noqa: F401,F403
from scratchgen.functional.attention import *  # noqa: F401,F403
from scratchgen.functional.normalization import *  # noqa: F401,F403
