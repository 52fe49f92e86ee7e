"""The network ``target = "xylo-audio2"`` trains: Xylo Audio 2's recurrent hidden population and its output
neurons, in float (surrogate-gradient BPTT), quantization-aware, and in Xylo integers.

Float dynamics, per step t (shapes [B, N]; the order of :mod:`spikeport.core.xylo`; ``a = 1 - 2**-dash``)::

    hidden:  i0 = a_syn (i0 + W_in x[t]);  i1 = a_syn (i1 + W_rec n[t-1])      two synaptic currents
             v  = a_mem v + i0 + i1;   n[t] = min(31, floor(v / theta)) if v >= theta;   v -= n[t] theta
    output:  io = a_syn_o (io + W_out n[t-1]);  vo = a_mem_o vo + io;  o[t] = vo >= theta;  vo -= o[t] theta

The leaks are Xylo's bit-shift decays nearest ``beta_syn`` / ``beta_mem`` (``xylo.dash_from_factor``), exactly
(power-of-two leaks in training). QAT (``qat=True``) runs the same steps on the values Xylo holds: 8-bit weights
with one shift per matrix (straight-through), currents and v saturated at the 16-bit state
(``core.xylo_quant``). Backward: the staircase n(v) passes (1/theta) / (1 + a d)^2, d the distance (in
thresholds) outside 1..31 (SuperSpike's fast sigmoid, slope a = ``surrogate_slope``); the output spike the same
below its threshold. Loss and readout: the ``lif`` method's (cross-entropy on output spike counts).

``forward_int`` is the integer chip (:func:`spikeport.core.xylo_net.simulate` on :meth:`XyloRNN.to_xylo`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikeport.core import xylo
from spikeport.core.xylo_net import XyloNet, simulate
from spikeport.core.xylo_quant import RNNQuant, quantize_rnn
from spikeport.train.model import LayerSpec


class _Staircase(torch.autograd.Function):
    """n = min(cap, floor(z)) where z >= 1, else 0 (z = v / theta); surrogate backward (module docstring)."""

    @staticmethod
    def forward(ctx, z, cap: float, slope: float):
        ctx.save_for_backward(z)
        ctx.cap, ctx.slope = cap, slope
        return torch.where(z >= 1.0, torch.clamp(torch.floor(z), max=cap), torch.zeros_like(z))

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        dist = torch.clamp(1.0 - z, min=0.0) + torch.clamp(z - ctx.cap, min=0.0)
        return grad / (1.0 + ctx.slope * dist) ** 2, None, None


class XyloPopulation(nn.Module):
    """One population's float weights (``weight`` [out, in]; hidden also ``weight_rec`` [out, out]). ``spec``,
    ``use_fused`` and ``compile_fused`` are what the training loop reads of every layer."""

    use_fused = False
    compile_fused = False

    def __init__(self, spec: LayerSpec, recurrent: bool, init_in: float):
        super().__init__()
        self.spec = spec
        self.weight = nn.Parameter(torch.empty(spec.n_out, spec.n_in).uniform_(-init_in, init_in))
        if recurrent:
            b = 0.5 / np.sqrt(spec.n_out)
            self.weight_rec = nn.Parameter(torch.empty(spec.n_out, spec.n_out).uniform_(-b, b))


def _fake(w: torch.Tensor, step: float) -> torch.Tensor:
    """8-bit rounding of w / step times step forward, identity backward."""
    q = torch.clamp(torch.round(w / step), xylo.WEIGHT_MIN, xylo.WEIGHT_MAX) * step
    return w + (q - w).detach()


class XyloRNN(nn.Module):
    """Input (event counts) -> recurrent hidden population -> output neurons, as on Xylo Audio 2 (module docstring).
    ``layers``: [hidden, output]."""

    def __init__(self, cfg, n_in: int, n_out: int):
        super().__init__()
        from spikeport.errors import SpikeportError

        hidden = int(cfg.hidden[0])
        if n_in > xylo.INPUT_CHANNELS:
            raise SpikeportError(f"{n_in} inputs: Xylo Audio 2 has at most {xylo.INPUT_CHANNELS} input channels")
        if hidden > xylo.FANOUT_MAX:
            raise SpikeportError(f"hidden layer of {hidden}: xylo-audio2 trains a dense recurrent matrix, {hidden} "
                                 f"recurrent targets per neuron; Xylo Audio 2 allows {xylo.FANOUT_MAX} (hidden <= "
                                 f"{xylo.FANOUT_MAX})")
        if n_out > xylo.OUTPUT_MAX:
            raise SpikeportError(f"{n_out} output neurons (classes x population): Xylo Audio 2 has at most "
                                 f"{xylo.OUTPUT_MAX}; use a dataset of at most {xylo.OUTPUT_MAX} classes (digits-rows)")
        self.theta, self.slope, self.time_steps = float(cfg.theta), float(cfg.surrogate_slope), int(cfg.time_steps)
        self.dash_syn = int(xylo.dash_from_factor(cfg.beta_syn))
        self.dash_mem = int(xylo.dash_from_factor(cfg.beta_mem))
        spec = lambda a, b: LayerSpec(a, b, beta_syn=float(xylo.decay_factor(self.dash_syn)),  # noqa: E731
                                      beta_mem=float(xylo.decay_factor(self.dash_mem)), theta=self.theta)
        self.layers = nn.ModuleList([XyloPopulation(spec(n_in, hidden), True, 1.0 / np.sqrt(n_in)),
                                     XyloPopulation(spec(hidden, n_out), False, 2.0 / np.sqrt(hidden))])

    # --- integers --------------------------------------------------------------------------------
    def quant(self) -> RNNQuant:
        """The Xylo integers of the current float weights."""
        f = lambda p: p.detach().cpu().double().numpy()  # noqa: E731
        hid, out = self.layers
        return quantize_rnn(f(hid.weight), f(hid.weight_rec), f(out.weight), theta=self.theta, dash_syn=self.dash_syn,
                            dash_mem=self.dash_mem, dash_syn_out=self.dash_syn, dash_mem_out=self.dash_mem,
                            time_steps=self.time_steps)

    def to_xylo(self) -> XyloNet:
        return self.quant().net

    @torch.no_grad()
    def forward_int(self, x_int: torch.Tensor) -> list[torch.Tensor]:
        """x_int [T, B, Nin] event counts -> spike counts [hidden [T, B, H], output [T, B, O]] (uint8), as Xylo."""
        spikes, _ = simulate(self.to_xylo(), np.asarray(x_int.reshape(*x_int.shape[:2], -1), np.int64))
        return [torch.from_numpy(s) for s in spikes]

    # --- float / QAT -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, qat: bool = False) -> list[torch.Tensor]:
        """x [T, B, ...] float event counts -> [hidden spike counts [T, B, H], output spikes [T, B, O]] (float)."""
        hid, out = self.layers
        w_in, w_rec, w_out = hid.weight, hid.weight_rec, out.weight
        lim = None
        if qat:
            q = self.quant()
            w_in, w_rec, w_out = _fake(w_in, q.step_in), _fake(w_rec, q.step_rec), _fake(w_out, q.step_out)
            lim = (xylo.STATE_MIN * q.unit_hidden, xylo.STATE_MAX * q.unit_hidden)
        sat = (lambda t: t) if lim is None else (lambda t: torch.clamp(t, *lim))  # noqa: E731
        a_syn, a_mem = hid.spec.beta_syn, hid.spec.beta_mem
        th = self.theta
        x = x.reshape(*x.shape[:2], -1)
        cur = x @ w_in.t()
        T, B = x.shape[:2]
        z = cur.new_zeros
        i0, i1, v, n = z(B, hid.spec.n_out), z(B, hid.spec.n_out), z(B, hid.spec.n_out), z(B, hid.spec.n_out)
        io, vo = z(B, out.spec.n_out), z(B, out.spec.n_out)
        hs, os_ = [], []
        for t in range(T):
            i_o = a_syn * sat(io + n @ w_out.t())  # the output hears the hidden spikes of the previous step
            i1 = a_syn * sat(i1 + n @ w_rec.t())
            i0 = a_syn * sat(i0 + cur[t])
            v = sat(a_mem * v + i0 + i1)
            n = _Staircase.apply(v / th, float(xylo.HIDDEN_SPIKES_MAX), self.slope)
            v = v - n * th
            io = i_o
            vo = sat(a_mem * vo + io)
            o = _Staircase.apply(vo / th, float(xylo.OUTPUT_SPIKES_MAX), self.slope)
            vo = vo - o * th
            hs.append(n)
            os_.append(o)
        return [torch.stack(hs), torch.stack(os_)]
