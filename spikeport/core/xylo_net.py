"""A network as it runs on Xylo Audio 2: one hidden population (recurrent, two synapses per neuron) between
at most 16 input channels and at most 8 output neurons, in Xylo integers (:mod:`spikeport.core.xylo`).

Its fields are Rockpool's ``XyloSim.from_specification`` keywords (:data:`SPEC_KEYS`), so the dict
:meth:`XyloNet.spec` returns is accepted there as it is:

* ``weights_in`` int8 [Nin, Nhid, 2]: input channel -> hidden neuron, synapse 0 / 1;
* ``weights_rec`` int8 [Nhid, Nhid, 2]: hidden -> hidden (recurrent, one step late), synapse 0 / 1;
* ``weights_out`` int8 [Nhid, Nout]: hidden -> output (one step late);
* ``weight_shift_in / _rec / _out``: the left shift of each matrix (a weight is worth ``w << shift``);
* ``dash_syn``, ``dash_syn_2``, ``dash_mem`` [Nhid], ``dash_syn_out``, ``dash_mem_out`` [Nout]: bit-shift
  decays (factor ``1 - 2**-dash``); ``threshold`` [Nhid], ``threshold_out`` [Nout]; ``bias`` [Nhid],
  ``bias_out`` [Nout] (added to v every step; int16).

:meth:`XyloNet.violations` lists every chip limit the network breaks, one line each, before anything
runs (``xylosim`` accepts a decay of 20, 2000 hidden neurons, 40 inputs and a shift that wraps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikeport.core import xylo

STATES = ("vmem", "isyn", "isyn2", "vmem_out", "isyn_out")  # what xylosim records per step
SPEC_KEYS = ("weights_in", "weights_rec", "weights_out", "dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2",
             "dash_syn_out", "threshold", "threshold_out", "bias", "bias_out", "weight_shift_in",
             "weight_shift_rec", "weight_shift_out")
POPULATIONS = ("hidden", "output")


@dataclass
class XyloNet:
    """Xylo integers of one network (shapes in the module docstring); ``time_steps`` per sample,
    ``dt`` seconds per step, ``meta`` spikeport's own (readout, dataset, ...)."""

    weights_in: np.ndarray
    weights_rec: np.ndarray
    weights_out: np.ndarray
    dash_mem: np.ndarray
    dash_syn: np.ndarray
    dash_syn_2: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    weight_shift_in: int = 0
    weight_shift_rec: int = 0
    weight_shift_out: int = 0
    time_steps: int = 1
    dt: float = 1e-3
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights_in)
        self.weights_in = (w[:, :, None] if w.ndim == 2 else w).astype(np.int64)
        r = np.asarray(self.weights_rec)
        self.weights_rec = (r[:, :, None] if r.ndim == 2 else r).astype(np.int64)
        self.weights_out = np.asarray(self.weights_out, np.int64)
        if self.weights_in.shape[2] == 1:
            self.weights_in = np.concatenate([self.weights_in, np.zeros_like(self.weights_in)], axis=2)
        if self.weights_rec.shape[2] == 1:
            self.weights_rec = np.concatenate([self.weights_rec, np.zeros_like(self.weights_rec)], axis=2)
        for name in ("dash_mem", "dash_syn", "dash_syn_2", "threshold", "bias"):
            setattr(self, name, np.broadcast_to(np.asarray(getattr(self, name), np.int64), (self.n_hidden,)).copy())
        for name in ("dash_mem_out", "dash_syn_out", "threshold_out", "bias_out"):
            setattr(self, name, np.broadcast_to(np.asarray(getattr(self, name), np.int64), (self.n_out,)).copy())
        for name in ("weight_shift_in", "weight_shift_rec", "weight_shift_out", "time_steps"):
            setattr(self, name, int(getattr(self, name)))
        self.dt = float(self.dt)
        if self.weights_in.ndim != 3 or self.weights_rec.shape != (self.n_hidden, self.n_hidden, 2) \
                or self.weights_out.ndim != 2 or self.weights_out.shape[0] != self.n_hidden \
                or self.weights_in.shape[2] != 2:
            raise ValueError(f"Xylo weights must be weights_in [Nin, Nhid, 2], weights_rec [Nhid, Nhid, 2], "
                             f"weights_out [Nhid, Nout]; got {self.weights_in.shape}, {self.weights_rec.shape}, "
                             f"{self.weights_out.shape}")

    # --- shapes ----------------------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return int(self.weights_in.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.weights_in.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights_out.shape[1])

    @property
    def has_bias(self) -> bool:
        """Xylo adds biases only when enabled for the chip: here, when any neuron has one."""
        return bool(np.any(self.bias) or np.any(self.bias_out))

    @property
    def sizes(self) -> list[int]:
        return [self.n_hidden, self.n_out]

    def describe(self) -> str:
        """Layer sizes, e.g. ``8-64r-8`` (r: recurrent hidden weights)."""
        return f"{self.n_in}-{self.n_hidden}{'r' if self.weights_rec.any() else ''}-{self.n_out}"

    def shifted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w_in, w_rec, w_out) as int64 with each matrix's shift applied: what one event adds."""
        return (self.weights_in << self.weight_shift_in, self.weights_rec << self.weight_shift_rec,
                self.weights_out << self.weight_shift_out)

    def fanout(self) -> np.ndarray:
        """Recurrent targets of each hidden neuron [Nhid] (a target on either synapse counts once)."""
        return (self.weights_rec != 0).any(axis=2).sum(axis=1)

    # --- limits ----------------------------------------------------------------------------------
    def violations(self) -> list[str]:
        """Every Xylo Audio 2 limit this network breaks, one line each (empty: it fits)."""
        x = xylo
        out = []
        for what, n, cap in (("input channels", self.n_in, x.INPUT_CHANNELS), ("hidden neurons", self.n_hidden,
                             x.HIDDEN_MAX), ("output neurons", self.n_out, x.OUTPUT_MAX)):
            if n > cap:
                out.append(f"{n} {what}: Xylo Audio 2 has at most {cap}")
        for name in ("weights_in", "weights_rec", "weights_out"):
            w = getattr(self, name)
            if w.size and (w.min() < x.WEIGHT_MIN or w.max() > x.WEIGHT_MAX):
                out.append(f"{name} reach {int(w.min())}..{int(w.max())}: Xylo weights are 8-bit "
                           f"[{x.WEIGHT_MIN}, {x.WEIGHT_MAX}]")
        for name, w in (("weight_shift_in", self.weights_in), ("weight_shift_rec", self.weights_rec),
                        ("weight_shift_out", self.weights_out)):
            s = getattr(self, name)
            if not 0 <= s <= x.SHIFT_MAX:
                out.append(f"{name} = {s}: Xylo's weight shifts are 0..{x.SHIFT_MAX}")
            elif w.size and ((w.min() << s) < x.STATE_MIN or (w.max() << s) > x.STATE_MAX):
                out.append(f"{name} = {s}: a shifted weight ({int(w.min())} or {int(w.max())} << {s}) leaves the "
                           "16-bit state (it would wrap)")
        for name in ("dash_mem", "dash_syn", "dash_syn_2", "dash_mem_out", "dash_syn_out"):
            d = getattr(self, name)
            if d.size and (d.min() < 0 or d.max() > x.DASH_MAX):
                out.append(f"{name} reaches {int(d.min())}..{int(d.max())}: Xylo's decays (dash) are 0..{x.DASH_MAX}")
        for name in ("threshold", "threshold_out"):
            t = getattr(self, name)
            if t.size and (t.min() < x.THRESHOLD_MIN or t.max() > x.THRESHOLD_MAX):
                out.append(f"{name} reaches {int(t.min())}..{int(t.max())}: thresholds must be "
                           f"{x.THRESHOLD_MIN}..{x.THRESHOLD_MAX} (16-bit; a threshold <= 0 fires the most "
                           "spikes every step)")
        for name in ("bias", "bias_out"):
            b = getattr(self, name)
            if b.size and (b.min() < x.BIAS_MIN or b.max() > x.BIAS_MAX):
                out.append(f"{name} reaches {int(b.min())}..{int(b.max())}: biases are 16-bit")
        fan = self.fanout()
        if fan.size and fan.max() > x.FANOUT_MAX:
            out.append(f"hidden neuron {int(fan.argmax())} has {int(fan.max())} recurrent targets (fan-out): Xylo "
                       f"Audio 2 allows at most {x.FANOUT_MAX}")
        if int(fan.sum()) > x.RECURRENT_ENTRIES_MAX:
            out.append(f"{int(fan.sum())} recurrent connections: Xylo Audio 2's fan-out memory holds "
                       f"{x.RECURRENT_ENTRIES_MAX}")
        return out

    # --- Rockpool's specification ----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The ``XyloSim.from_specification`` keywords (numpy arrays and ints) plus ``dt``."""
        return {**{k: getattr(self, k) for k in SPEC_KEYS}, "dt": self.dt}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], time_steps: int, meta: dict | None = None) -> "XyloNet":
        """The inverse of :meth:`spec` (absent biases are 0, absent shifts 0, absent dt 1 ms)."""
        nh, no = np.shape(spec["weights_in"])[1], np.shape(spec["weights_out"])[1]
        kw = {k: spec.get(k) for k in SPEC_KEYS}
        kw["weights_rec"] = kw["weights_rec"] if kw["weights_rec"] is not None else np.zeros((nh, nh, 2), np.int64)
        for k, n in (("bias", nh), ("bias_out", no)):
            kw[k] = kw[k] if kw[k] is not None else np.zeros(n, np.int64)
        for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
            kw[k] = kw[k] or 0
        return cls(**kw, time_steps=time_steps, dt=float(spec.get("dt") or 1e-3), meta=dict(meta or {}))


def _split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(w, 0).astype(np.float64), np.minimum(w, 0).astype(np.float64)


def simulate(net: XyloNet, x: np.ndarray, record_states: bool = False):
    """``net`` on x [T, B, Nin] event counts, every sample from zero state, the whole chip step by step as
    :mod:`spikeport.core.xylo` describes (batched over samples). Returns (spike counts [hidden [T, B, Nhid],
    output [T, B, Nout]] uint8, states {:data:`STATES`: [T, B, N] int16} or None)."""
    T, B = x.shape[:2]
    w_in, w_rec, w_out = net.shifted()
    syn = [np.concatenate([w_in[:, :, k], w_rec[:, :, k]], axis=0) for k in range(xylo.HIDDEN_SYNAPSES)]
    # only the sources with a synapse onto a target take part (skipping the others changes no sum: speed only)
    rows = [np.flatnonzero(w.any(axis=1)) for w in syn]
    syn = [w[r] for w, r in zip(syn, rows)]
    rows_out = np.flatnonzero(w_out.any(axis=1))
    w_out = w_out[rows_out]
    splits, split_out = [_split(w) for w in syn], _split(w_out)
    nh, no = net.n_hidden, net.n_out
    isyn = [np.zeros((B, nh), np.int64) for _ in syn]
    v, io, vo, prev = (np.zeros((B, n), np.int64) for n in (nh, no, no, nh))
    spikes = [np.zeros((T, B, nh), np.uint8), np.zeros((T, B, no), np.uint8)]
    states = ({k: np.zeros((T, B, no if k.endswith("_out") else nh), np.int16) for k in STATES}
              if record_states else None)
    bias, bias_out = (net.bias, net.bias_out) if net.has_bias else (None, None)
    for t in range(T):
        events = np.concatenate([np.asarray(x[t], np.int64), prev], axis=1)  # inputs first, then hidden
        isyn = [xylo.deliver(i, events[:, r], w, sp) for i, r, w, sp in zip(isyn, rows, syn, splits)]
        io = xylo.deliver(io, prev[:, rows_out], w_out, split_out)
        n, isyn, v = xylo.evolve(isyn, v, dash_syn=[net.dash_syn, net.dash_syn_2], dash_mem=net.dash_mem,
                                 threshold=net.threshold, max_spikes=xylo.HIDDEN_SPIKES_MAX, bias=bias)
        n_out, (io,), vo = xylo.evolve([io], vo, dash_syn=[net.dash_syn_out], dash_mem=net.dash_mem_out,
                                       threshold=net.threshold_out, max_spikes=xylo.OUTPUT_SPIKES_MAX, bias=bias_out)
        spikes[0][t], spikes[1][t], prev = n, n_out, n
        if states is not None:
            for key, val in zip(STATES, (v, isyn[0], isyn[1], vo, io)):
                states[key][t] = val
    return spikes, states
