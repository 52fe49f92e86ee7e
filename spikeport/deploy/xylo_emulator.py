"""The batched Xylo emulator: a :class:`~spikeport.core.xylo_net.XyloNet` run on many samples at once,
bit for bit what SynSense's ``xylosim`` computes (the equations are :mod:`spikeport.core.xylo`'s).

Input ``x`` [T, B, Nin] integer event counts (0..15); output spike counts per population, hidden
[T, B, Nhid] (0..31) and output [T, B, Nout] (0/1), uint8; with ``record_states`` also every neuron's
16-bit state after each step (what xylosim records): ``vmem``, ``isyn``, ``isyn2`` [T, B, Nhid] and
``vmem_out``, ``isyn_out`` [T, B, Nout], int16. Every sample starts from zero state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet

STATES = ("vmem", "isyn", "isyn2", "vmem_out", "isyn_out")


@dataclass
class XyloRun:
    """Spike counts per population ([hidden, output], each [T, B, N] uint8) and, when recorded, the
    states (:data:`STATES` -> [T, B, N] int16)."""

    spikes: list[np.ndarray]
    states: dict[str, np.ndarray] | None = None


class _Weights:
    """One net's shifted weights, stacked per synapse as [inputs; hidden] x hidden, with their positive and
    negative parts in float64 (the emulator's products; exact, see ``xylo.deliver``)."""

    def __init__(self, net: XyloNet):
        w_in, w_rec, w_out = net.shifted()
        self.syn = [np.concatenate([w_in[:, :, k], w_rec[:, :, k]], axis=0) for k in range(xylo.HIDDEN_SYNAPSES)]
        self.out = w_out
        self.split = [_split(w) for w in self.syn]
        self.split_out = _split(w_out)


def _split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(w, 0).astype(np.float64), np.minimum(w, 0).astype(np.float64)


def run(net: XyloNet, x: np.ndarray, record_states: bool = False) -> XyloRun:
    """Run ``net`` on x [T, B, Nin] (see the module docstring)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValueError(f"Xylo input must be [T, B, {net.n_in}] event counts, got shape {x.shape}")
    xylo.check_counts(x)
    T, B = x.shape[:2]
    W = _Weights(net)
    nh, no = net.n_hidden, net.n_out
    isyn = [np.zeros((B, nh), np.int64) for _ in range(xylo.HIDDEN_SYNAPSES)]
    v, io, vo = np.zeros((B, nh), np.int64), np.zeros((B, no), np.int64), np.zeros((B, no), np.int64)
    prev = np.zeros((B, nh), np.int64)
    spikes = [np.zeros((T, B, nh), np.uint8), np.zeros((T, B, no), np.uint8)]
    states = {k: np.zeros((T, B, no if k.endswith("_out") else nh), np.int16) for k in STATES} if record_states else None
    bias, bias_out = (net.bias, net.bias_out) if net.has_bias else (None, None)
    for t in range(T):
        events = np.concatenate([x[t].astype(np.int64), prev], axis=1)
        isyn = [xylo.deliver(i, events, w, s) for i, w, s in zip(isyn, W.syn, W.split)]
        io = xylo.deliver(io, prev, W.out, W.split_out)
        n, isyn, v = xylo.evolve(isyn, v, dash_syn=[net.dash_syn, net.dash_syn_2], dash_mem=net.dash_mem,
                                 threshold=net.threshold, max_spikes=xylo.HIDDEN_SPIKES_MAX, bias=bias)
        n_out, (io,), vo = xylo.evolve([io], vo, dash_syn=[net.dash_syn_out], dash_mem=net.dash_mem_out,
                                       threshold=net.threshold_out, max_spikes=xylo.OUTPUT_SPIKES_MAX, bias=bias_out)
        spikes[0][t], spikes[1][t], prev = n, n_out, n
        if states is not None:
            for key, val in zip(STATES, (v, isyn[0], isyn[1], vo, io)):
                states[key][t] = val
    return XyloRun(spikes, states)
