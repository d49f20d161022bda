"""Public tools for testing differentiable code: gradient checkers and hypothesis strategies.

``scratchgen.testing.strategies`` needs the ``hypothesis`` package (``pip install
'scratchgen[test]'``); the checkers need nothing beyond scratchgen.
"""
from scratchgen.testing.gradcheck import (  # noqa: F401
    GradcheckError, NondifferentiablePointError, gradcheck, gradgradcheck,
)
