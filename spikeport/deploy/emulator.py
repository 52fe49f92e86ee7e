"""A batched integer simulator that runs a :class:`LoihiNet` exactly as Lava's fixed_pt models do.

Every neuron update goes through :func:`spikeport.core.loihi.lif_step`. Feed-forward inputs of all
T steps are one matrix product per layer (float64 BLAS: every product and partial sum is an integer
far below 2**53, so the result is exact), then the recurrence runs step by step on int64 arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeport.core import loihi
from spikeport.deploy.netdef import Connection, LoihiNet

EXACT_FLOAT_LIMIT = 2**53


@dataclass
class EmulatorRun:
    """Spikes per population, each [T, B, N] bool; ``states`` (u, v per population, [T, B, N] int64)
    only when asked for."""

    spikes: list[np.ndarray]
    states: list[tuple[np.ndarray, np.ndarray]] | None = None

    def output_counts(self) -> np.ndarray:
        """[B, n_out] spike counts of the last population."""
        return self.spikes[-1].sum(axis=0)


def connection_input(conn: Connection, x: np.ndarray) -> np.ndarray:
    """Summed input shift(q @ x, weight_exp) for x [..., in] integers; returns int64 [..., out]."""
    w = conn.weight.astype(np.float64)
    peak = float(np.abs(x).max(initial=0)) * float(np.abs(w).sum(axis=1).max(initial=0))
    if peak < EXACT_FLOAT_LIMIT:
        acc = np.rint(x.astype(np.float64) @ w.T).astype(np.int64)
    else:  # exact integer product (slow path, never needed for 8-bit weights and inputs)
        acc = x.astype(np.int64) @ conn.weight_t()
    return loihi.shift_exp(acc, conn.weight_exp)


def run(net: LoihiNet, x: np.ndarray, *, record_states: bool = False) -> EmulatorRun:
    """Run samples ``x`` [T, B, input_size] (integer spikes or graded values) through ``net``."""
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[0] != net.time_steps:
        raise ValueError(f"input must be [T={net.time_steps}, B, ...], got {x.shape}")
    T, B = x.shape[:2]
    layer_in = x.reshape(T, B, -1)
    spikes, states = [], []
    for pop in net.populations:
        ff = connection_input(pop.input, layer_in.reshape(T * B, -1)).reshape(T, B, pop.size)
        u = np.zeros((B, pop.size), dtype=np.int64)
        v = np.zeros((B, pop.size), dtype=np.int64)
        bias = pop.lif.effective_bias()
        s_prev = np.zeros((B, pop.size), dtype=np.int64)
        out = np.zeros((T, B, pop.size), dtype=bool)
        us = np.zeros((T, B, pop.size), dtype=np.int64) if record_states else None
        vs = np.zeros((T, B, pop.size), dtype=np.int64) if record_states else None
        for t in range(T):
            a = ff[t]
            if pop.recurrent is not None:
                a = a + connection_input(pop.recurrent, s_prev)
            s, u, v = loihi.lif_step(u, v, a, pop.lif, bias)
            out[t] = s
            s_prev = s.astype(np.int64)
            if record_states:
                us[t], vs[t] = u, v
        spikes.append(out)
        if record_states:
            states.append((us, vs))
        layer_in = out.astype(np.int64)
    return EmulatorRun(spikes=spikes, states=states if record_states else None)
