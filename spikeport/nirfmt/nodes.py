"""spikeport-format NIR nodes and graphs: one builder per node kind, one graph assembler, the
graph metadata. ``export`` (trained runs) and ``importer`` (peer graphs) both build through here.

Float meaning (explicit ``dt``, stored in the graph metadata). NIR's CubaLIF,
``tau_syn dI/dt = -I + w_in * x`` and ``tau_mem dv/dt = (v_leak - v) + r * I``, taken one forward
Euler step of ``dt`` with I updated first (Loihi's order), is exactly spikeport's layer

    I[t] = beta_syn * I[t-1] + x[t]          with beta_syn = 1 - dt/tau_syn, w_in = tau_syn/dt
    v[t] = beta_mem * v[t-1] + I[t] + bias    with beta_mem = 1 - dt/tau_mem, r = tau_mem/dt,
                                              bias = dt/tau_mem * v_leak
    spike when v > v_threshold, then v = v_reset = 0.

A layer without leak (beta_mem = 1) is written with tau_mem = K*dt, K a power of two (:func:`no_leak_steps`).

The float values written are the *quantized* ones (int8 weights times scale, rounded leaks,
threshold and bias), so the float graph and the integer metadata describe the same network.
Metadata per node (key ``loihi``): Affine / Conv2d -> ``weight`` (int8 [out, in] or [C_out, C_in,
kh, kw]; an Affine of 16-bit weights, two Loihi synapses each, holds int16 and ``weight_bits`` = 16),
``weight_exp``, ``weight_scale``, ``input_unit`` and, for a pruned layer, ``mask`` (bool:
the synapses that exist; the float weight is zero outside) and, for a population with a bias line
(a constant current into u, :class:`BiasLine`), ``line_weight``, ``line_weight_exp``, ``line_scale``
(the node's float bias is that current; without a line it is zero); CubaLIF -> ``du``, ``dv``, ``vth``,
``bias_mant``, ``bias_exp``, ``floor_v`` (bool: v = max(v, 0) before the threshold, KLIF; the float
CubaLIF cannot say this, see :data:`spec.FLOOR_V_NOTE`). Tensors keep torch's layout: conv weights
applied as a cross-correlation, populations after a conv ``(C, H, W)``, Flatten C-major over the
whole sample (``start_dim=0``: NIR nodes carry no batch axis). An AvgPool2d divides by the window
size; Loihi cannot, so the next layer's integers act on the *sum* and the node says so with
``metadata["loihi"]["as_sum"] = True``. A recurrent Affine acts on the population's own spikes of
the previous step (Loihi's one-step connection delay).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import nir
import numpy as np

from spikeport.core import quant
from spikeport.core.quant import LayerQuant
from spikeport.errors import SpikeportError
from spikeport.nirfmt import spec
from spikeport.nirfmt.line import BiasLine

POPULATION_FIELDS = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def _weight_meta(lq: LayerQuant, input_unit: float) -> dict:
    meta = {"weight": lq.weight.astype(np.int16 if lq.wide else np.int8), "weight_exp": int(lq.weight_exp),
            "weight_scale": float(lq.weight_scale), "input_unit": float(input_unit)}
    if lq.wide:
        meta[spec.WEIGHT_BITS] = spec.WIDE_BITS
    if lq.mask is not None:
        meta["mask"] = np.asarray(lq.mask, dtype=bool)
    return {spec.NODE_META: meta}


def no_leak_steps(dt: float, bias: np.ndarray) -> float:
    """K = tau_mem / dt written for a layer without membrane leak: the largest power of two up to
    2**NO_LEAK_MAX_EXP for which tau_mem = K*dt, r = K and v_leak = K*bias (float, per step) all stay
    within :data:`spec.MAX_ABS`, so that the graph passes spikeport's own guard whatever dt and bias are.
    Raises SpikeportError when even 2**NO_LEAK_MIN_EXP does not fit (a bias or dt beyond ~6e4)."""
    scale = max(1.0, float(dt), float(np.abs(bias).max(initial=0.0)))
    k = min(spec.NO_LEAK_MAX_EXP, math.floor(math.log2(spec.MAX_ABS / scale)))
    if k < spec.NO_LEAK_MIN_EXP:
        raise SpikeportError(f"a layer without leak cannot be written as a NIR CubaLIF with dt = {dt:g} s and a "
                             f"bias of {scale:g} per step: tau_mem = dt*2**{spec.NO_LEAK_MIN_EXP} or v_leak would "
                             f"exceed {spec.MAX_ABS:.0e}")
    return 2.0**k


def cuba_lif_node(lq: LayerQuant, dt: float = spec.DT, n: int | None = None,
                  shape: tuple[int, ...] | None = None) -> nir.CubaLIF:
    """``n`` neurons (default: one per weight row; a conv layer has more), every parameter shaped
    ``shape`` when given (a population after a conv: (C, H, W))."""
    n = int(n or lq.weight.shape[0])
    beta_syn, beta_mem = quant.decay_from_du(lq.lif.du), quant.decay_from_dv(lq.lif.dv)
    tau_syn = dt / (1.0 - beta_syn)
    bias = np.broadcast_to(lq.float_bias(), (n,)).astype(np.float64)
    # dv = 0 (no leak): the nearest finite CubaLIF, tau_mem = K*dt with exact gain and bias (spec.NO_LEAK_MAX_EXP)
    tau_mem = dt / (1.0 - beta_mem) if beta_mem < 1.0 else dt * no_leak_steps(dt, bias)
    full = lambda val: np.full(n, val, dtype=np.float64)  # noqa: E731
    shaped = (lambda a: np.asarray(a).reshape(shape)) if shape and len(shape) > 1 else (lambda a: a)
    meta = {spec.NODE_META: {"du": int(lq.lif.du), "dv": int(lq.lif.dv), "vth": int(lq.lif.vth),
                      "bias_mant": shaped(np.broadcast_to(np.asarray(lq.lif.bias_mant, np.int64), (n,)).copy()),
                      "bias_exp": int(lq.lif.bias_exp), "floor_v": bool(lq.lif.floor_v),
                      "state_scale": float(lq.state_scale)}}
    if lq.lif.floor_v:
        meta[spec.NODE_META]["floor_v_note"] = spec.FLOOR_V_NOTE
    values = {"tau_syn": full(tau_syn), "tau_mem": full(tau_mem), "r": full(tau_mem / dt),
              "v_leak": bias * tau_mem / dt, "v_threshold": full(lq.float_threshold()), "v_reset": full(0.0),
              "w_in": full(tau_syn / dt)}
    return nir.CubaLIF(**{f: shaped(values[f]) for f in POPULATION_FIELDS}, metadata=meta)


def _with_line(meta: dict, n_bias: int, line: BiasLine | None) -> tuple[np.ndarray, dict]:
    if line is None:
        return np.zeros(n_bias), meta
    meta[spec.NODE_META].update(line.meta())
    return line.float_bias().reshape(n_bias), meta


def affine_node(lq: LayerQuant, input_unit: float, line: BiasLine | None = None) -> nir.Affine:
    """Float weight = the dequantized int8 matrix (the float graph takes float inputs: pixels in [0, 1]
    or 0/1 spikes). A negative weight_exp (summed input shifted right by k) is part of the integer
    rounding, not the float meaning. ``line``: the population's bias line, written as the float bias."""
    w = lq.dequantized_weight()
    bias, meta = _with_line(_weight_meta(lq, input_unit), w.shape[0], line)
    return nir.Affine(weight=w, bias=bias, metadata=meta)


def recurrent_node(q: np.ndarray, weight_exp: int, weight_scale: float, wide: bool = False) -> nir.Affine:
    """The population's recurrent weights [N, N] (int8, or int16 when ``wide``, on the population's state
    scale)."""
    meta = {spec.NODE_META: {"weight": q.astype(np.int16 if wide else np.int8), "weight_exp": int(weight_exp),
                      "weight_scale": float(weight_scale), "input_unit": 1.0}}
    if wide:
        meta[spec.NODE_META][spec.WEIGHT_BITS] = spec.WIDE_BITS
    return nir.Affine(weight=q.astype(np.float64) * weight_scale, bias=np.zeros(len(q)), metadata=meta)


def conv_node(lq: LayerQuant, input_hw: tuple[int, int], input_unit: float, *, stride=(1, 1), padding=(0, 0),
              dilation=(1, 1), groups: int = 1, line: BiasLine | None = None) -> nir.Conv2d:
    """Conv2d over a (pooled) input of spatial size ``input_hw``; float weight = int8 weight * scale;
    ``line`` (one weight per output channel): the population's bias line, written as the float bias."""
    bias, meta = _with_line(_weight_meta(lq, input_unit), lq.weight.shape[0], line)
    return nir.Conv2d(input_shape=tuple(int(s) for s in input_hw), weight=lq.dequantized_weight(),
                      stride=tuple(int(s) for s in stride), padding=tuple(int(s) for s in padding),
                      dilation=tuple(int(s) for s in dilation), groups=int(groups), bias=bias, metadata=meta)


def pool_node(kernel, stride, padding=(0, 0), avg: bool = False) -> nir.NIRNode:
    """SumPool2d, or AvgPool2d marked ``as_sum`` (its 1/k^2 folded into the next layer's integers)."""
    k, st, p = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (kernel, stride, padding))
    k, st, p = (np.repeat(v, 2) if v.size == 1 else v for v in (k, st, p))
    if avg:
        return nir.AvgPool2d(kernel_size=k, stride=st, padding=p, metadata={spec.NODE_META: {"as_sum": True}})
    return nir.SumPool2d(kernel_size=k, stride=st, padding=p)


def flatten_node(shape: tuple[int, ...]) -> nir.Flatten:
    """Flatten of one whole (C, H, W) sample, C-major."""
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


@dataclass
class Layer:
    """One population's nodes: ``connection`` (name, node) pairs from its input onwards (pool,
    flatten, weights), the population node, and an optional recurrent Affine."""

    index: int
    connection: list[tuple[str, nir.NIRNode]]
    population: nir.NIRNode
    recurrent: nir.NIRNode | None = None


def graph(layers: list[Layer], input_shape: tuple[int, ...], output_shape: tuple[int, ...],
          meta: dict, type_check: bool = True) -> nir.NIRGraph:
    """``input -> [pool{i}] [flat{i}] (fc{i} | conv{i}) -> lif{i} (<-> rec{i}) -> ... -> output`` with
    graph metadata ``{"spikeport": meta}``."""
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges, prev = [], "input"
    for layer in layers:
        for name, node in layer.connection:
            nodes[name] = node
            edges.append((prev, name))
            prev = name
        pop = f"lif{layer.index}"
        nodes[pop] = layer.population
        edges.append((prev, pop))
        if layer.recurrent is not None:
            nodes[f"rec{layer.index}"] = layer.recurrent
            edges += [(pop, f"rec{layer.index}"), (f"rec{layer.index}", pop)]
        prev = pop
    nodes["output"] = nir.Output(output_type={"output": np.array(output_shape)})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={spec.GRAPH_META: meta}, type_check=type_check)
