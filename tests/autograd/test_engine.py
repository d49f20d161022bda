"""The autograd engine: graph walking, accumulation, freeing, higher order, hooks, errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import autograd
from scratchgen.testing import gradcheck


def t64(a, grad=True):
    return sg.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_long_chain_backprops_without_recursion_error():
    x = t64(1.5)
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == pytest.approx(1.0)


def test_reused_node_accumulates():
    x = t64([1.0, -2.0, 3.0])
    y = x * x + x          # x used three times
    z = (y * y).sum()      # y used twice
    z.backward()
    xv = x.numpy()
    expected = 2 * (xv * xv + xv) * (2 * xv + 1)
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_diamond_graph():
    x = t64(0.7)
    a = F.exp(x)
    b = F.sin(x) if hasattr(F, "sin") else F.tanh(x)
    c = a * b + a
    c.backward()
    xv = 0.7
    expected = np.exp(xv) * np.tanh(xv) + np.exp(xv) * (1 - np.tanh(xv) ** 2) + np.exp(xv)
    assert x.grad.item() == pytest.approx(expected)


def test_broadcasting_is_undone_in_gradients():
    a = t64(np.ones((3, 1, 4)))
    b = t64(np.arange(4.0))
    c = t64(2.0)
    ((a * b + c) * 1.0).sum().backward()
    assert a.grad.shape == (3, 1, 4) and b.grad.shape == (4,) and c.grad.shape == ()
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 3.0))
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(np.arange(4.0), (3, 1, 4)))
    assert c.grad.item() == 12.0


def test_gradients_accumulate_across_backward_calls():
    x = t64(2.0)
    (x * x).backward()
    (x * 3.0).backward()
    assert x.grad.item() == pytest.approx(7.0)


def test_second_backward_through_freed_graph_raises():
    x = t64([1.0, 2.0])
    y = F.exp(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = t64([1.0, 2.0])
    y = F.exp(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]))


def test_backward_on_non_scalar_needs_a_gradient():
    x = t64(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\) needs a gradient"):
        (x * 2.0).backward()
    (x * 2.0).backward(sg.tensor(np.full((2, 3), 0.5)))
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 3)))


def test_gradient_argument_shape_is_checked():
    x = t64(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\)"):
        (x * 2.0).backward(sg.tensor(np.ones(3)))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        t64(1.0, grad=False).backward()


def test_no_grad_and_enable_grad():
    x = t64(1.0)
    with sg.no_grad():
        y = x * 2.0
        with sg.enable_grad():
            z = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_detach_stops_gradients():
    x = t64(3.0)
    y = x * x.detach()
    y.backward()
    assert x.grad.item() == 3.0


def test_grad_does_not_touch_dot_grad_and_handles_non_leaf_inputs():
    x = t64([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = sg.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())
    assert x.grad is None


def test_grad_unused_input():
    x, u = t64(1.0), t64(2.0)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="not used"):
        sg.grad(y, [x, u])
    gx, gu = sg.grad(x * 2.0, [x, u], allow_unused=True)
    assert gx.item() == 2.0 and gu is None


def _mlp(x, w1, w2):
    return (F.tanh(x @ w1) @ w2).sum()


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((5, 3)))
    w1 = t64(rng.standard_normal((3, 4)))
    w2 = t64(rng.standard_normal((4, 2)))
    v1, v2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    g1, g2 = sg.grad(_mlp(x, w1, w2), [w1, w2], create_graph=True)
    dot = (g1 * sg.tensor(v1)).sum() + (g2 * sg.tensor(v2)).sum()
    h1, h2 = sg.grad(dot, [w1, w2])

    def gradient_at(a1, a2):
        p1, p2 = t64(a1), t64(a2)
        return [g.numpy() for g in sg.grad(_mlp(x, p1, p2), [p1, p2])]

    eps = 1e-6
    gp = gradient_at(w1.numpy() + eps * v1, w2.numpy() + eps * v2)
    gm = gradient_at(w1.numpy() - eps * v1, w2.numpy() - eps * v2)
    np.testing.assert_allclose(h1.numpy(), (gp[0] - gm[0]) / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(h2.numpy(), (gp[1] - gm[1]) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_gradient_penalty_style_double_backward():
    # d/dw of ||d/dx (w . x^2)||^2 = d/dw sum (2 w x)^2 = 8 w x^2
    x = t64([1.0, 2.0])
    w = t64([0.5, -1.5])
    (gx,) = sg.grad((w * x * x).sum(), x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    np.testing.assert_allclose(w.grad.numpy(), 8 * w.numpy() * x.numpy() ** 2)


def test_hooks_see_and_replace_gradients():
    x = t64([1.0, 2.0])
    seen = []
    h = x * 2.0
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    remove = x.register_hook(lambda g: g * 10.0)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 10 * 4 * h.numpy())
    remove()
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_retain_grad_on_non_leaf():
    x = t64([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaN is made on purpose
def test_anomaly_mode_names_op_and_user_line_forward():
    x = t64([-1.0, 1.0])
    with sg.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            F.log(x)  # the line the error must name
    msg = str(err.value)
    assert "Log" in msg and "test_engine.py" in msg and "F.log(x)" in msg


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaN is made on purpose
def test_anomaly_mode_names_op_in_backward():
    x = t64([0.0, 1.0])
    with sg.detect_anomaly():
        y = F.sqrt(x).sum()   # d sqrt / dx at 0 is infinite
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    msg = str(err.value)
    assert "Sqrt" in msg and "backward" in msg and "F.sqrt(x)" in msg


def test_without_anomaly_mode_nan_passes_silently():
    x = t64([-1.0])
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.log(x).item())


def test_viz_graph_lists_ops_and_shapes():
    x = sg.tensor(np.ones((4, 3), np.float32), requires_grad=True, name="x")
    w = sg.tensor(np.ones((3, 2), np.float32), requires_grad=True, name="w")
    y = F.relu(x @ w).sum()
    dot = sg.viz.graph(y)
    assert dot.startswith("digraph")
    for needle in ("MatMul", "Relu", "Sum", "(4, 2)", "x\\n(4, 3)", "w\\n(3, 2)", "->"):
        assert needle in dot


# ---- bad input ---------------------------------------------------------------------------------

def test_shape_mismatch_names_shapes():
    a, b = t64(np.ones((3, 4))), t64(np.ones(5))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        a + b


def test_matmul_mismatch_names_shapes():
    a, b = t64(np.ones((3, 4))), t64(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5, 2\)"):
        a @ b


def test_dtype_mix_names_dtypes():
    a = sg.tensor(np.ones(3, np.float32))
    b = sg.tensor(np.ones(3, np.float64))
    with pytest.raises(TypeError, match="float32, float64"):
        a + b


@pytest.mark.parametrize("float_dtype", ["float32", "float64"])
@pytest.mark.parametrize("int_dtype", ["int64", "int32", "uint8", "bool"])
def test_an_integer_operand_keeps_the_floating_dtype(float_dtype, int_dtype):
    # PyTorch's rule: float32 + int64 is float32 (NumPy would give float64)
    x = sg.tensor(np.array([1.5, -2.0, 3.0], float_dtype), requires_grad=True)
    k = sg.tensor(np.array([2, 0, 1], int_dtype))
    for y in (x + k, k + x, x - k, k - x, x * k, k * x, x / (k + 1), (k + 1) / x,
              sg.functional.maximum(x, k), x + np.array([1, 2, 3])):
        assert y.dtype == np.dtype(float_dtype)
    (x * k).sum().backward()
    assert x.grad.dtype == np.dtype(float_dtype)
    np.testing.assert_array_equal(x.grad.numpy(), k.numpy().astype(float_dtype))


def test_a_float_number_with_an_integer_tensor_is_not_truncated():
    k = sg.tensor(np.array([1, 2, 3]))
    y = k * 0.5
    assert y.dtype == sg.backend.get_default_dtype()
    np.testing.assert_allclose(y.numpy(), [0.5, 1.0, 1.5])
    assert (k * 2).dtype == np.int64  # integer with integer stays integer


def test_device_mix_names_devices():
    class FakeGpuArray:  # quacks like a CuPy array on GPU 1, enough for the device check
        __module__ = "cupy._core.core"

        class device:
            id = 1

        shape, dtype = (3,), np.dtype(np.float32)

    a = sg.tensor(np.ones(3, np.float32))
    b = autograd.Tensor(FakeGpuArray())
    with pytest.raises(RuntimeError, match=r"cpu, cuda:1"):
        autograd.function._check_devices(F.elementwise.Add, [a, b])


def test_mixing_cpu_and_cuda_tensors_is_refused(device):
    if device == "cpu":
        pytest.skip("the CPU alone has no second device to mix with")
    a = sg.tensor([1.0, 2.0])
    b = sg.tensor([1.0, 2.0], device=device)
    with pytest.raises(RuntimeError, match="cpu, cuda:0"):
        a + b


def test_only_float_tensors_require_grad():
    with pytest.raises(TypeError, match="int64"):
        sg.tensor([1, 2], requires_grad=True)


def test_cuda_without_cupy_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)     # `import cupy` fails (no CUDA emulator)
    monkeypatch.setattr(sg.backend, "_cupy_module", None)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        sg.zeros(2, device="cuda")


# ---- the same math on every device -------------------------------------------------------------

def test_mlp_step_on_device(device):
    rng = np.random.default_rng(1)
    xa, wa = rng.standard_normal((8, 5)), rng.standard_normal((5, 3))
    x = sg.tensor(xa, device=device, dtype="float64")
    w = sg.tensor(wa, device=device, dtype="float64", requires_grad=True)
    F.log_softmax(F.tanh(x @ w), 1).sum().backward()
    assert w.grad.device == sg.device(device)
    ref = sg.tensor(wa, requires_grad=True)
    F.log_softmax(F.tanh(sg.tensor(xa) @ ref), 1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), ref.grad.numpy(), rtol=1e-10)


def test_gradcheck_on_device(device):
    x = sg.tensor(np.linspace(-1, 1, 6).reshape(2, 3), device=device, requires_grad=True)
    assert gradcheck(lambda t: F.softmax(t * 2.0, 1), [x])


def test_manual_seed_is_reproducible(device):
    sg.manual_seed(123)
    a = sg.randn(4, 3, device=device).numpy()
    sg.manual_seed(123)
    b = sg.randn(4, 3, device=device).numpy()
    np.testing.assert_array_equal(a, b)
    assert sg.randn(2, device=device).dtype == np.float32


def test_to_moves_dtype_differentiably():
    x = sg.tensor(np.ones(3, np.float32), requires_grad=True)
    y = x.to("float64")
    assert y.dtype == np.float64
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 2.0)
