"""Float reference simulator of a NIR graph under one producer's conventions, with explicit dt.

``simulate(graph, producer, dt, x)`` runs inputs ``x`` ``[T, B, *input_shape]`` (float, time-major)
through a :class:`~spikeport.nirfmt.flat.FlatGraph` step by step in float32 torch (the peers'
precision) and returns every recorded node's output ``[T, B, *shape]``.

Within a step, nodes run in ``graph.order``; a node's input is the sum of its sources' outputs of
the same step, plus its recurrent sources' outputs of the previous step (at step 0: a connection's
output on zero input, i.e. an Affine's bias; a neuron's 0). Spikes
pass to the next layer in the same step (no per-layer lag), as in every peer. Connections:

* Affine ``W x + b``, Linear ``W x``, Scale ``s * x`` (torch ``F.linear``, as the peers run them);
* Conv2d (torch cross-correlation, NIR's layout ``[C, H, W]``), SumPool2d (``F.lp_pool2d`` with p=1,
  a plain sum, as Sinabs and Norse run it), AvgPool2d (``F.avg_pool2d``);
* Flatten (row-major over the sample dims), Threshold ``x > theta`` (``>=`` where the producer says),
  Delay (``round(delay / dt)`` steps; an exact whole number of steps is required).

Neurons come from :mod:`spikeport.importer.neurons`, one implementation per producer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikeport.errors import SpikeportError
from spikeport.importer import neurons
from spikeport.importer.conventions import Producer
from spikeport.nirfmt.flat import FlatGraph
from spikeport.nirfmt.shapes import conv_padding, pair

PASS = ("Input", "Output", "Identity")


@dataclass
class SimResult:
    """Outputs per recorded node, each ``[T, B, *shape]`` float32 numpy; ``spiking`` names the nodes
    whose output is spikes (the rest are voltages or currents)."""

    outputs: dict[str, np.ndarray]
    spiking: set[str]
    output: str

    @property
    def readout(self) -> np.ndarray:
        """The Output node's values ``[T, B, N]`` (flattened over the sample dims)."""
        out = self.outputs[self.output]
        return out.reshape(out.shape[0], out.shape[1], -1)


def _delay_steps(node, dt: float, shape, err) -> np.ndarray:
    d = np.broadcast_to(np.asarray(node.delay, np.float64), shape) / dt
    steps = np.rint(d)
    if np.any(np.abs(d - steps) > 1e-6 * np.maximum(1.0, np.abs(d))) or np.any(steps < 0):
        raise err(f"delay is not a whole, non-negative number of steps of dt={dt} s")
    return steps.astype(np.int64)


class _Delay:
    """A FIFO per element: output at step t is the input of step t - d (zero before)."""

    def __init__(self, steps: np.ndarray):
        self.steps = torch.as_tensor(steps)
        self.depth = int(steps.max(initial=0))

    def init(self, B, shape):
        return (torch.zeros((self.depth + 1, B) + tuple(shape)),)

    def step(self, x, state):
        (buf,) = state
        buf = torch.roll(buf, 1, dims=0)
        buf[0] = x
        idx = self.steps.expand(x.shape).unsqueeze(0)
        return torch.gather(buf, 0, idx).squeeze(0), (buf,)


def _connection(kind: str, node, out_shape, dt: float, prod: Producer, err):
    """A stateless op ``f(x [B, *in]) -> [B, *out]`` for a connection node (or None for pass-through)."""
    if kind in PASS:
        return lambda x: x
    if kind in ("Affine", "Linear"):
        w = torch.as_tensor(np.asarray(node.weight, np.float64), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(node.bias, np.float64), dtype=torch.float32).reshape(-1) \
            if kind == "Affine" else None
        if b is not None and b.numel() == 1:
            b = b.expand(w.shape[0])
        return lambda x: F.linear(x, w, b)
    if kind == "Scale":
        s = torch.as_tensor(np.asarray(node.scale, np.float64), dtype=torch.float32)
        s = s.reshape(out_shape) if s.numel() == int(np.prod(out_shape)) else s.reshape(())
        return lambda x: x * s
    if kind == "Flatten":
        return lambda x: x.reshape((x.shape[0],) + tuple(out_shape))
    if kind == "Conv2d":
        w = torch.as_tensor(np.asarray(node.weight, np.float64), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(node.bias, np.float64), dtype=torch.float32).reshape(-1).expand(w.shape[0])
        stride, pad = pair(node.stride, "stride", err), conv_padding(node, err)
        dil, groups = pair(node.dilation, "dilation", err), int(np.asarray(node.groups))
        return lambda x: F.conv2d(x, w, b, stride, pad, dil, groups)
    if kind in ("SumPool2d", "AvgPool2d"):
        k, s, p = pair(node.kernel_size, "kernel_size", err), pair(node.stride, "stride", err), \
            pair(node.padding, "padding", err)
        if kind == "AvgPool2d":
            return lambda x: F.avg_pool2d(x, k, s, p)
        if p == (0, 0):
            return lambda x: F.lp_pool2d(x, 1, k, s)
        return lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True) * (k[0] * k[1])
    if kind == "Threshold":
        th = torch.as_tensor(np.broadcast_to(np.asarray(node.threshold, np.float64), out_shape).copy(),
                             dtype=torch.float32)
        if prod.threshold == ">=":
            return lambda x: (x >= th).to(x.dtype)
        return lambda x: (x > th).to(x.dtype)
    raise err(f"node type {kind} cannot be simulated")


def simulate(fg: FlatGraph, prod: Producer, dt: float, x, record: list[str] | None = None) -> SimResult:
    """Run ``x`` ``[T, B, *input_shape]`` through ``fg`` (see module docstring); record the nodes in
    ``record`` (default: every neuron and the Output)."""
    if not (isinstance(dt, float) and np.isfinite(dt) and dt > 0):
        raise SpikeportError(f"dt must be a positive number of seconds, got {dt!r}")
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if x.ndim < 2 or tuple(x.shape[2:]) != fg.input_shape:
        if x.ndim >= 2 and int(np.prod(x.shape[2:])) == int(np.prod(fg.input_shape)):
            x = x.reshape(x.shape[:2] + fg.input_shape)
        else:
            raise SpikeportError(f"{fg.path}: inputs must be [T, B, {', '.join(map(str, fg.input_shape))}], "
                                 f"got {tuple(x.shape)}")
    T, B = x.shape[:2]
    srcs = fg.sources
    ops, states, spiking = {}, {}, set()
    for name in fg.order:
        kind, node, shape = fg.kinds[name], fg.nodes[name], fg.shapes[name]

        def err(why: str, _n: str = name) -> SpikeportError:
            return fg.err(_n, why)

        if kind in neurons.NEURON_KINDS:
            recurrent = any(rec for _, rec in srcs[name])
            try:
                op = neurons.make(kind, node, shape, dt, prod, recurrent)
            except ValueError as e:
                raise err(str(e)) from None
            ops[name], states[name] = ("neuron", op), op.init(B)
            if op.spiking:
                spiking.add(name)
        elif kind == "Delay":
            d = _Delay(_delay_steps(node, dt, shape, err))
            ops[name], states[name] = ("delay", d), d.init(B, shape)
        else:
            ops[name] = ("conn", _connection(kind, node, shape, dt, prod, err))
    if record is None:
        record = [n for n in fg.order if fg.kinds[n] in neurons.NEURON_KINDS] + [fg.output]
    # Values on recurrent edges at step 0: a neuron's previous output is 0; a connection's is its output
    # on zero input (an Affine's bias), as snnTorch's RSynaptic computes recurrent(spk=0) at step 0.
    prev = {n: torch.zeros((B,) + fg.shapes[n]) for n in fg.nodes}
    with torch.no_grad():
        for a, _ in fg.recurrent:
            if ops.get(a, ("",))[0] == "conn":
                zero = [torch.zeros((B,) + fg.shapes[s]) for s, r in srcs[a] if not r]
                prev[a] = ops[a][1](zero[0])
    rec_out: dict[str, list] = {n: [] for n in record}
    with torch.no_grad():
        for t in range(T):
            cur: dict[str, torch.Tensor] = {fg.input: x[t]}
            for name in fg.order:
                if name == fg.input:
                    continue
                ff = [cur[s] for s, r in srcs[name] if not r]
                rr = [prev[s] for s, r in srcs[name] if r]
                x_ff = ff[0] if len(ff) == 1 else sum(ff[1:], ff[0])
                x_rec = None if not rr else (rr[0] if len(rr) == 1 else sum(rr[1:], rr[0]))
                role, op = ops[name]
                if role == "neuron":
                    cur[name], states[name] = op.step(x_ff, x_rec, states[name])
                else:
                    inp = x_ff if x_rec is None else x_ff + x_rec
                    if role == "delay":
                        cur[name], states[name] = op.step(inp, states[name])
                    else:
                        cur[name] = op(inp)
            for name in record:
                rec_out[name].append(cur[name])
            prev = {n: cur.get(n, prev[n]) for n in prev}
    return SimResult({n: torch.stack(v).numpy() for n, v in rec_out.items()}, spiking, fg.output)


def predict(res: SimResult) -> np.ndarray:
    """Class per sample: argmax of output spike counts, or of the summed membrane for a non-spiking
    (LI / CubaLI) readout; ties go to the lowest index."""
    return res.readout.sum(axis=0).argmax(axis=1)
