"""The backward pass: ``backward`` and ``grad``.

The chain rule at every node, from the outputs to the leaves:

    dL/dinput_j = sum_i  (d output_i / d input_j)^T  dL/doutput_i       (a vector-Jacobian product)

Each node collects the gradients of its outputs (``node._pending``) and waits in a priority
queue ordered by creation number, newest first. A node's consumers were all created after it,
so it runs only once all of them have run: by then its output gradients are complete. The
creation numbers are the one topological order of the graph (``graph_nodes`` uses it too).

Without ``create_graph`` the gradients in flight are raw arrays: nothing is recorded, so there
is no need to wrap them, and a node's ``backward_arrays`` (its derivative on arrays) is used
where it has one. With ``create_graph`` they are Tensors, every node's Tensor ``backward`` runs
with recording on, and the gradients can be differentiated again (WGAN-GP, R1).
"""
from __future__ import annotations

import heapq
from typing import Any, Sequence

from scratchgen.autograd import anomaly, grad_mode
from scratchgen.autograd.function import Function, freed_error
from scratchgen.autograd.hooks import run_hooks
from scratchgen.autograd.tensor import Tensor, tensor
from scratchgen.kernels import reference

__all__ = ["backward", "grad", "graph_nodes"]


def graph_nodes(roots: Sequence[Function]) -> list[Function]:
    """The nodes reachable from ``roots``, each before the nodes that made its inputs (newest
    first, by creation number)."""
    seen: dict[int, Function] = {}
    stack = list(roots)
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen[id(fn)] = fn
        for t in fn.inputs or ():
            if t._ctx is not None and id(t._ctx) not in seen:
                stack.append(t._ctx)
    return sorted(seen.values(), key=lambda fn: -fn._seq)


def _as_grad_tensor(g: Any, like: Tensor) -> Tensor:
    if not isinstance(g, Tensor):
        g = tensor(g, dtype=like.dtype, device=like.device)
    if g.shape != like.shape:
        raise ValueError(
            f"the gradient given for a tensor of shape {like.shape} has shape {g.shape}"
        )
    if g.dtype != like.dtype:
        raise TypeError(f"the gradient has dtype {g.dtype} but the tensor has dtype {like.dtype}")
    return g


def _root_gradient(t: Tensor, g: Any) -> Tensor:
    """dL/dt for an output ``t`` that backward starts from: ``g``, or 1 for a scalar."""
    if not t.requires_grad:
        raise RuntimeError(
            f"backward on a tensor of shape {t.shape} that does not require grad: it "
            "does not depend on any tensor with requires_grad=True"
        )
    if g is not None:
        return _as_grad_tensor(g, t)
    if t.data.size != 1:
        raise RuntimeError(
            f"backward() on a tensor of shape {t.shape} needs a gradient argument: "
            "a gradient can be created implicitly only for outputs with one element"
        )
    return Tensor(t.xp.ones(t.data.shape, t.data.dtype))


class _Walk:
    """The state of one backward pass: the queue of nodes and where gradients go.

    With ``targets`` None, leaf gradients accumulate into ``leaf.grad``. Otherwise (``grad()``)
    the targets' gradients are collected and returned, no ``.grad`` is touched, and only the
    nodes from which a target can be reached are run.
    """

    def __init__(self, raw: bool, targets: Sequence[Tensor] | None) -> None:
        self.raw = raw
        self.queue: list[tuple[int, Function]] = []
        self.targets = targets
        self.leaf_grads: dict[int, Any] = {}  # id(target leaf) -> its gradient
        self.node_grads: dict[tuple[int, int], Any] = {}  # (id(node), output) of targets
        self.target_leaves: set[int] = set()
        self.target_outputs: set[tuple[int, int]] = set()
        self.needed: set[int] = set()

    def send(self, t: Tensor, g: Any) -> None:
        """Deliver ``g``, a gradient of the tensor ``t``, to where it belongs."""
        fn = t._ctx
        if fn is not None:  # add to the pending gradient of the node's output; queue the node
            pending = fn._pending
            if pending is None:
                if fn._outputs is None:
                    raise freed_error(fn.name)
                pending = fn._pending = [None] * len(fn._outputs)
                heapq.heappush(self.queue, (-fn._seq, fn))  # numbers are unique: no fn compared
            prev = pending[t._idx]
            pending[t._idx] = g if prev is None else prev + g
        elif self.targets is None:
            self.to_leaf(t, g)
        elif id(t) in self.target_leaves:
            prev = self.leaf_grads.get(id(t))
            self.leaf_grads[id(t)] = g if prev is None else prev + g

    def to_leaf(self, leaf: Tensor, g: Any) -> None:
        raw = self.raw
        if leaf._hooks:
            g = run_hooks(leaf._hooks, Tensor(g) if raw else g)
            g = g.data if raw else g
        if raw:
            leaf.grad = Tensor(g) if leaf.grad is None else Tensor(leaf.grad.data + g)
        else:
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    def aim_at(self, targets: Sequence[Tensor]) -> None:
        """Keep only the nodes that lead to a target (called once the roots are queued)."""
        for t in targets:
            if not t.requires_grad:
                raise RuntimeError(
                    f"an input of shape {t.shape} does not require grad, so it has no gradient"
                )
            if t._ctx is None:
                self.target_leaves.add(id(t))
            else:
                self.target_outputs.add((id(t._ctx), t._idx))
        for fn in reversed(graph_nodes([fn for _, fn in self.queue])):  # producers first
            for t in fn.inputs or ():
                c = t._ctx
                if (c is None and id(t) in self.target_leaves) or (
                    c is not None and (id(c) in self.needed or (id(c), t._idx) in self.target_outputs)
                ):
                    self.needed.add(id(fn))
                    break

    def take(self, fn: Function) -> list[Any] | None:
        """The complete output gradients of ``fn``, through its hooks; None when ``fn`` leads
        to no target."""
        gouts = fn._pending
        fn._pending = None
        if fn._hooks:
            wrap = Tensor if self.raw else (lambda g: g)
            gouts = [g if g is None else run_hooks(fn._hooks.get(i), wrap(g))
                     for i, g in enumerate(gouts)]
            if self.raw:
                gouts = [g if g is None else g.data for g in gouts]
        if self.targets is not None:
            fid = id(fn)
            for i, g in enumerate(gouts):
                if g is not None and (fid, i) in self.target_outputs:
                    self.node_grads[(fid, i)] = g
            if fid not in self.needed:
                return None
        if len(gouts) > 1:  # an output nobody used gets a zero gradient
            gouts = [(fn._outputs[i] * 0 if self.raw else fn._zeros_like_output(i))
                     if g is None else g for i, g in enumerate(gouts)]
        return gouts

    def result(self) -> list[Tensor | None]:
        found = [self.node_grads.get((id(t._ctx), t._idx)) if t._ctx is not None
                 else self.leaf_grads.get(id(t)) for t in self.targets]
        return [g if g is None or not self.raw else Tensor(g) for g in found]


def _input_gradients(fn: Function, gouts: list[Any], raw: bool) -> tuple[Any, ...]:
    """The node's vector-Jacobian products: one gradient (or None) per input."""
    # With the reference kernels on, every op differentiates through its Tensor backward.
    array_backward = fn.backward_arrays if raw and not reference.enabled() else None
    if array_backward is not None:
        gins = array_backward(*gouts)
    elif raw:
        gins = fn.backward(*[Tensor(g) for g in gouts])
        gins = tuple([None if g is None else g.data
                      for g in (gins if type(gins) is tuple else (gins,))])
    else:
        gins = fn.backward(*gouts)
    if type(gins) is not tuple:
        gins = (gins,)
    if len(gins) != len(fn.inputs):
        raise RuntimeError(
            f"{fn.name}.backward returned {len(gins)} gradients for {len(fn.inputs)} inputs"
        )
    return gins


def _backprop(roots: Sequence[Tensor], root_grads: Sequence[Any] | None,
              retain_graph: bool, create_graph: bool,
              targets: Sequence[Tensor] | None = None) -> list[Tensor | None] | None:
    """The engine behind ``backward`` and ``grad`` (see the module docstring)."""
    if root_grads is None:
        root_grads = [None] * len(roots)
    if len(root_grads) != len(roots):
        raise ValueError(f"got {len(root_grads)} gradients for {len(roots)} outputs")
    raw = not create_graph
    walk = _Walk(raw, targets)
    if targets is not None:
        walk.target_leaves = {id(t) for t in targets if t._ctx is None}
    prev_mode = grad_mode.enabled
    grad_mode.enabled = create_graph
    try:
        for t, g in zip(roots, root_grads):
            g = _root_gradient(t, g)
            walk.send(t, g.data if raw else g)
        if targets is not None:
            walk.aim_at(targets)
        while walk.queue:
            fn = heapq.heappop(walk.queue)[1]
            gouts = walk.take(fn)
            if gouts is None:
                continue
            if fn.inputs is None:
                raise freed_error(fn.name)
            if anomaly.enabled:
                anomaly.running = fn
            gins = _input_gradients(fn, gouts, raw)
            if anomaly.enabled:
                anomaly.check_backward(fn, [g if raw else g.data for g in gins if g is not None])
            for inp, g, need in zip(fn.inputs, gins, fn.needs_input_grad):
                if g is None or not need:
                    continue
                if g.shape != inp.data.shape:
                    raise RuntimeError(
                        f"{fn.name}.backward returned a gradient of shape {g.shape} for an "
                        f"input of shape {inp.shape}"
                    )
                walk.send(inp, g)
            if not retain_graph:
                fn._free()
    finally:
        grad_mode.enabled = prev_mode
        anomaly.running = None
        for _, fn in walk.queue:  # after an error: leave no half-summed gradients behind
            fn._pending = None
    return None if targets is None else walk.result()


def backward(tensors: Sequence[Tensor], grad_tensors: Sequence[Any] | None = None,
             retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate the gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves."""
    _backprop(list(tensors), None if grad_tensors is None else list(grad_tensors),
              retain_graph or create_graph, create_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) as a tuple, without touching any ``.grad``.

    With ``create_graph=True`` the returned gradients are themselves differentiable, so a
    penalty on them (WGAN-GP's ``(||grad D(x)|| - 1)^2``) can be backpropagated.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    found = _backprop(outs, grad_outputs, retain_graph, create_graph, targets=ins)
    assert found is not None
    result: list[Tensor | None] = []
    for i, (t, g) in enumerate(zip(ins, found)):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        result.append(g)
    return tuple(result)
