"""A netx HDF5 file (e.g. written by lava-dl slayer's ``export_hdf5``) -> spikeport's deployable network
and a run folder (``model.nir`` in spikeport's format, ``source.net``, ``netx_import.json``).

The file's integers are used as netx uses them (:mod:`spikeport.nirfmt.netx`): a dense block's
summed input is what netx + Lava's Dense compute (netx's weight shift, Lava's clip and truncation),
written as int8 weights and a weight exponent; a conv block's kernel is used as it is (Lava's Conv:
no exponent, 24-bit output wrap); neurons take ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``,
``bias_mant = bias``, ``bias_exp = 6``. So spikeport's emulator and netx on Lava compute the same spikes.

Refused, one line naming the block: block types other than input (shape only), flatten, dense,
dense_rec, conv; neurons other than CUBA; synaptic delays; complex weights; an input block with a
neuron; a dense block without neuron (slayer ``dynamics=False``); ``iDecay = 0`` (Lava du = -1,
outside spikeport's LIF range); values outside Loihi's ranges; weights that are not int8 times a
power of two after netx's processing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nir
import numpy as np

from spikeport.core import linear, loihi
from spikeport.core.net import Connection, LoihiNet, Population
from spikeport.core.quant import LayerQuant
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.nirfmt import netx as rules
from spikeport.nirfmt import nodes, spec
from spikeport.nirfmt.netx_read import read_blocks

SOURCE, INFO = runfolder.NETX_SOURCE, runfolder.NETX_IMPORT
SUPPORTED = ("input", "flatten", "dense", "dense_rec", "conv")


def _err(path, block: dict, why: str) -> SpikeportError:
    return SpikeportError(f"{path}: block {block['index']} ({block['type']!r}): {why}")


def _int8_times_pow2(w: np.ndarray, exp: int, path, block: dict, what: str) -> tuple[np.ndarray, int]:
    """w (int) with summed input shift(w @ s, exp) -> (int8 q, exponent) computing the same."""
    nz = w[w != 0]
    j = 0
    while nz.size and j < 8 and not np.any(nz % (1 << (j + 1))):
        j += 1
    q = w >> j
    if q.size and (q.min() < loihi.WEIGHT_MIN or q.max() > loihi.WEIGHT_MAX):
        raise _err(path, block, f"{what} up to {int(np.abs(w).max())} are not an int8 value times a power of two")
    return q.astype(np.int8), exp + j


def _dense_conn(w: np.ndarray, path, block: dict, name: str, in_shape) -> Connection:
    try:
        lw, exp = rules.dense_synapse(w)
    except rules.NotExact as err:
        raise _err(path, block, str(err)) from None
    q, e = _int8_times_pow2(lw, exp, path, block, "weights")
    return Connection(name, q, e, in_shape=in_shape)


def _lif(block: dict, size: int, shape: tuple, path) -> loihi.LIFParams:
    neuron = block.get("neuron")
    if not isinstance(neuron, dict):
        raise _err(path, block, "has no neuron (slayer dynamics=False); netx would add a non-leaky integrator")
    kind = str(neuron.get("type", ""))
    if kind not in rules.NEURON_TYPES:
        raise _err(path, block, f"neuron type {kind!r} (spikeport deploys CUBA LIF)")
    try:
        vals = {k: int(np.asarray(neuron[k]).reshape(())) for k in ("iDecay", "vDecay", "vThMant")}
    except (KeyError, TypeError, ValueError):
        raise _err(path, block, "neuron needs scalar 'iDecay', 'vDecay', 'vThMant'") from None
    bias = np.zeros(size, np.int64)
    if "bias" in block:
        b = np.asarray(block["bias"], np.int64)
        if len(shape) == 3 and b.size == shape[0]:  # per channel
            b = np.repeat(b.reshape(-1), shape[1] * shape[2])
        elif len(shape) == 3 and b.size == size:  # per neuron, netx's (W, H, C)
            b = b.reshape(shape[2], shape[1], shape[0]).transpose(2, 1, 0).reshape(-1)
        elif b.size not in (1, size):
            raise _err(path, block, f"bias of {b.size} values for {size} neurons")
        bias = np.broadcast_to(b.reshape(-1), (size,)).copy()
    try:
        return loihi.LIFParams(du=vals["iDecay"] - rules.IDECAY_OFFSET, dv=vals["vDecay"], vth=vals["vThMant"],
                               bias_mant=bias, bias_exp=rules.BIAS_EXP)
    except ValueError as err:
        why = " (iDecay 0: Lava du = -1)" if vals["iDecay"] == 0 else ""
        raise _err(path, block, f"{err}{why}") from None


def _conv_conn(block: dict, in_shape: tuple, path) -> Connection:
    w = np.asarray(block["weight"], np.int64)
    w = w.reshape(w.shape[:4]) if w.ndim == 5 and w.shape[4] == 1 else w
    if w.ndim != 4:
        raise _err(path, block, f"conv weight of shape {w.shape} (expected [C_out, C_in/groups, kh, kw])")
    q, e = _int8_times_pow2(w, 0, path, block, "conv weights")
    geo = {}
    for key, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
        geo[key] = linear.pair(block.get(key, default))
    groups = int(np.asarray(block.get("groups", 1)).reshape(()))
    try:
        conn = Connection(f"conv{block['index']}", q, e, kind="conv", in_shape=in_shape, groups=groups, **geo)
    except ValueError as err:
        raise _err(path, block, str(err)) from None
    if groups < 1 or q.shape[1] * groups != in_shape[0] or min(conn.out_shape[1:]) < 1:
        raise _err(path, block, f"weight {q.shape}, groups {groups} do not fit the input {in_shape}")
    bound = float(np.abs(w).reshape(w.shape[0], -1).sum(1).max()) * 255
    if e != 0 and bound >= loihi.STATE_MAX:  # netx's Conv wraps at 24 bits; spikeport's shifted conv does not
        raise _err(path, block, f"weights {int(np.abs(w).max())} with sums up to {bound:.0f} >= 2**23")
    return conn


def _check_unsupported(block: dict, path, first: bool) -> None:
    kind = block["type"]
    if kind not in SUPPORTED:
        raise _err(path, block, f"netx block type {kind!r} is not deployed by spikeport ({', '.join(SUPPORTED)})")
    if "delay" in block:
        raise _err(path, block, "synaptic delays (every spikeport connection delays by exactly one step)")
    if isinstance(block.get("weight"), dict):
        raise _err(path, block, "complex weights (weight/real, weight/imag)")
    if kind == "input" and ("neuron" in block or not first):
        raise _err(path, block, "an input block with a neuron (netx drives it by bias only) or not first")


def netx_to_net(path: str | Path, time_steps: int, graded: bool | None = None,
                input_shape: tuple[int, ...] | None = None) -> LoihiNet:
    """The :class:`LoihiNet` netx builds from the file. ``graded``: the input carries integer payloads
    (default: the file's ``input_message_bits`` attribute, else binary spikes). ``input_shape``: (C, H, W)
    or (n,), needed only when the file has no input block and starts with a conv (as netx needs it)."""
    blocks, attrs = read_blocks(path)
    if graded is None:
        graded = int(np.asarray(attrs.get("input_message_bits", 0)).reshape(-1)[0]) > 0
    shape = tuple(int(s) for s in input_shape) if input_shape else None
    pops, flat_next, first_shape = [], False, shape
    for pos, block in enumerate(blocks):
        _check_unsupported(block, path, pos == 0)
        declared = tuple(int(s) for s in np.asarray(block.get("shape", [])).reshape(-1))
        if block["type"] == "input":
            shape = first_shape = declared or shape
            continue
        if block["type"] == "flatten":
            flat_next = True
            continue
        if shape is None and block["type"] != "conv":  # no input block: a dense block's inputs say it
            shape = (int(np.shape(block.get("weight"))[-1]),)
        if shape is None:
            raise _err(path, block, "the input shape is unknown (give input_shape, as netx needs it)")
        first_shape = first_shape or shape
        if block["type"] == "conv":
            if len(shape) != 3 or flat_next:
                raise _err(path, block, f"a conv needs a (C, H, W) input, got {shape}")
            conn = _conv_conn(block, shape, path)
            out = conn.out_shape
            if declared and declared != out:
                raise _err(path, block, f"declared shape {declared} differs from the conv output {out}")
            size, pshape, rec = int(np.prod(out)), out, None
        else:
            w = np.asarray(block.get("weight"), np.int64)
            n_in = int(np.prod(shape))
            if w.ndim != 2 or w.shape[1] != n_in or (declared and w.shape[0] != int(np.prod(declared))):
                raise _err(path, block, f"weight of shape {w.shape} does not map {n_in} inputs to {declared}")
            conn = _dense_conn(w, path, block, f"fc{block['index']}", shape if len(shape) == 3 else ())
            size, pshape, rec = w.shape[0], (), None
            if block["type"] == "dense_rec":
                wr = np.asarray(block.get("weight_rec"), np.int64)
                if wr.shape != (size, size):
                    raise _err(path, block, f"weight_rec of shape {wr.shape}, expected {(size, size)}")
                conn, rec = _joint_rec(w, wr, path, block, conn)
        flat_next = False
        pops.append(Population(f"lif{len(pops)}", size, _lif(block, size, pshape, path), conn, rec, shape=pshape))
        shape = pshape or (size,)
    if not pops:
        raise SpikeportError(f"{path}: no dense or conv block")
    return LoihiNet(first_shape, pops, int(time_steps), graded_input=bool(graded))


def _joint_rec(w, wr, path, block, conn) -> tuple[Connection, Connection]:
    """netx shifts weight and weight_rec by one exponent chosen for both together."""
    try:
        lw, exp = rules.dense_synapse(np.hstack([w, wr]))
    except rules.NotExact as err:
        raise _err(path, block, str(err)) from None
    q, e = _int8_times_pow2(lw[:, :w.shape[1]], exp, path, block, "weights")
    qr, er = _int8_times_pow2(lw[:, w.shape[1]:], exp, path, block, "recurrent weights")
    return Connection(conn.name, q, e, in_shape=conn.in_shape), Connection(f"rec{block['index']}", qr, er)


def _lq(q: np.ndarray, exp: int, lif: loihi.LIFParams, state_scale: float, weight_scale: float) -> LayerQuant:
    return LayerQuant(weight=q, weight_scale=weight_scale, weight_exp=int(exp), state_scale=state_scale, lif=lif)


def net_graph(net: LoihiNet, meta: dict, dt: float = spec.DT) -> nir.NIRGraph:
    """spikeport-format NIR graph of an imported network: input -> [flat{i}] (fc{i} | conv{i}) -> lif{i}
    (<-> rec{i}) -> ... -> output. Float weights are the integers (one input unit = 1.0), each
    population's state scale 2**-weight_exp, so the float graph reads as the integers do."""
    layers = []
    for i, pop in enumerate(net.populations):
        c = pop.input
        scale = 2.0 ** -c.weight_exp
        lq = _lq(np.asarray(c.weight), c.weight_exp, pop.lif, scale, 1.0)
        chain = []
        if c.kind == "dense":
            if len(c.in_shape) == 3:
                chain.append((f"flat{i}", nodes.flatten_node(c.in_shape)))
            chain.append((f"fc{i}", nodes.affine_node(lq, 1.0)))
        else:
            chain.append((f"conv{i}", nodes.conv_node(lq, c.in_shape[1:], 1.0, stride=c.stride, padding=c.padding,
                                                      dilation=c.dilation, groups=c.groups)))
        rec = None
        if pop.recurrent is not None:
            r = pop.recurrent
            rec = nodes.affine_node(_lq(np.asarray(r.weight), r.weight_exp, pop.lif, scale,
                                        scale * 2.0 ** r.weight_exp), 1.0)
        population = nodes.cuba_lif_node(lq, dt, n=pop.size, shape=pop.tensor_shape if pop.shape else None)
        layers.append(nodes.Layer(i, chain, population, rec))
    sp = spec.graph_meta(producer="import", dt=dt, time_steps=net.time_steps, encoder="imported",
                         graded_input=net.graded_input, input_unit=1.0, input_shape=net.input_shape,
                         n_classes=net.populations[-1].size, **meta)
    return nodes.graph(layers, net.input_shape, net.populations[-1].tensor_shape, sp, type_check=False)


def import_netx(path: str | Path, out: str | Path, *, time_steps: int | None = None, graded: bool | None = None,
                input_shape: tuple[int, ...] | None = None, inputs: str | Path | None = None,
                labels: str | Path | None = None) -> dict:
    """netx file -> run folder ``out`` (``model.nir``, ``source.net``, ``netx_import.json`` and, when
    given, ``inputs.npy`` [N, T, ...] integers / ``labels.npy``); returns the JSON's content. The graph is
    read back with spikeport's loader and must equal the network netx builds. ``time_steps`` defaults
    to the inputs' T."""
    from spikeport.importer import runio
    from spikeport.nirfmt.load import to_loihi_net

    path, out = Path(path), Path(out)
    if labels is not None and inputs is None:
        raise SpikeportError("--labels needs --inputs")
    if time_steps is None:
        if inputs is None:
            raise SpikeportError("pass --inputs FILE.npy ([N, T, ...]) or --time-steps to say how many steps a sample runs")
        time_steps = int(runio.load_npy(inputs, "inputs").shape[1])
    if not 1 <= int(time_steps) <= 100_000:
        raise SpikeportError(f"time_steps must be in [1, 100000], got {time_steps}")
    net = netx_to_net(path, time_steps, graded, input_shape)
    x = y = None
    if inputs is not None:
        x, y = runio.load_inputs(inputs, labels, net.input_shape, int(time_steps))
        if np.any(x != np.round(x)) or (not net.graded_input and np.any(x > 1)):
            raise SpikeportError(f"{inputs}: a netx network takes integer inputs ({'graded' if net.graded_input else '0/1 spikes'})")
    graph = net_graph(net, {"source_producer": "lava-dl netx", "source_graph": SOURCE})
    back = to_loihi_net(graph, out / runfolder.MODEL_NIR)
    if back.describe() != net.describe():
        raise SpikeportError(f"{path}: the written graph reads back as {back.describe()}, not {net.describe()}")
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_with(out / runfolder.MODEL_NIR, lambda tmp: nir.write(str(tmp), graph))
    if path.resolve() != (out / SOURCE).resolve():
        fileio.write_with(out / SOURCE, lambda tmp: shutil.copyfile(path, tmp))
    runio.save_inputs(out, x, y)
    info = {"format": 1, "source": str(path), "producer": "lava-dl netx", "time_steps": int(time_steps),
            "graded_input": bool(net.graded_input), "network": net.describe(), "exact": True,
            "conventions": {"neuron": "du = iDecay - 1, dv = vDecay, vth = vThMant, bias_mant = bias, bias_exp = 6",
                            "weights": "as netx + Lava Dense use them (netx's shift, Lava's clip and truncation)",
                            "conv": "kernel as written (torch layout, cross-correlation), Lava Conv's 24-bit wrap"},
            "layers": [{"layer": p.name, "neurons": p.size, "connection": p.input.kind,
                        "weight_exp": int(p.input.weight_exp), "du": int(p.lif.du), "dv": int(p.lif.dv),
                        "vth": int(p.lif.vth), "recurrent": p.recurrent is not None} for p in net.populations]}
    fileio.write_json(out / INFO, info)
    return info
