"""Draw the computation graph behind a tensor, as Graphviz dot text."""
from __future__ import annotations

from scratchgen.autograd import Tensor, graph_nodes

__all__ = ["graph"]


def _label(t: Tensor, fallback: str) -> str:
    name = t.name or fallback
    return f"{name}\\n{tuple(t.shape)} {t.dtype}"


def graph(t: Tensor, name: str = "output") -> str:
    """The graph that ``t.backward()`` would walk, in the Graphviz dot language.

    Op nodes are boxes named by their Function (``MatMul``, ``Relu``...) with their output
    shapes; leaf tensors are ellipses, filled when they require grad. Render it with
    ``dot -Tpng graph.dot -o graph.png``, or paste it into any Graphviz viewer.
    """
    lines = ["digraph scratchgen {", '  rankdir="BT";',
             '  node [fontname="Helvetica", fontsize=10];']
    out_id = "t_out"
    lines.append(f'  {out_id} [label="{_label(t, name)}", shape=ellipse, style=bold];')
    if t._ctx is None:
        lines.append("}")
        return "\n".join(lines)
    nodes = graph_nodes([t._ctx])
    ids = {id(fn): f"op{i}" for i, fn in enumerate(nodes)}
    lines.append(f"  {ids[id(t._ctx)]} -> {out_id};")
    leaves: dict[int, str] = {}
    for fn in nodes:
        fid = ids[id(fn)]
        shapes = ", ".join(str(tuple(o.shape)) for o in (fn._outputs or ()))
        lines.append(f'  {fid} [label="{fn.name}\\n-> {shapes}", shape=box];')
        for k, inp in enumerate(fn.inputs or ()):
            if inp._ctx is not None:
                lines.append(f"  {ids[id(inp._ctx)]} -> {fid};")
                continue
            lid = leaves.get(id(inp))
            if lid is None:
                lid = f"leaf{len(leaves)}"
                leaves[id(inp)] = lid
                style = ', style=filled, fillcolor="lightblue"' if inp.requires_grad else ""
                lines.append(f'  {lid} [label="{_label(inp, "const" if not inp.requires_grad else "leaf")}", '
                             f"shape=ellipse{style}];")
            lines.append(f"  {lid} -> {fid};")
    lines.append("}")
    return "\n".join(lines)
