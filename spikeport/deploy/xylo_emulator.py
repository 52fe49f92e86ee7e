"""The batched Xylo emulator: a :class:`~spikeport.core.xylo_net.XyloNet` run on many samples at once,
bit for bit what SynSense's ``xylosim`` computes (the equations are :mod:`spikeport.core.xylo`'s, the step
loop :func:`spikeport.core.xylo_net.simulate`).

Input ``x`` [T, B, Nin] integer event counts (0..15); output spike counts per population, hidden
[T, B, Nhid] (0..31) and output [T, B, Nout] (0/1), uint8; with ``record_states`` also every neuron's
16-bit state after each step (what xylosim records): ``vmem``, ``isyn``, ``isyn2`` [T, B, Nhid] and
``vmem_out``, ``isyn_out`` [T, B, Nout], int16. Every sample starts from zero state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeport.core import xylo
from spikeport.core.xylo_net import STATES, XyloNet, simulate

__all__ = ["STATES", "XyloRun", "run"]


@dataclass
class XyloRun:
    """Spike counts per population ([hidden, output], each [T, B, N] uint8) and, when recorded, the
    states (:data:`STATES` -> [T, B, N] int16)."""

    spikes: list[np.ndarray]
    states: dict[str, np.ndarray] | None = None


def check_input(net: XyloNet, x: np.ndarray) -> np.ndarray:
    """x as an array [T, B, Nin] of event counts in 0..15 (ValueError otherwise)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValueError(f"Xylo input must be [T, B, {net.n_in}] event counts, got shape {x.shape}")
    xylo.check_counts(x)
    return x


def run(net: XyloNet, x: np.ndarray, record_states: bool = False) -> XyloRun:
    """Run ``net`` on x [T, B, Nin] (see the module docstring)."""
    spikes, states = simulate(net, check_input(net, x), record_states)
    return XyloRun(spikes, states)
