"""Hand-written kernels on raw arrays (NumPy on the CPU, CUDA C through CuPy on the GPU).

Arrays in, arrays out: nothing here knows about Tensors or autodiff, and nothing here imports
``scratchgen``. ``scratchgen.functional`` wraps these functions as differentiable ops.

The folder sits at the top of the repository, beside the package, and is imported (and
installed) as ``scratchgen.kernels`` through the link ``scratchgen/kernels``; its modules
import each other by relative imports only, so they depend on no name of their own.

Importing them has no side effect: the malloc setting of ``kernels.memory`` is applied by the
programs that want it (the training loop, the benchmark commands).
"""
