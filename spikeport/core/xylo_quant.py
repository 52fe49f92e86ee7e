"""Float <-> Xylo Audio 2 integers for a recurrent network (one place), beside :mod:`spikeport.core.quant` for Loihi.

Units. A population's float state (synaptic currents, v, threshold ``theta``) is held on Xylo as integers of
one *state unit* ``s = theta / TH_INT``: its threshold is the integer ``TH_INT`` for every neuron. A weight
matrix into that population (float value per input event or per spike) becomes 8-bit integers ``q`` and one
left shift ``k``: ``w ~ q * 2**k * s`` (:func:`quantize_matrix`: the smallest shift that keeps max |q| <= 127).
Leaks are Xylo's bit-shift decays: ``beta -> dash`` nearest in time constant, factor ``1 - 2**-dash``
(:func:`spikeport.core.xylo.dash_from_factor`); training uses those factors, so they are not rounded at export.

Mapping of spikeport's recurrent net (``train.xylo_model``) onto the chip: input weights onto synapse 0, the
recurrent weights onto synapse 1 (two 16-bit currents, so each saturates on its own), both with the same decay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet

# The integer threshold of every neuron: 31 spikes' worth (31 * 1024 = 31744) still fits the 16-bit state, so a
# hidden neuron's membrane can hold what its largest step emits; one state unit is 1/1024 of a threshold.
TH_INT = 1 << 10


def shift_for(peak: float, unit: float) -> int:
    """Smallest left shift k >= 0 with peak / (unit * 2**k) <= 127 (an 8-bit weight after rounding)."""
    if peak <= 0:
        return 0
    k = max(0, math.ceil(math.log2(peak / (unit * xylo.WEIGHT_MAX))))
    while peak / (unit * 2.0**k) > xylo.WEIGHT_MAX + 0.5:  # float log2 at exact powers
        k += 1
    return k


def quantize_matrix(w: np.ndarray, unit: float) -> tuple[np.ndarray, int, float]:
    """(int64 q, shift k, float step = unit * 2**k) with q = clip(round(w / step)) in the 8-bit range."""
    w = np.asarray(w, np.float64)
    k = shift_for(float(np.max(np.abs(w))) if w.size else 0.0, unit)
    step = unit * 2.0**k
    return np.clip(np.rint(w / step), xylo.WEIGHT_MIN, xylo.WEIGHT_MAX).astype(np.int64), k, step


@dataclass
class RNNQuant:
    """The Xylo integers of a float recurrent net and the float value of their units: ``unit_hidden`` /
    ``unit_out`` (state units s) and ``step_in`` / ``step_rec`` / ``step_out`` (one weight integer)."""

    net: XyloNet
    unit_hidden: float
    unit_out: float
    step_in: float
    step_rec: float
    step_out: float


def quantize_rnn(w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray, *, theta: float, dash_syn: int,
                 dash_mem: int, dash_syn_out: int, dash_mem_out: int, time_steps: int, dt: float = 1e-3,
                 theta_out: float | None = None, bias=None, bias_out=None, meta: dict | None = None) -> RNNQuant:
    """Float weights in torch layout, w_in [H, Nin], w_rec [H, H], w_out [O, H] (per event / spike, in the units of
    the hidden threshold ``theta`` and the output threshold ``theta_out``, default ``theta``), as a
    :class:`XyloNet` (see the module docstring). ``bias`` [H] / ``bias_out`` [O]: float added to v every step
    (rounded to state units, clipped to 16 bits)."""
    s = float(theta) / TH_INT
    s_out = float(theta if theta_out is None else theta_out) / TH_INT
    q_in, k_in, st_in = quantize_matrix(w_in, s)
    q_rec, k_rec, st_rec = quantize_matrix(w_rec, s)
    q_out, k_out, st_out = quantize_matrix(w_out, s_out)
    nh, no = q_in.shape[0], q_out.shape[0]
    b = np.zeros(nh) if bias is None else np.asarray(bias, np.float64) / s
    b_out = np.zeros(no) if bias_out is None else np.asarray(bias_out, np.float64) / s_out
    clip16 = lambda v: np.clip(np.rint(v), xylo.BIAS_MIN, xylo.BIAS_MAX).astype(np.int64)  # noqa: E731
    zeros_in, zeros_rec = np.zeros_like(q_in.T), np.zeros_like(q_rec.T)
    net = XyloNet(weights_in=np.stack([q_in.T, zeros_in], axis=2), weights_rec=np.stack([zeros_rec, q_rec.T], axis=2),
                  weights_out=q_out.T, dash_mem=dash_mem, dash_syn=dash_syn, dash_syn_2=dash_syn,
                  dash_mem_out=dash_mem_out, dash_syn_out=dash_syn_out, threshold=np.full(nh, TH_INT),
                  threshold_out=np.full(no, TH_INT), bias=clip16(b), bias_out=clip16(b_out), weight_shift_in=k_in,
                  weight_shift_rec=k_rec, weight_shift_out=k_out, time_steps=time_steps, dt=dt, meta=dict(meta or {}))
    return RNNQuant(net, s, s_out, st_in, st_rec, st_out)
