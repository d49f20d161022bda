"""Float64 gradient checks of every registered op, over hypothesis-drawn shapes and values.

``CHECKS`` maps each op name in ``scratchgen.functional.OPS`` to a strategy for its inputs and
a function of Tensors that calls it. The meta-test keeps the two registries equal: an op cannot
be added without a check here. Every op gets a first-order check; ops not marked as lacking
second derivatives also get a second-order one (which also checks that the graph-building
backward agrees with the array-level one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.testing import gradcheck, gradgradcheck
from scratchgen.testing import strategies as sgst


@dataclass
class Check:
    inputs: st.SearchStrategy  # draws a tuple of float64 arrays (the differentiable inputs)
    fn: Callable               # Tensors -> Tensor (or tuple of Tensors)
    params: st.SearchStrategy = st.just({})  # extra non-differentiable arguments


SHAPES = sgst.shapes(0, 3, 1, 4)
SHAPES_1 = sgst.shapes(1, 3, 1, 4)


def unary(fn, low=-2.0, high=2.0, avoid=(), shapes=SHAPES, params=st.just({})):
    return Check(sgst.arrays(shapes, low, high, avoid=avoid).map(lambda a: (a,)), fn, params)


def binary(fn, low=-2.0, high=2.0, low_b=None, high_b=None):
    def build(shapes):
        sa, sb = shapes
        return st.tuples(sgst.arrays(sa, low, high),
                         sgst.arrays(sb, low if low_b is None else low_b,
                                     high if high_b is None else high_b))
    return Check(sgst.broadcastable_shapes(2, 0, 3, 1, 3).flatmap(build), fn)


def axis_params(shapes_and_arrays_ndim):
    """An axis argument: None, one axis or a tuple of axes, valid for ``ndim`` dimensions."""
    ndim = shapes_and_arrays_ndim
    if ndim == 0:
        return st.just(None)
    return st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                     st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                              unique=True).map(tuple))


def _reduction_check(op, distinct=False):
    def build(shape):
        arr = sgst.distinct_arrays(shape) if distinct else sgst.arrays(shape)
        return st.tuples(arr, axis_params(len(shape)), st.booleans())
    return Check(SHAPES.flatmap(build), lambda x, axis, keepdims: op(x, axis, keepdims))


def _softmax_check(op):
    def build(shape):
        return st.tuples(sgst.arrays(shape), st.integers(-len(shape), len(shape) - 1))
    return Check(SHAPES_1.flatmap(build), lambda x, axis: op(x, axis))


def _getitem_indices(shape):
    """Basic and advanced indices valid for ``shape``."""
    n0 = shape[0]
    opts = [
        st.just((slice(None, None, -1),)),
        st.integers(-n0, n0 - 1).map(lambda i: (i,)),
        st.lists(st.integers(0, n0 - 1), min_size=1, max_size=6).map(lambda l: (np.array(l),)),
        st.lists(st.booleans(), min_size=n0, max_size=n0).map(lambda m: (np.array(m),)),
        st.tuples(st.integers(0, n0 - 1), st.integers(0, n0)).map(
            lambda p: (slice(min(p), max(p) + 1),)),
    ]
    if len(shape) > 1:
        opts.append(st.just((Ellipsis, slice(0, 1), None)))
    return st.one_of(*opts).map(lambda idx: idx[0] if len(idx) == 1 else idx)


def _getitem_check():
    def build(shape):
        return st.tuples(sgst.arrays(shape), _getitem_indices(shape))
    return Check(SHAPES_1.flatmap(build), lambda x, index: F.getitem(x, index))


def _index_add_check():
    def build(shape):
        n0 = shape[0]
        return st.lists(st.integers(0, n0 - 1), min_size=1, max_size=6).flatmap(
            lambda idx: st.tuples(sgst.arrays((len(idx),) + shape[1:]), st.just(np.array(idx)),
                                  st.just(shape)))
    return Check(SHAPES_1.flatmap(build), lambda g, index, shape: F.index_add(g, index, shape))


def _permute_check():
    def build(shape):
        return st.tuples(sgst.arrays(shape), st.permutations(list(range(len(shape)))))
    return Check(SHAPES_1.flatmap(build), lambda x, axes: F.permute(x, tuple(axes)))


def _reshape_check():
    def build(shape):
        n = int(np.prod(shape))
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        return st.tuples(sgst.arrays(shape), st.sampled_from(divisors).map(lambda d: (d, -1)))
    return Check(SHAPES.flatmap(build), lambda x, shape: F.reshape(x, shape))


def _broadcast_to_check():
    def build(shape):
        target = st.tuples(st.integers(1, 3)).map(lambda lead: lead + tuple(
            n for n in shape))
        return st.tuples(sgst.arrays(shape), target)
    return Check(SHAPES.flatmap(build), lambda x, shape: F.broadcast_to(x, shape))


def _sum_to_check():
    def build(shapes):
        small, _ = shapes
        big = np.broadcast_shapes(*shapes)
        return st.tuples(sgst.arrays(big), st.just(small))
    return Check(sgst.broadcastable_shapes(2, 0, 3, 1, 3).flatmap(build),
                 lambda x, shape: F.sum_to(x, shape))


def _concat_check(stack=False):
    def build(shape):
        axis = st.integers(0, len(shape) - (0 if stack else 1))
        def arrays_for(ax):
            def one():
                if stack:
                    return sgst.arrays(shape)
                return st.integers(1, 3).flatmap(
                    lambda n: sgst.arrays(shape[:ax] + (n,) + shape[ax + 1:]))
            return st.tuples(st.lists(one(), min_size=1, max_size=3), st.just(ax))
        return axis.flatmap(arrays_for)
    op = F.stack if stack else F.concat
    return Check(SHAPES_1.flatmap(build), lambda xs, axis: op(list(xs), axis))


def _split_check():
    def build(shape):
        n = shape[0]
        return st.tuples(sgst.arrays(shape), st.integers(1, n))
    return Check(SHAPES_1.flatmap(build), lambda x, size: F.split(x, size, 0))


def _pad_check():
    """F.pad: constant padding of up to three trailing axes (any value), and the other modes
    on the last one or two axes of a 2-D to 4-D input, widths within each mode's limits."""
    @st.composite
    def case(draw):
        mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        if mode == "constant":
            shape = draw(SHAPES_1)
            k = draw(st.integers(1, len(shape)))
        else:
            shape = draw(sgst.shapes(2, 4, 2, 4))
            k = draw(st.sampled_from([1, 2]))
        widths = []
        for axis in range(k):
            n = shape[-1 - axis]
            limit = {"reflect": n - 1, "circular": min(n, 2)}.get(mode, 2)
            widths += [draw(st.integers(0, limit)), draw(st.integers(0, limit))]
        value = draw(st.sampled_from([0.0, 0.5])) if mode == "constant" else 0.0
        return (draw(sgst.arrays(shape)), tuple(widths), mode, value)
    return Check(case(), lambda x, widths, mode, value: F.pad(x, widths, mode, value))


def _where_check():
    def build(shapes):
        sa, sb = shapes
        out = np.broadcast_shapes(sa, sb)
        return st.tuples(sgst.arrays(sa), sgst.arrays(sb),
                         st.lists(st.booleans(), min_size=int(np.prod(out)),
                                  max_size=int(np.prod(out))).map(
                             lambda m: np.array(m, dtype=bool).reshape(out)))
    return Check(sgst.broadcastable_shapes(2, 0, 3, 1, 3).flatmap(build),
                 lambda a, b, cond: F.where(cond, a, b))


def _matmul_check():
    def build(dims):
        batch_a, batch_b, n, k, m, vec = dims
        sa = batch_a + (n, k) if vec != "a" else (k,)
        sb = batch_b + (k, m) if vec != "b" else (k,)
        return st.tuples(sgst.arrays(sa), sgst.arrays(sb))
    batch = st.sampled_from([(), (2,), (1,), (2, 1)])
    return Check(st.tuples(batch, st.sampled_from([(), (2,), (1,)]), st.integers(1, 3),
                           st.integers(1, 3), st.integers(1, 3),
                           st.sampled_from(["none", "a", "b"])).flatmap(build), F.matmul)


def _cross_entropy_check():
    def build(p):
        n, c, spatial = p
        shape = (n, c) + spatial
        return st.tuples(sgst.arrays(shape),
                         st.lists(st.integers(0, c - 1), min_size=n * int(np.prod(spatial)),
                                  max_size=n * int(np.prod(spatial))).map(
                             lambda t: np.array(t, dtype=np.int64).reshape((n,) + spatial)))
    return Check(st.tuples(st.integers(1, 4), st.integers(2, 5),
                           st.sampled_from([(), (2,), (2, 2)])).flatmap(build),
                 lambda x, t: F.cross_entropy(x, t))


def _same_shape_pair(low_b=-2.0, high_b=2.0, avoid_diff=False):
    def build(shape):
        a = sgst.arrays(shape)
        if avoid_diff:  # keep a - b away from 0 (the kink of |a - b|)
            return st.tuples(a, sgst.arrays(shape, 0.1, 1.0)).map(lambda p: (p[0], p[0] + p[1]))
        return st.tuples(a, sgst.arrays(shape, low_b, high_b))
    return SHAPES_1.flatmap(build)


@st.composite
def _conv_case(draw, transpose=False):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    if transpose:
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        out_pad = tuple(draw(st.integers(0, s - 1)) for s in stride)
        out_hw = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, s, p, d, k, op in
                  zip((h, w), stride, padding, dilation, (kh, kw), out_pad)]
        if min(out_hw) <= 0:
            padding = (0, 0)
        x = draw(sgst.arrays((n, c, h, w)))
        wt = draw(sgst.arrays((c, o, kh, kw)))
        b = draw(st.one_of(st.none(), sgst.arrays((o,))))
        return (x, wt, b, stride, padding, out_pad, dilation)
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, (kh, kw))]
    h = draw(st.integers(max(1, ext[0] - 2 * padding[0]), ext[0] + 3))
    w = draw(st.integers(max(1, ext[1] - 2 * padding[1]), ext[1] + 3))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate"]))
    if mode != "zeros" and (padding[0] >= h or padding[1] >= w):
        mode = "zeros"
    x = draw(sgst.arrays((n, c, h, w)))
    wt = draw(sgst.arrays((o, c, kh, kw)))
    b = draw(st.one_of(st.none(), sgst.arrays((o,))))
    return (x, wt, b, stride, padding, dilation, mode)


def _conv2d(x, w, b, stride, padding, dilation, mode):
    return F.conv2d(x, w, b, stride, padding, dilation, padding_mode=mode)


def _conv_t(x, w, b, stride, padding, out_pad, dilation):
    return F.conv_transpose2d(x, w, b, stride, padding, out_pad, dilation)


@st.composite
def _pad2d_case(draw):
    h, w = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    top = st.integers(0, h - 1 if mode == "reflect" else 2)
    side = st.integers(0, w - 1 if mode == "reflect" else 2)
    pads = (draw(side), draw(side), draw(top), draw(top))
    value = draw(st.sampled_from([0.0, 0.7])) if mode == "zeros" else 0.0
    return (draw(sgst.arrays((draw(st.integers(1, 2)), 2, h, w))), pads, mode, value)


@st.composite
def _pool_case(draw, distinct=False):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h, w = draw(st.integers(k[0], 5)), draw(st.integers(k[1], 5))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    x = draw(sgst.distinct_arrays(shape) if distinct else sgst.arrays(shape))
    ceil = draw(st.booleans())
    return (x, k, stride, padding, ceil)


@st.composite
def _interp_case(draw):
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    ac = draw(st.booleans()) if mode == "bilinear" else None
    return (draw(sgst.arrays((1, 2, h, w))), size, mode, ac)


@st.composite
def _attention_case(draw):
    batch = draw(st.sampled_from([(), (2,), (2, 2)]))
    lq, lk, d, dv = (draw(st.integers(1, 4)) for _ in range(4))
    q = draw(sgst.arrays(batch + (lq, d)))
    k = draw(sgst.arrays(batch + (lk, d)))
    v = draw(sgst.arrays(batch + (lk, dv)))
    kind = draw(st.sampled_from(["none", "causal", "mask"]))
    mask = None
    if kind == "mask":
        mask = np.array(draw(st.lists(st.booleans(), min_size=lq * lk, max_size=lq * lk)),
                        dtype=bool).reshape(lq, lk)
    return (q, k, v, mask, kind == "causal")  # causal with Lq != Lk too: top-left aligned


CHECKS: dict[str, Check] = {
    "conv2d": Check(_conv_case(), _conv2d),
    "conv_transpose2d": Check(_conv_case(transpose=True), _conv_t),
    "pad2d": Check(_pad2d_case(), lambda x, pads, mode, value: F.pad2d(x, pads, mode, value)),
    "max_pool2d": Check(_pool_case(distinct=True),
                        lambda x, k, s, p, c: F.max_pool2d(x, k, s, p, ceil_mode=c)),
    "avg_pool2d": Check(_pool_case(),
                        lambda x, k, s, p, c: F.avg_pool2d(x, k, s, p, ceil_mode=c)),
    "interpolate": Check(_interp_case(), lambda x, size, mode, ac: F.interpolate(
        x, size=size, mode=mode, align_corners=ac)),
    "scaled_dot_product_attention": Check(
        _attention_case(),
        lambda q, k, v, mask, causal: F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                                     is_causal=causal)),
    "add": binary(F.add),
    "sub": binary(F.sub),
    "mul": binary(F.mul),
    "div": binary(F.div, low_b=0.5, high_b=2.0),
    "neg": unary(F.neg),
    "pow": Check(st.one_of(
        sgst.arrays(SHAPES, 0.2, 2.0).map(lambda a: (a, 2.5)),
        sgst.broadcastable_shapes(2, 0, 2, 1, 3).flatmap(
            lambda s: st.tuples(sgst.arrays(s[0], 0.2, 2.0), sgst.arrays(s[1], -1.5, 1.5)))),
        lambda x, y: F.pow(x, y)),
    "exp": unary(F.exp),
    "log": unary(F.log, 0.2, 3.0),
    "log1p": unary(F.log1p, -0.5, 3.0),
    "sqrt": unary(F.sqrt, 0.2, 3.0),
    "abs": unary(F.abs, avoid=(0.0,)),
    "tanh": unary(F.tanh),
    "sigmoid": unary(F.sigmoid, -4, 4),
    "relu": unary(F.relu, avoid=(0.0,)),
    "leaky_relu": unary(lambda x: F.leaky_relu(x, 0.2), avoid=(0.0,)),
    "elu": unary(lambda x: F.elu(x, 0.7), avoid=(0.0,)),
    "softplus": unary(lambda x: F.softplus(x, beta=1.5), -4, 4),
    "clip": unary(lambda x: F.clip(x, -0.5, 0.8), avoid=(-0.5, 0.8)),
    "maximum": Check(_same_shape_pair(avoid_diff=True), F.maximum),
    "minimum": Check(_same_shape_pair(avoid_diff=True), F.minimum),
    "where": _where_check(),
    "cast": unary(lambda x: F.cast(x, "float64")),
    "to_device": unary(lambda x: F.to_device(x, "cpu")),
    "clone": unary(F.clone),
    "sum": _reduction_check(F.sum),
    "mean": _reduction_check(F.mean),
    "var": Check(SHAPES_1.flatmap(lambda s: st.tuples(sgst.arrays(s), st.just(len(s) - 1)))
                 .filter(lambda p: p[0].shape[p[1]] > 1),
                 lambda x, axis: F.var(x, axis, ddof=1)),
    "max": _reduction_check(F.max, distinct=True),
    "min": _reduction_check(F.min, distinct=True),
    "logsumexp": _reduction_check(F.logsumexp),
    "softmax": _softmax_check(F.softmax),
    "log_softmax": _softmax_check(F.log_softmax),
    "sum_to": _sum_to_check(),
    "broadcast_to": _broadcast_to_check(),
    "reshape": _reshape_check(),
    "permute": _permute_check(),
    "getitem": _getitem_check(),
    "index_add": _index_add_check(),
    "concat": _concat_check(),
    "stack": _concat_check(stack=True),
    "split": _split_check(),
    "pad": _pad_check(),
    "flatten": unary(lambda x: F.flatten(x, 1), shapes=sgst.shapes(2, 3, 1, 3)),
    "unsqueeze": unary(lambda x: F.unsqueeze(x, -1)),
    "squeeze": unary(lambda x: F.squeeze(x), shapes=sgst.shapes(1, 3, 1, 2)),
    "matmul": _matmul_check(),
    "linear": Check(st.tuples(st.sampled_from([(3,), (2, 3), (2, 2, 3)]), st.integers(1, 3),
                              st.booleans()).flatmap(
        lambda p: st.tuples(sgst.arrays(p[0]), sgst.arrays((p[1], 3)),
                            sgst.arrays((p[1],)) if p[2] else st.none())),
        lambda x, w, b: F.linear(x, w, b)),
    "binary_cross_entropy": Check(
        SHAPES_1.flatmap(lambda shape: st.tuples(
            sgst.arrays(shape, 0.1, 0.9), sgst.arrays(shape, 0.0, 1.0),
            st.one_of(st.none(), sgst.arrays(shape[-1:], 0.5, 2.0)))),
        lambda p, t, w: F.binary_cross_entropy(p, t, weight=w)),
    "normalize_over": Check(
        SHAPES_1.flatmap(lambda shape: st.tuples(
            sgst.arrays(shape),
            st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                     unique=True).map(lambda axes: tuple(sorted(axes))))),
        lambda x, axes: F.normalize_over(x, axes, 1e-3)[0]),
    "normalize_affine": Check(
        sgst.shapes(2, 4, 1, 4).flatmap(lambda shape: st.tuples(
            sgst.arrays(shape), sgst.arrays(shape[1:2], 0.5, 2.0), sgst.arrays(shape[1:2]),
            st.just((0,) + tuple(range(2, len(shape)))) if len(shape) == 2 else
            st.sampled_from([(0,) + tuple(range(2, len(shape))), tuple(range(2, len(shape)))]))),
        lambda x, gamma, beta, axes: F.normalize_affine(x, gamma, beta, axes, 1e-3)[0]),
    "binary_cross_entropy_with_logits": Check(
        _same_shape_pair(0.0, 1.0),
        lambda x, t: F.binary_cross_entropy_with_logits(x, t)),
    "cross_entropy": _cross_entropy_check(),
    "mse_loss": Check(_same_shape_pair(), F.mse_loss,
                      st.fixed_dictionaries({"reduction": st.sampled_from(["mean", "sum", "none"])})),
    "l1_loss": Check(_same_shape_pair(avoid_diff=True), F.l1_loss),
}


def _to_tensors(values, device="cpu"):
    """float64 arrays become Tensors requiring grad; lists of arrays become lists of Tensors;
    index and mask arrays move to the device; everything else (ints, shapes) passes through."""
    out = []
    for v in values:
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            out.append(sg.tensor(v, requires_grad=True, device=device))
        elif isinstance(v, np.ndarray):
            out.append(sg.backend.to_device(v, device))
        elif isinstance(v, list) and v and isinstance(v[0], np.ndarray):
            out.append([sg.tensor(a, requires_grad=True, device=device) for a in v])
        else:
            out.append(v)
    return out


def _flatten_inputs(values):
    """gradcheck wants a flat list of inputs: expand list arguments and rebuild them in fn."""
    flat, layout = [], []
    for v in values:
        if isinstance(v, list):
            layout.append(len(v))
            flat.extend(v)
        else:
            layout.append(None)
            flat.append(v)
    return flat, layout


def _regroup(flat, layout):
    out, i = [], 0
    for n in layout:
        if n is None:
            out.append(flat[i])
            i += 1
        else:
            out.append(list(flat[i:i + n]))
            i += n
    return out


def run_check(name: str, values, second_order: bool, device: str = "cpu") -> None:
    check = CHECKS[name]
    tensors = _to_tensors(values, device)
    flat, layout = _flatten_inputs(tensors)

    def fn(*args):
        return check.fn(*_regroup(list(args), layout))

    gradcheck(fn, flat)
    if second_order:
        gradgradcheck(fn, flat)


def test_every_registered_op_has_a_check():
    ops, checks = set(F.OPS), set(CHECKS)
    assert ops - checks == set(), f"ops without a gradient check: {sorted(ops - checks)}"
    assert checks - ops == set(), f"checks of ops that are not registered: {sorted(checks - ops)}"


def test_ops_lacking_second_derivatives_say_why():
    for info in F.OPS.values():
        if info.not_twice_differentiable is not None:
            assert len(info.not_twice_differentiable) > 10, info.name


CORE = sorted(CHECKS)


@pytest.mark.parametrize("name", CORE)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_gradients(name, device, data):
    values = data.draw(CHECKS[name].inputs, label="inputs")
    second = F.OPS[name].not_twice_differentiable is None
    run_check(name, values, second, device)
