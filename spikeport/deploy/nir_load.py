"""Read a ``.nir`` file into a :class:`LoihiNet`, validating everything; never imports ``train``.

Accepts graphs whose neuron nodes carry Loihi integers in ``metadata["loihi"]`` (what
``spikeport export`` writes). Each node kind is handled by a function in ``CONNECTIONS`` /
``NEURONS``; any other kind, or a parameter Loihi cannot express exactly, is an error that names
the node and says why. Nothing is approximated silently.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikeport.core import loihi
from spikeport.deploy.netdef import Connection, LoihiNet, Population
from spikeport.errors import SpikeportError

MAX_NEURONS = 10_000_000


class _Ctx:
    def __init__(self, path: Path):
        self.path = path

    def err(self, node: str, why: str) -> SpikeportError:
        return SpikeportError(f"{self.path}: node '{node}': {why}")


def read_graph(path: str | Path):
    """nir.read with every failure turned into a one-line error naming the file."""
    import h5py
    import nir

    path = Path(path)
    if not path.is_file():
        raise SpikeportError(f"{path}: file not found")
    try:
        ok = h5py.is_hdf5(str(path))
    except OSError:
        ok = False
    if not ok:
        raise SpikeportError(f"{path}: not a NIR file (not HDF5)")
    try:
        return nir.read(str(path))
    except Exception as err:  # nir/h5py raise many types on corrupt input
        raise SpikeportError(f"{path}: cannot read NIR graph ({type(err).__name__}: {err})") from None


def _meta(node, ctx: _Ctx, name: str) -> dict:
    meta = getattr(node, "metadata", None) or {}
    lo = meta.get("loihi") if isinstance(meta, dict) else None
    if not isinstance(lo, dict):
        raise ctx.err(name, "has no Loihi integers in metadata['loihi'] (import peer graphs with "
                      "`spikeport import`)")
    return lo


def _int(lo: dict, key: str, ctx: _Ctx, name: str) -> int:
    val = lo.get(key)
    arr = np.asarray(val) if val is not None else None
    if arr is None or arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ctx.err(name, f"metadata field '{key}' must be an integer, got {val!r}")
    return int(arr.reshape(()))


def _affine(node, ctx: _Ctx, name: str) -> Connection:
    lo = _meta(node, ctx, name)
    w = np.asarray(lo.get("weight"))
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ctx.err(name, "metadata 'weight' must be a 2-D integer matrix")
    if w.size and (w.min() < loihi.WEIGHT_MIN or w.max() > loihi.WEIGHT_MAX):
        bad = int(np.sum((w < loihi.WEIGHT_MIN) | (w > loihi.WEIGHT_MAX)))
        raise ctx.err(name, f"{bad} weights do not fit Loihi's 8 bits (worst {int(np.abs(w).max())}, "
                      f"range [{loihi.WEIGHT_MIN}, {loihi.WEIGHT_MAX}])")
    fw = np.asarray(node.weight)
    if fw.shape != w.shape:
        raise ctx.err(name, f"float weight shape {fw.shape} differs from integer weight shape {w.shape}")
    if not np.all(np.isfinite(fw)):
        raise ctx.err(name, "float weight contains NaN or infinite values")
    exp = _int(lo, "weight_exp", ctx, name)
    if not -24 <= exp <= 24:
        raise ctx.err(name, f"weight_exp {exp} is outside [-24, 24]")
    mask = lo.get("mask")
    sparse = mask is not None
    if sparse:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != w.shape:
            raise ctx.err(name, f"mask shape {mask.shape} differs from weight shape {w.shape}")
        w = np.where(mask, w, 0)
    return Connection(name=name, weight=w.astype(np.int8), weight_exp=exp, sparse=sparse)


def _cuba_lif(node, ctx: _Ctx, name: str, size: int) -> loihi.LIFParams:
    lo = _meta(node, ctx, name)
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise ctx.err(name, "resets to a nonzero v_reset; Loihi resets v to zero")
    for fld in ("tau_syn", "tau_mem", "v_threshold"):
        val = np.asarray(getattr(node, fld))
        if val.size not in (1, size):
            raise ctx.err(name, f"{fld} has {val.size} values for {size} neurons")
        if np.any(np.isnan(val)):
            raise ctx.err(name, f"{fld} contains NaN")
    bias = np.asarray(lo.get("bias_mant", 0))
    if not np.issubdtype(bias.dtype, np.integer) or bias.size not in (1, size):
        raise ctx.err(name, f"metadata 'bias_mant' must be {size} integers")
    try:
        return loihi.LIFParams(du=_int(lo, "du", ctx, name), dv=_int(lo, "dv", ctx, name),
                               vth=_int(lo, "vth", ctx, name), bias_mant=bias.astype(np.int64),
                               bias_exp=_int(lo, "bias_exp", ctx, name))
    except ValueError as err:
        raise ctx.err(name, str(err)) from None


CONNECTIONS = {"Affine": _affine, "Linear": _affine}
NEURONS = {"CubaLIF": _cuba_lif}


def to_loihi_net(graph, path: str | Path = "<graph>") -> LoihiNet:
    """Turn a NIR graph written by spikeport into a LoihiNet (a chain of populations)."""
    ctx = _Ctx(Path(path))
    nodes, edges = graph.nodes, list(graph.edges)
    for a, b in edges:
        for n in (a, b):
            if n not in nodes:
                raise ctx.err(n, "is named by an edge but does not exist")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    inputs = [n for n, nd in nodes.items() if type(nd).__name__ == "Input"]
    if len(inputs) != 1:
        raise SpikeportError(f"{path}: graph must have exactly one Input node, found {len(inputs)}")
    meta = dict((graph.metadata or {}).get("spikeport", {}) or {})
    if "time_steps" not in meta:
        raise SpikeportError(f"{path}: graph metadata has no 'spikeport.time_steps'")
    T = int(np.asarray(meta["time_steps"]))
    if not 1 <= T <= 100_000:
        raise SpikeportError(f"{path}: time_steps {T} outside [1, 100000]")
    in_shape = tuple(int(s) for s in np.asarray(meta.get("input_shape", nodes[inputs[0]].input_type["input"])).ravel())
    size = int(np.prod(in_shape))
    pops: list[Population] = []
    cur, seen = inputs[0], {inputs[0]}
    while True:
        nxt = [n for n in succ[cur] if type(nodes[n]).__name__ != "Output"]
        if not nxt:
            break
        if len(nxt) != 1:
            raise ctx.err(cur, f"feeds {len(nxt)} nodes; spikeport deploys chains of layers")
        conn_name = nxt[0]
        kind = type(nodes[conn_name]).__name__
        if kind not in CONNECTIONS:
            raise ctx.err(conn_name, f"node type {kind} cannot be deployed here "
                          f"(supported connections: {', '.join(CONNECTIONS)})")
        conn = CONNECTIONS[kind](nodes[conn_name], ctx, conn_name)
        if conn.shape[1] != size:
            raise ctx.err(conn_name, f"expects {conn.shape[1]} inputs but receives {size}")
        after = succ[conn_name]
        if len(after) != 1 or type(nodes[after[0]]).__name__ not in NEURONS:
            got = type(nodes[after[0]]).__name__ if after else "nothing"
            raise ctx.err(conn_name, f"must feed one neuron node ({', '.join(NEURONS)}), feeds {got}")
        pop_name = after[0]
        if pop_name in seen:
            raise ctx.err(pop_name, "is reached twice: cycles are only allowed as recurrent connections")
        seen.update({conn_name, pop_name})
        size = conn.shape[0]
        if size > MAX_NEURONS:
            raise ctx.err(pop_name, f"has {size} neurons, more than the limit {MAX_NEURONS}")
        lif = NEURONS[type(nodes[pop_name]).__name__](nodes[pop_name], ctx, pop_name, size)
        pops.append(Population(name=pop_name, size=size, lif=lif, input=conn))
        cur = pop_name
    if not pops:
        raise SpikeportError(f"{path}: graph has no neuron layers")
    graded = bool(np.asarray(meta.get("graded_input", False)))
    return LoihiNet(input_shape=in_shape, populations=pops, time_steps=T, graded_input=graded, meta=meta)


def load_nir(path: str | Path) -> LoihiNet:
    """Read and validate ``path`` into a deployable LoihiNet."""
    return to_loihi_net(read_graph(path), path)


def meta_value(net: LoihiNet, key: str, default: Any = None) -> Any:
    val = net.meta.get(key, default)
    if isinstance(val, np.ndarray) and val.shape == ():
        return val.item()
    if isinstance(val, bytes):
        return val.decode()
    return val
