"""Elementwise ops: arithmetic with broadcasting, the smooth functions (exp, log, tanh,
sigmoid, softplus...), and conversions of dtype and device. The piecewise ones (ReLU, abs,
clip, maximum, where...) are in ``piecewise``.

Each backward is the derivative written with differentiable ops, so that it can be
differentiated again.
"""
from __future__ import annotations

from typing import Any

from scratchgen.kernels import activation as _activation

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.registry import register
from scratchgen.functional.shape import sum_to, sum_to_array

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "tanh", "sigmoid",
    "softplus", "cast", "to_device", "clone", "as_tensor",
]


def as_tensor(x: Any, like: Tensor) -> Tensor:
    """A constant Tensor from a number or array, on ``like``'s device. A number takes
    ``like``'s dtype, except a float beside an integer or bool ``like``, which takes the
    default floating dtype (``int_tensor * 0.5`` is not truncated)."""
    if isinstance(x, Tensor):
        return x
    xp = backend.get_array_module(like.data)
    if isinstance(x, (int, float, bool)) or (hasattr(x, "ndim") and x.ndim == 0 and
                                             not backend._is_cupy(x)):
        dtype = like.dtype
        if dtype.kind != "f" and (isinstance(x, float) or getattr(x, "dtype", None) is not None
                                  and x.dtype.kind == "f"):
            dtype = backend.get_default_dtype()
        return Tensor(xp.asarray(x, dtype=dtype))
    return Tensor(xp.asarray(x))


def binary_operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """The two operands of a binary op as Tensors of one dtype kind.

    PyTorch's rule for an integer (or bool) operand beside a floating one: the result keeps the
    floating operand's dtype (``float32 + int64`` is float32; NumPy would give float64). The
    integer operand is converted to that dtype here; it never requires a gradient, so the
    conversion is a constant and the graph is unchanged."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    elif not isinstance(b, Tensor):
        b = as_tensor(b, a)
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka != kb:
        if ka == "f" and kb in "iub":
            b = Tensor(b.data.astype(a.data.dtype))
        elif kb == "f" and ka in "iub":
            a = Tensor(a.data.astype(b.data.dtype))
    return a, b


# ---- arithmetic ------------------------------------------------------------------------------

class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(g, a.shape) if need_a else None,
                sum_to(g, b.shape) if need_b else None)

    def backward_arrays(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to_array(g, a.shape) if need_a else None,
                sum_to_array(g, b.shape) if need_b else None)


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(g, a.shape) if need_a else None,
                sum_to(neg(g), b.shape) if need_b else None)

    def backward_arrays(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to_array(g, a.shape) if need_a else None,
                sum_to_array(-g, b.shape) if need_b else None)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to(g * b, a.shape) if need_a else None,
                sum_to(g * a, b.shape) if need_b else None)

    def backward_arrays(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (sum_to_array(g * b.data, a.shape) if need_a else None,
                sum_to_array(g * a.data, b.shape) if need_b else None)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = g / b
        # d(a/b)/db = -a/b^2 = -(g/b) * (a/b)
        return (sum_to(ga, a.shape) if need_a else None,
                sum_to(neg(ga * self.output()), b.shape) if need_b else None)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return neg(g)


class PowScalar(Function):
    """x ** p for a constant p: d/dx = p x^(p-1)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x):
        return x ** self.p

    def backward(self, g):
        (x,) = self.inputs
        p = self.p
        if p == 2:
            return g * (2.0 * x)
        if p == 1:
            return g
        return g * (p * pow(x, p - 1))


class Pow(Function):
    """x ** y for tensors: d/dx = y x^(y-1), d/dy = x^y log x (defined for x > 0)."""

    def forward(self, x, y):
        return x ** y

    def backward(self, g):
        x, y = self.inputs
        need_x, need_y = self.needs_input_grad
        gx = sum_to(g * y * pow(x, y - 1.0), x.shape) if need_x else None
        gy = sum_to(g * self.output() * log(x), y.shape) if need_y else None
        return gx, gy


@register()
def add(a: Any, b: Any) -> Tensor:
    """a + b, with NumPy broadcasting."""
    a, b = binary_operands(a, b)
    return Add.apply(a, b)


@register()
def sub(a: Any, b: Any) -> Tensor:
    """a - b, with broadcasting."""
    a, b = binary_operands(a, b)
    return Sub.apply(a, b)


@register()
def mul(a: Any, b: Any) -> Tensor:
    """a * b, with broadcasting."""
    a, b = binary_operands(a, b)
    return Mul.apply(a, b)


@register()
def div(a: Any, b: Any) -> Tensor:
    """a / b, with broadcasting."""
    a, b = binary_operands(a, b)
    return Div.apply(a, b)


@register()
def neg(a: Tensor) -> Tensor:
    """-a."""
    return Neg.apply(a)


@register()
def pow(x: Any, y: Any) -> Tensor:
    """x ** y. A number exponent gives the cheaper ``p x^(p-1)`` derivative."""
    if isinstance(x, Tensor) and not isinstance(y, Tensor):
        return PowScalar.apply(x, p=float(y))
    x, y = binary_operands(x, y)
    return Pow.apply(x, y)


# ---- smooth unary functions ------------------------------------------------------------------

class Exp(Function):
    def forward(self, x):
        return backend.get_array_module(x).exp(x)

    def backward(self, g):
        return g * self.output()

    def backward_arrays(self, g):
        return g * self._outputs[0]


class Log(Function):
    def forward(self, x):
        return backend.get_array_module(x).log(x)

    def backward(self, g):
        return g / self.inputs[0]


class Log1p(Function):
    def forward(self, x):
        return backend.get_array_module(x).log1p(x)

    def backward(self, g):
        return g / (self.inputs[0] + 1.0)


class Sqrt(Function):
    def forward(self, x):
        return backend.get_array_module(x).sqrt(x)

    def backward(self, g):
        return g * 0.5 / self.output()


class Tanh(Function):
    def forward(self, x):
        return backend.get_array_module(x).tanh(x)

    def backward(self, g):
        y = self.output()
        return g * (1.0 - y * y)

    def backward_arrays(self, g):
        return _activation.tanh_backward(self._outputs[0], g)


class Sigmoid(Function):
    def forward(self, x):
        return _activation.sigmoid_forward(x)  # (tanh(x/2) + 1) / 2: no overflow for any x

    def backward(self, g):
        y = self.output()
        return g * y * (1.0 - y)

    def backward_arrays(self, g):
        return _activation.sigmoid_backward(self._outputs[0], g)


class Softplus(Function):
    """softplus(x) = log(1 + e^{beta x}) / beta, linear above ``threshold`` as PyTorch."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        xp = backend.get_array_module(x)
        bx = self.beta * x
        # log1p(e^{z}) = max(z, 0) + log1p(e^{-|z|}) never overflows
        y = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / self.beta
        return xp.where(bx > self.threshold, x, y).astype(x.dtype, copy=False)

    def backward(self, g):
        (x,) = self.inputs
        return g * sigmoid(x * self.beta)


@register()
def exp(x: Tensor) -> Tensor:
    """e^x."""
    return Exp.apply(x)


@register()
def log(x: Tensor) -> Tensor:
    """Natural logarithm."""
    return Log.apply(x)


@register()
def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate for small x."""
    return Log1p.apply(x)


@register()
def sqrt(x: Tensor) -> Tensor:
    """Square root."""
    return Sqrt.apply(x)


@register()
def tanh(x: Tensor) -> Tensor:
    """tanh(x); derivative 1 - tanh(x)^2."""
    return Tanh.apply(x)


@register()
def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x); derivative s(x)(1 - s(x))."""
    return Sigmoid.apply(x)


@register()
def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^{beta x}) / beta; derivative sigmoid(beta x)."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


# ---- dtype, device, copy ---------------------------------------------------------------------

class Cast(Function):
    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return cast(g, self.in_dtype)


class ToDevice(Function):
    def __init__(self, device: backend.Device) -> None:
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, g):
        return to_device(g, self.in_device)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


@register()
def cast(x: Tensor, dtype: Any) -> Tensor:
    """The same values in another dtype; the gradient is cast back."""
    return Cast.apply(x, dtype=backend.as_dtype(dtype))


@register()
def to_device(x: Tensor, device: Any) -> Tensor:
    """A copy on another device; the gradient travels back."""
    return ToDevice.apply(x, device=backend.device(device))


@register()
def clone(x: Tensor) -> Tensor:
    """A copy of the data that stays in the graph."""
    return Clone.apply(x)
