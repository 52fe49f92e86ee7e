"""Read a ``.nir`` file into a :class:`LoihiNet`, validating everything; never imports ``train``.

Accepts graphs whose weighted and neuron nodes carry Loihi integers in ``metadata["loihi"]`` (what
``spikeport export`` writes). Between two CubaLIF populations lies one connection: ``[SumPool2d]
[Flatten] (Affine | Linear | Conv2d)`` or a ``SumPool2d`` alone (an ``AvgPool2d`` only when marked
``as_sum``: its 1/k^2 folded into the next layer's scale); a population may feed itself through one
Affine/Linear (recurrence), and the weighted node may carry a bias line (a constant current into u,
:mod:`spikeport.nirfmt.line`). Node kinds are handled by functions in ``CONNECTIONS`` / ``NEURONS``; any
other kind (Delay, Scale, ...), or a parameter Loihi cannot express exactly (weights beyond 8 bits,
reset by subtraction, nonzero v_reset, ...), is an error that names the node and says why. Nothing is
approximated silently. Tensors stay in NIR's (= torch's) C-major order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikeport.core import loihi
from spikeport.core.linear import Pool2d, pair
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.errors import SpikeportError
from spikeport.nirfmt import guard as nir_guard
from spikeport.nirfmt import line, spec

MAX_NEURONS = 10_000_000


class _Ctx:
    def __init__(self, path: Path):
        self.path = path

    def err(self, node: str, why: str) -> SpikeportError:
        return SpikeportError(f"{self.path}: node '{node}': {why}")


def read_graph(path: str | Path):
    """The guarded read (:func:`spikeport.nirfmt.guard.read`: no huge arrays, links or external data,
    known node types, finite values); every failure is a one-line error naming the file. Shapes are
    checked here, per node."""
    return nir_guard.read(path)


def _meta(node, ctx: _Ctx, name: str) -> dict:
    meta = getattr(node, "metadata", None) or {}
    lo = meta.get(spec.NODE_META) if isinstance(meta, dict) else None
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


def _weights(node, ctx: _Ctx, name: str, ndim: int) -> tuple[np.ndarray, int, bool]:
    """The int8 (or, with ``weight_bits`` 16, wide int16) weights, the weight exponent and whether they
    are wide, from metadata['loihi'], checked against the float weight."""
    lo = _meta(node, ctx, name)
    w = np.asarray(lo.get("weight"))
    if w.ndim != ndim or not np.issubdtype(w.dtype, np.integer):
        raise ctx.err(name, f"metadata 'weight' must be a {ndim}-D integer array")
    wide = nir_guard.weight_bits(lo.get(spec.WEIGHT_BITS), lambda why: ctx.err(name, why),
                                 spec.WEIGHT_BITS) == spec.WIDE_BITS
    if wide and ndim != 2:
        raise ctx.err(name, f"metadata '{spec.WEIGHT_BITS}' {spec.WIDE_BITS} is for dense weights only")
    w_min, w_max = (loihi.WIDE_MIN, loihi.WIDE_MAX) if wide else (loihi.WEIGHT_MIN, loihi.WEIGHT_MAX)
    if w.size and (w.min() < w_min or w.max() > w_max):
        bad = int(np.sum((w < w_min) | (w > w_max)))
        raise ctx.err(name, f"{bad} weights do not fit Loihi's {16 if wide else 8} bits (worst "
                      f"{int(np.abs(w).max())}, range [{w_min}, {w_max}])")
    fw = np.asarray(node.weight)
    if fw.shape != w.shape:
        raise ctx.err(name, f"float weight shape {fw.shape} differs from integer weight shape {w.shape}")
    if not np.all(np.isfinite(fw)):
        raise ctx.err(name, "float weight contains NaN or infinite values")
    nir_guard.check_dequantized(fw, w, lo, f"{ctx.path}: node '{name}'")
    exp = _int(lo, "weight_exp", ctx, name)
    if not -24 <= exp <= 24 or (wide and exp != 0):
        raise ctx.err(name, f"weight_exp {exp} is outside {'[0, 0] (wide weights)' if wide else '[-24, 24]'}")
    return w, exp, wide


def _dense(node, ctx: _Ctx, name: str, in_shape: tuple[int, ...], pool: Pool2d | None) -> Connection:
    w, exp, wide = _weights(node, ctx, name, 2)
    mask = _meta(node, ctx, name).get("mask")
    sparse = mask is not None
    if sparse:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != w.shape:
            raise ctx.err(name, f"mask shape {mask.shape} differs from weight shape {w.shape}")
        w = np.where(mask, w, 0)
    return Connection(name=name, weight=w.astype(np.int16 if wide else np.int8), weight_exp=exp, sparse=sparse,
                      in_shape=in_shape, pool=pool, wide=wide)


def _conv(node, ctx: _Ctx, name: str, in_shape: tuple[int, ...], pool: Pool2d | None) -> Connection:
    w, exp, _ = _weights(node, ctx, name, 4)
    c = (in_shape[0], *pool_out(in_shape, pool)[1:]) if pool else in_shape
    groups = int(np.asarray(node.groups))
    if groups < 1 or w.shape[1] * groups != c[0] or w.shape[0] % groups:
        raise ctx.err(name, f"weight {w.shape} with groups={groups} does not fit {c[0]} input channels")
    padding = node.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif np.all(np.asarray(node.stride) == 1) and all(k % 2 for k in w.shape[2:]):
            padding = tuple((int(d) * (k - 1)) // 2 for d, k in zip(pair(node.dilation), w.shape[2:]))
        else:
            raise ctx.err(name, "padding 'same' with an even kernel or a stride pads unevenly; Lava pads evenly")
    try:
        conn = Connection(name=name, weight=w.astype(np.int8), weight_exp=exp, kind="conv", in_shape=in_shape,
                          pool=pool, stride=pair(node.stride), padding=pair(padding), dilation=pair(node.dilation),
                          groups=groups)
    except ValueError as err:
        raise ctx.err(name, str(err)) from None
    if min(conn.out_shape[1:]) < 1 or min(conn.stride + conn.dilation) < 1 or min(conn.padding) < 0:
        raise ctx.err(name, f"stride {conn.stride}, padding {conn.padding}, dilation {conn.dilation} on input "
                      f"{c} give no output")
    return conn


def pool_out(shape: tuple[int, ...], pool: Pool2d) -> tuple[int, ...]:
    from spikeport.core.linear import out_hw

    return (shape[0], *out_hw(shape[1], shape[2], pool.kernel, pool.stride, pool.padding))


def _pool(node, ctx: _Ctx, name: str, shape: tuple[int, ...]) -> Pool2d:
    kind = type(node).__name__
    if len(shape) != 3:
        raise ctx.err(name, f"{kind} needs a (C, H, W) input, receives {shape}")
    if kind == "AvgPool2d" and not bool(np.asarray((_meta_opt(node).get("as_sum", False)))):
        raise ctx.err(name, "AvgPool2d divides by the window size, which Loihi's integers cannot do; a graph "
                      "must fold 1/k^2 into the next layer's scale and mark the node metadata['loihi']['as_sum']")
    try:
        pool = Pool2d(kernel=pair(node.kernel_size), stride=pair(node.stride), padding=pair(node.padding))
    except (ValueError, TypeError) as err:
        raise ctx.err(name, f"bad pooling geometry ({err})") from None
    if min(pool.kernel + pool.stride) < 1 or min(pool.padding) < 0 or min(pool_out(shape, pool)[1:]) < 1:
        raise ctx.err(name, f"pooling {pool} on input {shape} gives no output")
    return pool


def _meta_opt(node) -> dict:
    meta = getattr(node, "metadata", None) or {}
    lo = meta.get(spec.NODE_META) if isinstance(meta, dict) else None
    return lo if isinstance(lo, dict) else {}


def _flatten(node, ctx: _Ctx, name: str, shape: tuple[int, ...]) -> None:
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    declared = (getattr(node, "input_type", None) or {}).get("input")
    if declared is not None and int(np.prod(np.asarray(declared))) != int(np.prod(shape)):
        raise ctx.err(name, f"input type {np.asarray(declared).tolist()} does not match the incoming shape {shape}")
    if end != -1 or start not in (0, 1):
        raise ctx.err(name, f"flattens dims {start}..{end}; spikeport deploys a flatten of the whole sample "
                      "(start_dim 0 batch-less, or 1 counting a batch axis; end_dim -1), C-major")


WHY_NOT = {
    "Delay": "synaptic delays are not mapped (every Loihi connection here delays by exactly one step)",
    "Conv1d": "1-D convolutions are not mapped (use Conv2d)",
    "NIRGraph": "nested subgraphs are not supported (flatten the graph)",
    "Scale": "a Scale node has no exact integer form here (fold it into the weights)",
    "Threshold": "a stateless Threshold neuron is not mapped (use CubaLIF)",
}
CONNECTIONS = {"Affine": _dense, "Linear": _dense, "Conv2d": _conv}
POOLS = ("SumPool2d", "AvgPool2d")


def _connection(chain: list[str], nodes, shape: tuple[int, ...], ctx: _Ctx) -> Connection:
    """One Connection from the linear nodes between two populations: [pool] [Flatten] (Affine|Conv2d)
    or a pool alone."""
    kinds = [type(nodes[n]).__name__ for n in chain]
    i, pool = 0, None
    if i < len(chain) and kinds[i] in POOLS:
        pool = _pool(nodes[chain[i]], ctx, chain[i], shape)
        i += 1
    flat = False
    if i < len(chain) and kinds[i] == "Flatten":
        _flatten(nodes[chain[i]], ctx, chain[i], pool_out(shape, pool) if pool else shape)
        i, flat = i + 1, True
    rest = chain[i:]
    if not rest:
        if pool is None:
            raise ctx.err(chain[-1], "a neuron population must be fed by a weighted node or a pool")
        return Connection(name=chain[0], weight=np.zeros((0, 0), np.int8), weight_exp=0, kind="pool",
                          in_shape=shape, pool=pool)
    name, kind = rest[0], kinds[i]
    if len(rest) > 1 or kind not in CONNECTIONS:
        bad = rest[1] if kind in CONNECTIONS else name
        raise ctx.err(bad, f"a {type(nodes[bad]).__name__} cannot stand here: between two populations spikeport "
                      "deploys [SumPool2d] [Flatten] (Affine | Linear | Conv2d), or a SumPool2d alone")
    if kind == "Conv2d":
        if flat or len(shape) != 3:
            raise ctx.err(name, f"Conv2d needs a (C, H, W) input, receives {'a flattened one' if flat else shape}")
        return _conv(nodes[name], ctx, name, shape, pool)
    if len(shape) == 3 and not flat:
        raise ctx.err(name, f"{kind} receives a (C, H, W) tensor {shape}; insert a Flatten node")
    conn = _dense(nodes[name], ctx, name, shape, pool)
    n_in = int(np.prod(pool_out(shape, pool) if pool else shape))
    if conn.weight.shape[1] != n_in:
        raise ctx.err(name, f"expects {conn.weight.shape[1]} inputs but receives {n_in}")
    return conn


RESET_KEYS = spec.RESET_KEYS


def _cuba_lif(node, ctx: _Ctx, name: str, size: int) -> loihi.LIFParams:
    lo = _meta(node, ctx, name)
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise ctx.err(name, "resets to a nonzero v_reset; Loihi resets v to zero")
    for where in (node.metadata or {}, lo):
        mode = next((str(np.asarray(where[k])) for k in RESET_KEYS if k in where), "")
        if "sub" in mode.lower():
            raise ctx.err(name, f"resets by subtraction ({mode!r}); Loihi resets v to zero")
    for fld in ("tau_syn", "tau_mem", "v_threshold", "r", "v_leak", "w_in", "v_reset"):
        if getattr(node, fld, None) is None and fld not in ("tau_syn", "tau_mem", "v_threshold"):
            continue
        val = np.asarray(getattr(node, fld))
        if val.size not in (1, size):
            raise ctx.err(name, f"{fld} has {val.size} values for {size} neurons")
        if np.any(np.isnan(val)):
            raise ctx.err(name, f"{fld} contains NaN")
    bias = np.asarray(lo.get("bias_mant", 0))
    if not np.issubdtype(bias.dtype, np.integer) or bias.size not in (1, size):
        raise ctx.err(name, f"metadata 'bias_mant' must be {size} integers")
    floor_v = np.asarray(lo.get("floor_v", False))
    if floor_v.size != 1 or floor_v.dtype.kind not in "bi" or int(floor_v.reshape(())) not in (0, 1):
        raise ctx.err(name, f"metadata 'floor_v' must be a boolean, got {lo.get('floor_v')!r}")
    try:
        return loihi.LIFParams(du=_int(lo, "du", ctx, name), dv=_int(lo, "dv", ctx, name),
                               vth=_int(lo, "vth", ctx, name), bias_mant=bias.reshape(-1).astype(np.int64),
                               bias_exp=_int(lo, "bias_exp", ctx, name), floor_v=bool(floor_v.reshape(())))
    except ValueError as err:
        raise ctx.err(name, str(err)) from None


NEURONS = {"CubaLIF": _cuba_lif}


def _unsupported(node, name: str, ctx: _Ctx) -> SpikeportError:
    kind = type(node).__name__
    why = WHY_NOT.get(kind, f"node type {kind} cannot be deployed (supported: {', '.join(CONNECTIONS)}, "
                            f"{', '.join(POOLS)}, Flatten, {', '.join(NEURONS)})")
    return ctx.err(name, why)


def _chain(start: str, nodes, succ, seen: set, ctx: _Ctx) -> tuple[list[str], str]:
    """The linear nodes from ``start`` up to the next neuron node; returns (chain, neuron name)."""
    chain, cur = [], start
    while type(nodes[cur]).__name__ not in NEURONS:
        kind = type(nodes[cur]).__name__
        if kind not in CONNECTIONS and kind not in POOLS and kind != "Flatten":
            raise _unsupported(nodes[cur], cur, ctx)
        if cur in seen:
            raise ctx.err(cur, "is reached twice: spikeport deploys chains of layers (plus self-recurrence)")
        chain.append(cur)
        seen.add(cur)
        nxt = succ[cur]
        if len(nxt) != 1:
            raise ctx.err(cur, f"feeds {len(nxt)} nodes; between two populations the graph must be a chain")
        cur = nxt[0]
    return chain, cur


def _recurrent(pop: str, nodes, succ, ctx: _Ctx, size: int) -> tuple[Connection | None, list[str]]:
    """The population's self-recurrent Affine/Linear (a node whose only successor is ``pop``), if any."""
    loops = [n for n in succ[pop] if succ[n] == [pop]]
    if not loops:
        return None, []
    if len(loops) > 1:
        raise ctx.err(pop, f"has {len(loops)} recurrent connections; Loihi's mapping takes one")
    name = loops[0]
    kind = type(nodes[name]).__name__
    if kind not in ("Affine", "Linear"):
        raise ctx.err(name, f"a recurrent {kind} is not supported (recurrent connections are Affine/Linear)")
    conn = _dense(nodes[name], ctx, name, (size,), None)
    if conn.shape != (size, size):
        raise ctx.err(name, f"recurrent weight {conn.weight.shape} does not match {size} neurons")
    return conn, loops


def to_loihi_net(graph, path: str | Path = "<graph>") -> LoihiNet:
    """Turn a NIR graph written by spikeport into a LoihiNet (a chain of populations, each optionally
    self-recurrent). Every node must be used; anything else is an error naming the node."""
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
    gmeta = graph.metadata if isinstance(graph.metadata, dict) else {}
    meta = gmeta.get(spec.GRAPH_META) if isinstance(gmeta.get(spec.GRAPH_META), dict) else {}
    meta = dict(meta)
    if "time_steps" not in meta:
        raise SpikeportError(f"{path}: graph metadata has no 'spikeport.time_steps'")
    T = nir_guard.int_field(meta["time_steps"], f"{path}: graph metadata 'spikeport.time_steps'", 1, 100_000)
    declared = (getattr(nodes[inputs[0]], "input_type", None) or {}).get("input")
    if declared is None and "input_shape" not in meta:
        raise ctx.err(inputs[0], "declares no input shape")
    in_shape = nir_guard.shape_field(meta.get("input_shape", declared),
                                     f"{path}: graph metadata 'spikeport.input_shape'")
    shape = nir_guard.shape_field(declared, f"{path}: node '{inputs[0]}': input type") \
        if declared is not None else in_shape
    if int(np.prod(shape)) != int(np.prod(in_shape)):
        raise ctx.err(inputs[0], f"input type {shape} does not match metadata input_shape {in_shape}")
    pops: list[Population] = []
    cur, seen, rec_nodes = inputs[0], {inputs[0]}, []
    while True:
        nxt = [n for n in succ[cur] if type(nodes[n]).__name__ != "Output" and n not in rec_nodes]
        if not nxt:
            break
        if len(nxt) != 1:
            raise ctx.err(cur, f"feeds {len(nxt)} nodes; spikeport deploys chains of layers")
        chain, pop_name = _chain(nxt[0], nodes, succ, seen, ctx)
        if pop_name in seen:
            raise ctx.err(pop_name, "is reached twice: cycles are only allowed as recurrent connections")
        if not chain:
            raise ctx.err(pop_name, "follows another neuron node directly; a connection must lie between them")
        conn = _connection(chain, nodes, shape, ctx)
        try:
            conn.check_loihi()
        except ValueError as err:
            raise ctx.err(chain[-1], str(err)) from None
        size = conn.shape[0]
        if size > MAX_NEURONS:
            raise ctx.err(pop_name, f"has {size} neurons, more than the limit {MAX_NEURONS}")
        lif = NEURONS[type(nodes[pop_name]).__name__](nodes[pop_name], ctx, pop_name, size)
        rec, rec_nodes = _recurrent(pop_name, nodes, succ, ctx, size)
        for rname in rec_nodes:
            if np.any(line.float_bias(nodes[rname]) != 0):
                raise ctx.err(rname, "a recurrent bias is not deployed (put the constant current on the "
                              "feed-forward node's bias line)")
        wnode = chain[-1]
        bias_line = None if conn.kind == "pool" else line.read_line(
            nodes[wnode], _meta(nodes[wnode], ctx, wnode), conn, lambda why, _n=wnode: ctx.err(_n, why),
            f"{ctx.path}: node '{wnode}'")
        seen.update([pop_name, *rec_nodes])
        shape = conn.out_shape
        pops.append(Population(name=pop_name, size=size, lif=lif, input=conn, recurrent=rec,
                               shape=shape if len(shape) == 3 else (), bias_line=bias_line))
        cur = pop_name
    if not pops:
        raise SpikeportError(f"{path}: graph has no neuron layers")
    unused = [n for n, nd in nodes.items() if n not in seen and type(nd).__name__ != "Output"]
    if unused:
        raise ctx.err(unused[0], f"({type(nodes[unused[0]]).__name__}) is not on the chain from the input; "
                      "every node must be deployed")
    graded = bool(np.asarray(meta.get("graded_input", False)))
    return LoihiNet(input_shape=in_shape, populations=pops, time_steps=T, graded_input=graded, meta=meta)


def load_nir(path: str | Path) -> LoihiNet:
    """Read and validate ``path`` into a deployable LoihiNet. A value of the wrong kind deep inside a
    node (a string where numbers belong, an array where a scalar does) that no check above names is
    still reported as a one-line error naming the file."""
    try:
        graph = read_graph(path)
        net = to_loihi_net(graph, path)
        _dry_readout(net, path)
        return net
    except SpikeportError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError,
            MemoryError) as err:
        raise SpikeportError(f"{path}: invalid graph ({type(err).__name__}: {str(err)[:160]})") from None


def _dry_readout(net: LoihiNet, path) -> None:
    """Read out one silent sample, so bad readout metadata (unknown readout, targets of the wrong shape,
    a filter outside (0, 1), a membrane readout of a population that spikes) fails here, naming the file,
    rather than after the run."""
    from spikeport.core.readout import predict, reads_values

    if reads_values(net.meta) and not net.regression:
        raise SpikeportError(f"{path}: readout 'membrane' reads the voltage of a non-spiking output integrator, "
                             f"but population '{net.populations[-1].name}' can spike (vth {net.populations[-1].lif.vth})")
    silent = np.zeros((net.time_steps, 1, net.n_outputs), dtype=bool)
    predict(silent, net.meta, silent.astype(np.int64))


def meta_value(net: LoihiNet, key: str, default: Any = None) -> Any:
    val = net.meta.get(key, default)
    if isinstance(val, np.ndarray) and val.shape == ():
        return val.item()
    if isinstance(val, bytes):
        return val.decode()
    return val
