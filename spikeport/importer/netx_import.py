"""A netx HDF5 file (e.g. written by lava-dl slayer's ``export_hdf5``) -> a run folder: ``source.net`` (the
file itself: the run's network, read as lava-dl's netx builds it, :mod:`spikeport.nirfmt.netx_net`),
``netx_import.json`` (how it runs and what was read) and, when the network is one spikeport's NIR format
expresses (CUBA LIF blocks fed through synapses, int8 weights, no delays), ``model.nir`` for NIR peers.

Inputs (``--inputs X.npy``): integers, either one frame per sample, [N, *shape] or flat [N, n] (repeated
for ``--time-steps`` steps; an input encoder driven by its bias takes only these), or one frame per step,
[N, T, *shape] or [N, T, n]. ``shape`` is the network input in torch's (C, H, W) order, flattened C-major;
netx lays the same tensor out as (W, H, C). The file's input transform (an input block's ``weight`` /
``bias``) is recorded, not applied: netx stores it for the user's data loader and never applies it, so the
frames are taken as the input neurons receive them. Frames into a bias-driven encoder are its bias
mantissa: they must fit Loihi's 13 bits, [-4096, 4095].
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nir
import numpy as np

from spikeport.core import loihi
from spikeport.core.net import LoihiNet
from spikeport.core.quant import LayerQuant
from spikeport.errors import SpikeportError
from spikeport.files import fileio, runfolder
from spikeport.nirfmt import netx as rules
from spikeport.nirfmt import netx_net, nodes, spec

SOURCE, INFO = runfolder.NETX_SOURCE, runfolder.NETX_IMPORT
MAX_STEPS = 100_000


def _nir_expressible(net: LoihiNet) -> str | None:
    """None when spikeport's NIR format holds the network, else why not (model.nir is then not written)."""
    for p in net.populations:
        if p.sd is not None:
            return f"{p.name} is a sigma-delta population (NIR has no sigma-delta node)"
        if p.encoder:
            return f"{p.name} is an input encoder driven without a synapse"
        if any(c.delay is not None or c.native or c.binary for c in p.connections):
            return f"{p.name} has delays or weights outside int8 (spikeport's NIR metadata holds neither)"
        if not p.lif.spiking or p.lif.du < 0 or p.lif.dv > loihi.DECAY_MAX or net.regression:
            return f"{p.name} is a non-spiking integrator (spikeport's NIR format has no value readout)"
    return None


def netx_inputs(net: LoihiNet, inputs: str | Path, labels: str | Path | None = None,
                time_steps: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(x [T, N, *input_shape] int64 (a read-only broadcast of one frame per sample for frames), labels [N]
    or None, "frames" | "steps") from ``.npy`` files, validated for ``net`` (module docstring)."""
    from spikeport.importer import runio

    x = runio.load_npy(inputs, "inputs")
    shape, n_in = tuple(net.input_shape), net.input_size
    if x.ndim >= 2 and (x.shape[1:] == shape or x.shape[1:] == (n_in,)):
        kind = "frames"
    elif x.ndim >= 3 and (x.shape[2:] == shape or x.shape[2:] == (n_in,)):
        kind = "steps"
    else:
        raise SpikeportError(f"{inputs}: inputs of shape {x.shape} are neither frames [N, {', '.join(map(str, shape))}] "
                             f"/ [N, {n_in}] nor steps [N, T, ...] of them")
    if x.shape[0] < 1 or not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
        raise SpikeportError(f"{inputs}: a netx network takes finite integer inputs, at least one sample")
    if kind == "steps" and time_steps is not None and x.shape[1] != time_steps:
        raise SpikeportError(f"{inputs}: inputs have {x.shape[1]} time steps, the run has {time_steps}")
    T = x.shape[1] if kind == "steps" else time_steps
    if T is None:
        raise SpikeportError(f"{inputs}: one frame per sample: say how many steps it runs with --time-steps")
    x = np.asarray(x, np.int64)
    _check_values(net, x, inputs, kind)
    if kind == "frames":
        x = np.broadcast_to(x.reshape(x.shape[0], *shape)[None], (int(T), x.shape[0], *shape))
    else:
        x = np.ascontiguousarray(np.swapaxes(x.reshape(*x.shape[:2], *shape), 0, 1))
    y = None
    if labels is not None:
        if net.regression:
            raise SpikeportError(f"{labels}: a regression output has no classes (parity compares its values per step)")
        y = runio.load_npy(labels, "labels")
        if y.shape != (x.shape[1],) or y.dtype.kind not in "iub":
            raise SpikeportError(f"{labels}: labels must be [N={x.shape[1]}] integers, got {y.dtype} {y.shape}")
        y = y.astype(np.int64)
    return x, y, kind


def _check_values(net: LoihiNet, x: np.ndarray, inputs, kind: str) -> None:
    first = net.populations[0]
    if net.encoder == "bias":
        if kind == "steps" and x.shape[1] > 1 and not (x == x[:, :1]).all():
            raise SpikeportError(f"{inputs}: {first.name} is driven by its bias: give one frame per sample [N, ...]")
        if x.size and (x.min() < loihi.BIAS_MANT_MIN or x.max() > loihi.BIAS_MANT_MAX):
            raise SpikeportError(f"{inputs}: frames into a bias-driven input must fit Loihi's 13-bit bias mantissa "
                                 f"[{loihi.BIAS_MANT_MIN}, {loihi.BIAS_MANT_MAX}], got [{x.min()}, {x.max()}]")
    elif net.encoder == "a_in":
        limit = (1 << 31) >> first.sd.shift
        if x.size and np.abs(x).max() >= limit:
            raise SpikeportError(f"{inputs}: frames into a delta input must stay below {limit} in magnitude "
                                 f"(Lava shifts them left by {first.sd.shift} in int32)")
    elif not net.graded_input and np.any((x != 0) & (x != 1)):
        raise SpikeportError(f"{inputs}: the network takes 0/1 spikes (the file declares no input message bits; "
                             "import with --input-bits for graded inputs)")
    elif x.size and np.abs(x).max() >= 1 << 23:
        raise SpikeportError(f"{inputs}: graded inputs must stay below 2**23 in magnitude (Loihi's 24-bit payloads)")


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
                labels: str | Path | None = None, spike_exp: int = rules.SPIKE_EXP,
                input_bits: int | None = None, output: str = "auto") -> dict:
    """netx file -> run folder ``out`` (module docstring; ``inputs.npy`` as given / ``labels.npy`` when
    given); returns ``netx_import.json``'s content. ``time_steps`` defaults to the inputs' T (steps);
    ``input_bits``: netx's ``input_message_bits`` for a network fed through a synapse (default: the file's
    attribute, else 0: binary spikes); ``spike_exp``: netx's ``Network(spike_exp=...)``; ``output``: the
    last block's spikes or its values per step (:func:`spikeport.nirfmt.netx_net.read`)."""
    from spikeport.importer import runio
    from spikeport.nirfmt.load import to_loihi_net

    path, out = Path(path), Path(out)
    if labels is not None and inputs is None:
        raise SpikeportError("--labels needs --inputs")
    if input_bits is not None:
        graded = input_bits > 0
    if time_steps is None and inputs is None:
        raise SpikeportError("pass --inputs FILE.npy or --time-steps to say how many steps a sample runs")
    probe, _ = netx_net.read(path, 1, graded=graded, input_shape=input_shape, spike_exp=spike_exp, output=output)
    x = y = None
    kind = None
    if inputs is not None:
        x, y, kind = netx_inputs(probe, inputs, labels, time_steps)
        time_steps = x.shape[0]
    if not 1 <= int(time_steps) <= MAX_STEPS:
        raise SpikeportError(f"time_steps must be in [1, {MAX_STEPS}], got {time_steps}")
    net, notes = netx_net.read(path, int(time_steps), graded=graded, input_shape=input_shape, spike_exp=spike_exp,
                               output=output)
    why_not = _nir_expressible(net)
    out.mkdir(parents=True, exist_ok=True)
    if why_not is None:
        graph = net_graph(net, {"source_producer": "lava-dl netx", "source_graph": SOURCE})
        back = to_loihi_net(graph, out / runfolder.MODEL_NIR)
        if back.describe() != net.describe():
            raise SpikeportError(f"{path}: the written graph reads back as {back.describe()}, not {net.describe()}")
        fileio.write_with(out / runfolder.MODEL_NIR, lambda tmp: nir.write(str(tmp), graph))
    elif (out / runfolder.MODEL_NIR).exists():
        (out / runfolder.MODEL_NIR).unlink()  # a stale graph of an earlier import would contradict source.net
    if path.resolve() != (out / SOURCE).resolve():
        fileio.write_with(out / SOURCE, lambda tmp: shutil.copyfile(path, tmp))
    if x is not None:
        raw = runio.load_npy(inputs, "inputs")
        fileio.write_npy(out / runfolder.INPUTS, np.asarray(raw, np.int64))
    if y is not None:
        fileio.write_npy(out / runfolder.LABELS, y)
    info = {"format": 2, "source": str(path), "producer": "lava-dl netx", "time_steps": int(time_steps),
            "graded_input": bool(net.graded_input), "input_shape": list(net.input_shape), "spike_exp": int(spike_exp),
            "input_bits": None if input_bits is None else int(input_bits), "inputs": kind,
            "encoder": net.encoder, "regression": bool(net.regression), "output": net.output,
            "network": net.describe(), "exact": True,
            "model_nir": None if why_not else runfolder.MODEL_NIR, "model_nir_note": why_not,
            "transform": notes["transform"], "ignored_by_netx": notes["ignored"],
            "conventions": {"lif": "du = iDecay - 1, dv = vDecay, vth = vThMant, bias_mant = bias, bias_exp = 6",
                            "sigma_delta": f"Delta input, SigmaDelta (ReLU) hidden, Sigma output (a sigma_output key); "
                                           f"spike_exp {spike_exp}, state_exp {rules.SPIKE_EXP}",
                            "weights": "as netx + Lava Dense use them (netx's shift, Lava's clip and truncation)",
                            "conv": "kernel as written (torch layout, cross-correlation), Lava Conv's 24-bit wrap",
                            "delays": "one per synapse as netx expands them (a 1-D delay of the output size: per "
                                      "output neuron), each on top of the one-step synapse lag"},
            "layers": [_layer_info(p) for p in net.populations]}
    fileio.write_json(out / INFO, info)
    return info


def _layer_info(p) -> dict:
    row = {"layer": p.name, "neurons": p.size, "kind": p.kind, "message_bits": int(p.message_bits),
           "encoder": p.encoder, "connection": None if p.input is None else p.input.kind,
           "weight_exp": None if p.input is None else int(p.input.weight_exp), "recurrent": p.recurrent is not None,
           "delays": None if p.input is None or p.input.delay is None else int(np.asarray(p.input.delay).max())}
    if p.lif is not None:
        row.update({"du": int(p.lif.du), "dv": int(p.lif.dv), "vth": int(p.lif.vth), "spiking": bool(p.lif.spiking)})
    else:
        row.update({"vth": int(p.sd.vth), "spike_exp": int(p.sd.spike_exp), "state_exp": int(p.sd.state_exp)})
    return row
