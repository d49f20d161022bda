"""The fast kernels equal their textbook versions (kernels/reference/) in float64, and the one
switch (SCRATCHGEN_REFERENCE=1, or ``use_reference_kernels``) runs everything on the latter:
a small network trains to the same weights either way."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conv_cases import close, conv_cases, conv_transpose_cases, layout, rand
import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.kernels import attention, conv, pad, pool, reference, resample

SETTINGS = settings(max_examples=60, deadline=None)
TIGHT = 1e-12


def _both(fn, *args, **kwargs):
    """``fn`` on the fast kernels and on the reference ones."""
    fast = fn(*args, **kwargs)
    with reference.use(True):
        ref = fn(*args, **kwargs)
    return fast, ref


def _equal(pair, rtol=TIGHT):
    fast, ref = pair
    if isinstance(fast, tuple):
        for a, b in zip(fast, ref):
            _equal((a, b), rtol)
        return
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(fast[~finite], ref[~finite])  # lse = -inf: no key allowed
    close(fast[finite], ref[finite], rtol)


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_equals_reference(case, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rand(rng, x_shape), rand(rng, w_shape), rand(rng, w_shape[:1])
    with layout(planes):
        y = conv.conv2d_forward(x, w, b, s, p, d)
        gy = rand(rng, y.shape)
        _equal(_both(conv.conv2d_forward, x, w, b, s, p, d))
        _equal(_both(conv.conv2d_backward_input, gy, w, x_shape, s, p, d))
        _equal(_both(conv.conv2d_backward_weight, gy, x, w_shape, s, p, d))
        _equal(_both(conv.conv2d_backward_bias, gy))
        fast, ref = _both(conv.conv2d_forward_with_columns, x, w, b, s, p, d)
        assert ref[1] is None
        _equal((fast[0], ref[0]))


@SETTINGS
@given(conv_transpose_cases(), st.booleans())
def test_conv_transpose2d_equals_reference(case, planes):
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rand(rng, x_shape), rand(rng, w_shape), rand(rng, w_shape[1:2])
    with layout(planes):
        y = conv.conv_transpose2d_forward(x, w, b, s, p, op, d)
        gy = rand(rng, y.shape)
        _equal(_both(conv.conv_transpose2d_forward, x, w, b, s, p, op, d))
        _equal(_both(conv.conv_transpose2d_backward_input, gy, w, s, p, d, op))
        _equal(_both(conv.conv_transpose2d_backward_weight, gy, x, w_shape, s, p, d))


def test_conv_paths_of_big_layers_equal_reference():
    """Shapes that take the stride-phase, NHWC col2im and 1 x 1 paths of the fast kernels."""
    rng = np.random.default_rng(0)
    for x_shape, w_shape, s, p in [((3, 64, 8, 8), (6, 64, 4, 4), 2, 1),
                                   ((3, 9, 7, 6), (5, 9, 3, 3), 2, 1),
                                   ((3, 5, 4, 4), (6, 5, 1, 1), 1, 0)]:
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        gy = rand(rng, conv.conv2d_forward(x, w, None, s, p).shape)
        _equal(_both(conv.conv2d_forward, x, w, None, s, p))
        _equal(_both(conv.conv2d_backward_input, gy, w, x_shape, s, p))
        _equal(_both(conv.conv2d_backward_weight, gy, x, w_shape, s, p))


# ---------------------------------------------------------------------------------------------
# pooling, padding, resampling
# ---------------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = tuple(draw(st.integers(d[a] * (k[a] - 1) + 1, 9)) for a in range(2))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + hw, k, s, p, d, \
        draw(st.booleans()), draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(pool_cases())
def test_max_pool_equals_reference(case):
    x_shape, k, s, p, d, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    x = rand(rng, x_shape)
    x[..., 0, :] = x[..., 1 % x_shape[2], :]  # ties: the first maximum in window order wins
    (y, argmax), (y_ref, argmax_ref) = _both(pool.max_pool2d_forward, x, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    gy = rand(rng, y.shape)
    _equal(_both(pool.max_pool2d_backward, gy, argmax, x_shape))


@SETTINGS
@given(pool_cases(), st.booleans(), st.sampled_from([None, 3]))
def test_avg_pool_equals_reference(case, count_include_pad, divisor):
    x_shape, k, s, p, _, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    x = rand(rng, x_shape)
    args = (k, s, p, ceil_mode, count_include_pad, divisor)
    y = pool.avg_pool2d_forward(x, *args)
    _equal(_both(pool.avg_pool2d_forward, x, *args))
    _equal(_both(pool.avg_pool2d_backward, rand(rng, y.shape), x_shape, *args))


@SETTINGS
@given(st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
       st.tuples(*[st.integers(0, 3)] * 4), st.integers(0, 2**31 - 1))
def test_pad_equals_reference(mode, pads, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, (2, 3, 4, 5))
    value = 0.5 if mode == "zeros" else 0.0
    y = pad.pad2d(x, pads, mode, value)
    _equal(_both(pad.pad2d, x, pads, mode, value))
    _equal(_both(pad.pad2d_backward, rand(rng, y.shape), pads, mode))


@SETTINGS
@given(st.tuples(st.integers(1, 7), st.integers(1, 7)), st.tuples(st.integers(1, 15),
       st.integers(1, 15)), st.booleans(), st.integers(0, 2**31 - 1))
def test_resample_equals_reference(in_hw, out_hw, align_corners, seed):
    rng = np.random.default_rng(seed)
    x, gy = rand(rng, (2, 3) + in_hw), rand(rng, (2, 3) + out_hw)
    _equal(_both(resample.upsample_nearest2d, x, out_hw))
    _equal(_both(resample.upsample_nearest2d_backward, gy, in_hw))
    _equal(_both(resample.upsample_bilinear2d, x, out_hw, align_corners))
    _equal(_both(resample.upsample_bilinear2d_backward, gy, in_hw, align_corners))


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.booleans(),
       st.sampled_from(["none", "same", "per-sequence"]), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_attention_equals_reference(lq, lk, d, causal, mask_kind, broadcast_k, seed):
    rng = np.random.default_rng(seed)
    q = rand(rng, (2, 3, lq, d))
    k = rand(rng, ((1,) if broadcast_k else (2,)) + (3, lk, d))
    v = rand(rng, k.shape[:-1] + (d + 1,))
    mask = {"none": None, "same": rng.random((lq, lk)) < 0.7,
            "per-sequence": rng.random((2, 3, lq, lk)) < 0.7}[mask_kind]
    (out, lse), ref = _both(attention.attention_forward, q, k, v, mask, causal)
    _equal(((out, lse), ref))
    dout = rand(rng, out.shape)
    _equal(_both(attention.attention_backward, dout, q, k, v, out, lse, mask, causal))


# ---------------------------------------------------------------------------------------------
# the switch
# ---------------------------------------------------------------------------------------------


def test_switch_by_call_and_context_manager():
    assert not reference.enabled()
    with sg.use_reference_kernels():
        assert reference.enabled()
        with sg.use_reference_kernels(False):
            assert not reference.enabled()
        assert reference.enabled()
    assert not reference.enabled()
    try:
        sg.use_reference_kernels(True)
        assert reference.enabled()
    finally:
        sg.use_reference_kernels(False)
    assert not reference.enabled()


@pytest.mark.parametrize("value, expected", [("1", "True"), ("0", "False"), ("", "False")])
def test_switch_by_environment(value, expected):
    env = dict(os.environ, SCRATCHGEN_REFERENCE=value)
    code = "from scratchgen.kernels import reference; print(reference.enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected


def test_switch_routes_the_kernels_and_the_engine(monkeypatch):
    """With the switch on, the reference col2im runs and no op's ``backward_arrays`` does."""
    calls = []
    monkeypatch.setattr(reference.conv, "col2im",
                        lambda *a, f=reference.conv.col2im: calls.append(1) or f(*a))
    x = sg.tensor(np.ones((1, 2, 6, 6)), requires_grad=True)
    w = sg.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    monkeypatch.setattr(type(y.grad_fn), "backward_arrays",
                        lambda self, g: pytest.fail("backward_arrays ran"))
    with sg.use_reference_kernels():
        y.sum().backward()
    assert calls and x.grad is not None and w.grad is not None


class _Net(nn.Module):
    """Two convolutions around a pooling, a self-attention and a transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")
        self.attn = nn.SelfAttention2d(4)
        self.up = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(3, 1, 3, stride=2, padding=1)

    def forward(self, x):
        h = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)
        h = self.attn(h)
        h = F.interpolate(F.avg_pool2d(self.up(h), 2), scale_factor=2, mode="bilinear")
        return self.conv2(F.tanh(h))


def _train(steps: int = 4) -> list[np.ndarray]:
    sg.manual_seed(0)
    net = _Net()
    opt = sg.optim.Adam(net.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    x, target = sg.tensor(rng.standard_normal((3, 1, 8, 8))), sg.tensor(rng.random((3, 1, 4, 4)))
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in net.parameters()]


def test_a_small_network_trains_the_same_on_the_reference_kernels():
    previous = sg.get_default_dtype()
    sg.set_default_dtype("float64")
    try:
        fast = _train()
        with sg.use_reference_kernels():
            ref = _train()
    finally:
        sg.set_default_dtype(previous)
    assert len(fast) == len(ref) > 0
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
