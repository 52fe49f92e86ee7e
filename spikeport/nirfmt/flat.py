"""Read any producer's ``.nir`` file into a validated, flat graph with per-sample shapes.

Every problem is a one-line :class:`SpikeportError` naming the file and the node: a file that is
missing, not HDF5 or truncated, an unknown node type, an edge to a node that does not exist, a NaN
or infinite parameter, shapes that do not fit, more than one Input or Output.

Nested subgraphs (a ``NIRGraph`` inside a ``NIRGraph``, e.g. snnTorch's recurrent layers) are
inlined: inner node ``x`` of subgraph ``s`` becomes ``s.x``; an edge to ``s`` (or ``s.<input>``)
enters its Input node, an edge from ``s`` (or ``s.<output>``) leaves its Output node; the inner
Input/Output nodes stay as pass-through nodes of kind ``"Identity"``.

Time: an edge that closes a cycle (found by depth-first search from the Input, in edge order) is a
*recurrent* edge and carries the source's value of the previous step; every other edge carries the
value of the same step. ``order`` lists the nodes so that each node comes after the same-step
sources it reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeport.errors import SpikeportError
from spikeport.nirfmt import spec

KNOWN, TAU_FIELDS = spec.KNOWN_NODES, spec.TAU_FIELDS  # +inf allowed in time constants: no leak
MAX_ELEMENTS = 200_000_000


@dataclass
class FlatGraph:
    """A flat NIR graph. ``nodes``: name -> NIR node (kind ``Identity`` for inlined subgraph ports is
    a plain string); ``shapes``: per-sample output shape of each node (no batch, no time);
    ``sources[n]``: list of (source, recurrent) feeding n, summed; ``order``: evaluation order."""

    path: str
    nodes: dict[str, Any]
    kinds: dict[str, str]
    edges: list[tuple[str, str]]
    recurrent: set[tuple[str, str]]
    order: list[str]
    shapes: dict[str, tuple[int, ...]]
    input: str
    output: str
    metadata: dict = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, list[tuple[str, bool]]]:
        out: dict[str, list[tuple[str, bool]]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            out[b].append((a, (a, b) in self.recurrent))
        return out

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shapes[self.input]

    def err(self, node: str, why: str) -> SpikeportError:
        return SpikeportError(f"{self.path}: node '{node}': {why}")


def read_any(path: str | Path):
    """The guarded read of any producer's ``.nir`` file (:func:`spikeport.nirfmt.guard.read`)."""
    from spikeport.nirfmt import guard

    return guard.read(path)


def _inline(graph, prefix: str, nodes: dict, kinds: dict, edges: list, path: str) -> tuple[list[str], list[str]]:
    """Add ``graph``'s nodes under ``prefix``; returns (input names, output names) of this level."""
    ports_in: dict[str, tuple[list[str], list[str]]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        kind = type(node).__name__
        if kind == "NIRGraph":
            ports_in[name] = _inline(node, f"{full}.", nodes, kinds, edges, path)
        else:
            nodes[full], kinds[full] = node, kind
    names = set(graph.nodes)

    def end(ref: str, side: int) -> str:
        if ref in ports_in:
            ports = ports_in[ref][side]
            if len(ports) != 1:
                raise SpikeportError(f"{path}: node '{prefix}{ref}': a subgraph used as one node needs exactly "
                                     f"one {'Input' if side == 0 else 'Output'}, it has {len(ports)}")
            return ports[0]
        if ref in names:
            return f"{prefix}{ref}"
        head, _, tail = ref.partition(".")
        if head in ports_in and f"{prefix}{ref}" in nodes:
            return f"{prefix}{ref}"
        raise SpikeportError(f"{path}: node '{prefix}{ref}': is named by an edge but does not exist")

    for a, b in graph.edges:
        edges.append((end(str(a), 1), end(str(b), 0)))
    ins = [f"{prefix}{n}" for n, nd in graph.nodes.items() if type(nd).__name__ == "Input"]
    outs = [f"{prefix}{n}" for n, nd in graph.nodes.items() if type(nd).__name__ == "Output"]
    if prefix:  # inner ports become pass-through nodes
        for n in ins + outs:
            kinds[n] = "Identity"
    return ins, outs


def _check_values(name: str, node: Any, path: str) -> None:
    fields = getattr(node, "__dataclass_fields__", {})
    for fld in fields:
        if fld in ("metadata", "input_type", "output_type"):
            continue
        val = getattr(node, fld, None)
        if val is None or isinstance(val, str):
            continue
        try:
            arr = np.asarray(val, dtype=np.float64)
        except (TypeError, ValueError):
            raise SpikeportError(f"{path}: node '{name}': field '{fld}' is not numeric") from None
        if arr.size > MAX_ELEMENTS:
            raise SpikeportError(f"{path}: node '{name}': field '{fld}' has {arr.size} values, more than {MAX_ELEMENTS}")
        if np.isnan(arr).any():
            raise SpikeportError(f"{path}: node '{name}': field '{fld}' contains NaN")
        bad = np.isinf(arr) & ~((arr > 0) & (fld in TAU_FIELDS))
        if bad.any():
            raise SpikeportError(f"{path}: node '{name}': field '{fld}' contains infinite values")
        if fld in TAU_FIELDS and (arr <= 0).any():
            raise SpikeportError(f"{path}: node '{name}': field '{fld}' must be positive (seconds)")


def _order(nodes: dict, edges: list, start: str, path: str) -> tuple[list[str], set]:
    """Depth-first search from ``start``: back edges are recurrent; returns (topological order, back edges)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    state: dict[str, int] = {}  # 1 on stack, 2 done
    back: set = set()
    stack = [(start, iter(succ[start]))]
    state[start] = 1
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            state[node] = 2
            stack.pop()
        elif state.get(nxt) == 1:
            back.add((node, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(succ[nxt])))
    unreached = [n for n in nodes if n not in state]
    if unreached:
        raise SpikeportError(f"{path}: node '{unreached[0]}': is not reachable from the Input node")
    indeg = {n: 0 for n in nodes}
    fwd = [(a, b) for a, b in edges if (a, b) not in back]
    for _, b in fwd:
        indeg[b] += 1
    ready, order = [n for n in nodes if indeg[n] == 0], []
    fsucc: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in fwd:
        fsucc[a].append(b)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in fsucc[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    return order, back


def load_graph(path: str | Path, flatten_batch: bool = False, input_batch: bool | None = None) -> FlatGraph:
    """Read ``path`` into a validated :class:`FlatGraph`. ``flatten_batch``: the producer's Flatten
    dims count the batch (Norse); ``input_batch``: its Input shape starts with a batch of 1 (Norse,
    Rockpool; default: ``flatten_batch``). Shapes are computed with those conventions."""
    from spikeport.nirfmt.shapes import infer_shapes

    graph = read_any(path)
    return flat_graph(graph, str(path), flatten_batch, infer_shapes, input_batch)


def flat_graph(graph, path: str, flatten_batch: bool = False, infer=None, input_batch: bool | None = None) -> FlatGraph:
    """Validate and flatten an in-memory ``nir.NIRGraph`` (``path`` names it in errors)."""
    if infer is None:
        from spikeport.nirfmt.shapes import infer_shapes as infer
    if type(graph).__name__ != "NIRGraph":
        raise SpikeportError(f"{path}: the top level is a {type(graph).__name__}, not a NIRGraph")
    nodes: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    ins, outs = _inline(graph, "", nodes, kinds, edges, path)
    for name, kind in kinds.items():
        if kind not in KNOWN and kind != "Identity":
            raise SpikeportError(f"{path}: node '{name}': unknown node type {kind!r}")
        _check_values(name, nodes[name], path)
    if len(ins) != 1:
        raise SpikeportError(f"{path}: the graph must have exactly one Input node, found {len(ins)}")
    if len(outs) != 1:
        raise SpikeportError(f"{path}: the graph must have exactly one Output node, found {len(outs)}")
    edges = list(dict.fromkeys(edges))  # duplicate edges carry nothing twice (snnTorch writes some)
    order, back = _order(nodes, edges, ins[0], path)
    fg = FlatGraph(path=path, nodes=nodes, kinds=kinds, edges=edges, recurrent=back, order=order, shapes={},
                   input=ins[0], output=outs[0], metadata=dict(getattr(graph, "metadata", None) or {}))
    fg.shapes = infer(fg, flatten_batch, flatten_batch if input_batch is None else input_batch)
    return fg
