"""Spiking networks for training (float / quantization-aware) and their exact Loihi-integer forward.

A layer is a weight matrix followed by a CUBA-LIF population with one shared leak pair and
threshold per layer (Loihi has one du, dv, vth per LIF process). Three forwards:

- float: ``core.neuron.cuba_lif_step`` with a surrogate spike function (BPTT);
- QAT (``qat=True``): the same float dynamics on the values Loihi will use: int8 fake-quantized
  weights (straight-through), leaks rounded to 12-bit du/dv, threshold and bias rounded to the
  layer's integer grid (``core.quant``);
- deploy (``forward_int``): integers through ``core.loihi.lif_step``, bit for bit what Lava runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeport.core import loihi, neuron, quant
from spikeport.train.fused import cuba_lif_multistep
from spikeport.train.spike_input import spike_linear
from spikeport.train.surrogate import fast_sigmoid


def constant_over_time(x: torch.Tensor) -> bool:
    """True for an input [T, B, ...] passed as one frame expanded over T steps (a stride-0 view over time,
    as ``train.loop.float_input`` passes direct-encoded frames)."""
    return x.shape[0] > 1 and x.stride(0) == 0


@dataclass
class LayerSpec:
    """Hyper-parameters of one spiking layer (floats; ``beta_*`` are per-step decay factors)."""

    n_in: int
    n_out: int
    beta_syn: float = 0.5
    beta_mem: float = 0.9
    theta: float = 1.0
    bias: bool = False
    recurrent: bool = False


def _float64(x: torch.Tensor) -> np.ndarray:
    """x as a float64 numpy array (numpy converts float32 / float64; other dtypes go through torch)."""
    x = x.detach().cpu()
    return x.numpy().astype(np.float64) if x.dtype in (torch.float32, torch.float64) else x.double().numpy()


class LIFDense(nn.Module):
    """Dense connection + CUBA-LIF. ``input_unit``: float value of one integer input unit
    (1 for spikes, 1/INPUT_LEVELS for direct-encoded pixels).

    A training method (``spikeport.train.methods``) changes a layer by overriding three hooks:
    ``float_params`` (the weight and voltage bias the layer deploys), ``spike_function`` (the
    surrogate gradient) and ``quantize`` (their Loihi integers); ``v_floor`` selects KLIF's ReLU on v.
    """

    use_fused = True  # forward through train.fused (same spikes and gradients as the step loop, faster)
    v_floor = False  # KLIF: v = max(v, 0) after integration, before the threshold (LIFParams.floor_v);
    # True, or a function computing max(v, 0) with its own backward (see core.neuron.cuba_lif_step)
    compile_fused = False  # run the fused op's loops through torch.compile (set by train.loop per run: train.compiling)
    netx = False  # quantize as lava-dl's netx can express (core.quant: weight_exp 0, bias_exp 6); set by
    # checkpoint.build_model from TrainConfig.target

    def __init__(self, spec: LayerSpec, input_unit: float = 1.0, surrogate_slope: float = 10.0):
        super().__init__()
        self.spec = spec
        self.input_unit = float(input_unit)
        self.weight = nn.Parameter(torch.empty(spec.n_out, spec.n_in))
        bound = 1.0 / np.sqrt(spec.n_in) / self.input_unit ** 0 * 2.0
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(spec.n_out)) if spec.bias else None
        self.surrogate_slope = float(surrogate_slope)
        self.spike_fn = fast_sigmoid(surrogate_slope)
        # an input unit of 1 means spikes (rate / latency code, or a spiking layer): the binary-input kernel
        # (train.spike_input) may run, where a batch is 0/1, sparse enough, and the kernel was measured
        # faster than the GEMM on this machine; False: always the GEMM; "always": the kernel wherever it applies
        self.sparse_input: bool | str = self.input_unit == 1.0

    # --- hooks ------------------------------------------------------------------------------------
    def float_params(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float weight [out, in] and per-neuron voltage bias [out] (or None) this layer deploys.
        ``x`` [T, B, in] is the batch being run (methods that normalize use its statistics in training)."""
        return self.weight, self.bias

    def quantize(self, w: torch.Tensor, bias: torch.Tensor | None) -> quant.LayerQuant:
        """Loihi integers for a float weight [out, in] and bias [out] (or None)."""
        # numpy's own conversion to float64 (exact either way): torch's .double() is a parallel region that,
        # on a loaded 2-core machine, waited milliseconds for its second thread at every QAT step
        wn = _float64(w)
        bn = None if bias is None else _float64(bias)
        return quant.quantize_layer(wn, beta_syn=self.spec.beta_syn, beta_mem=self.spec.beta_mem,
                                    theta=self.spec.theta, input_unit=self.input_unit, bias=bn,
                                    floor_v=bool(self.v_floor), max_input=self.max_input_int(), netx=self.netx)

    def max_input_int(self) -> int:
        """Largest integer input of one synapse in one step: 1 for spikes, 1 / input_unit for graded
        input (255 for direct-encoded pixels)."""
        return max(1, int(round(1.0 / self.input_unit)))

    def spike_function(self, theta: float, beta_syn: float, beta_mem: float):
        """``spike(z, cur_t, u_prev)``: Heaviside of z = v - theta (float units) forward, surrogate
        backward. ``cur_t`` [B, N] is this step's weighted input and ``u_prev`` the current before it."""
        return lambda z, cur_t, u_prev: self.spike_fn(z / theta)  # distance in units of threshold

    def fused_neuron(self) -> dict | None:
        """Keyword arguments of :func:`spikeport.train.fused.cuba_lif_multistep` (``slope``, ``scale``,
        ``floor_straight_through``) that reproduce this layer's ``spike_function`` and ``v_floor``
        exactly, or None when they cannot (a method's own surrogate): ``forward`` then runs the step loop.
        """
        if type(self).spike_function is not LIFDense.spike_function or self.v_floor:
            return None
        return {"slope": self.surrogate_slope}

    def project(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Weighted input of all steps: x [T, B, n_in] float, w the float weight -> [T, B, n_out]
        (one GEMM; ``train.layers`` overrides this for convolutions). A sparse binary x takes gathers of
        w's columns instead where they were measured faster (``sparse_input``, ``train.spike_input``)."""
        if self.sparse_input:
            y = spike_linear(x.reshape(-1, x.shape[-1]), w, choose=self.sparse_input != "always")
            if y is not None:
                return y.reshape(*x.shape[:-1], y.shape[-1])
        return x @ w.t()

    def input_current(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``project`` of all T steps at once; an input that is the same at every step (a stride-0 view
        over time, as the training loop passes direct-encoded frames) is projected once and broadcast,
        so the layer's GEMMs forward and backward are T times smaller."""
        if constant_over_time(x):
            one = self.project(x[:1], w)
            return one.expand(x.shape[0], *one.shape[1:])
        return self.project(x, w)

    def synaptic_input_int(self, x: torch.Tensor, lq: quant.LayerQuant) -> torch.Tensor:
        """Summed integer input of all steps, as Lava delivers it: x [T, B, n_in] int64 -> [T, B, n_out]
        int64 = shift(q @ x, weight_exp)."""
        q = torch.as_tensor(lq.masked_weight(), dtype=torch.float64)
        acc = torch.round(x.to(torch.float64) @ q.t()).to(torch.int64)  # exact: integers < 2**53
        return loihi.shift_exp(acc, lq.weight_exp)

    # --- integer form ---------------------------------------------------------------------------
    def quant(self) -> quant.LayerQuant:
        """This layer's Loihi integers for the current float parameters."""
        return self.quantize(*self.float_params())

    # --- float / QAT forward --------------------------------------------------------------------
    def forward(self, x: torch.Tensor, qat: bool = False) -> torch.Tensor:
        """x [T, B, n_in] float -> spikes [T, B, n_out] float (0/1, surrogate gradient)."""
        w, bias = self.float_params(x)
        beta_syn, beta_mem, theta = self.spec.beta_syn, self.spec.beta_mem, self.spec.theta
        if qat:
            lq = self.quantize(w, bias)
            scale = lq.weight_scale
            w = w + (torch.clamp(torch.round(w / scale), *quant.weight_range(lq.wide)) * scale - w).detach()
            beta_syn, beta_mem = quant.decay_from_du(lq.lif.du), quant.decay_from_dv(lq.lif.dv)
            theta = lq.float_threshold()
            if bias is not None:
                fb = torch.tensor(np.broadcast_to(lq.float_bias(), (self.spec.n_out,)), dtype=bias.dtype, device=bias.device)
                bias = bias + (fb - bias).detach()
        cur = self.input_current(x, w)
        fused_kw = self.fused_neuron() if self.use_fused else None
        if fused_kw is not None:  # the whole time loop as one op with a hand-written BPTT backward
            return cuba_lif_multistep(cur, beta_syn, beta_mem, float(theta), bias=0.0 if bias is None else bias,
                                      v_floor=bool(self.v_floor), compile=self.compile_fused, **fused_kw)
        T, B = x.shape[:2]
        u = cur.new_zeros(B, self.spec.n_out)
        v = cur.new_zeros(B, self.spec.n_out)
        b = 0.0 if bias is None else bias
        out = []
        spike = self.spike_function(theta, beta_syn, beta_mem)
        for t in range(T):
            s, u, v = neuron.cuba_lif_step(cur[t], u, v, beta_syn=beta_syn, beta_mem=beta_mem, theta=theta, bias=b,
                                           spike_fn=lambda z: spike(z, cur[t], u), v_floor=self.v_floor)  # noqa: B023
            out.append(s)
        return torch.stack(out)

    # --- deploy-mode forward (Loihi integers) ---------------------------------------------------
    @torch.no_grad()
    def forward_int(self, x: torch.Tensor, lq: quant.LayerQuant | None = None) -> torch.Tensor:
        """x [T, B, n_in] integer -> spikes [T, B, n_out] bool, exactly as Loihi computes them."""
        lq = lq or self.quant()
        a_all = self.synaptic_input_int(x, lq)
        T, B = x.shape[:2]
        u = torch.zeros(B, self.spec.n_out, dtype=torch.int64)
        v = torch.zeros_like(u)
        bias = torch.as_tensor(lq.lif.effective_bias(), dtype=torch.int64)
        out = torch.zeros(T, B, self.spec.n_out, dtype=torch.bool)
        for t in range(T):
            out[t], u, v = loihi.lif_step(u, v, a_all[t], lq.lif, bias)
        return out


class SpikingMLP(nn.Module):
    """Feed-forward CUBA-LIF MLP; the output layer's spike counts are the class scores."""

    def __init__(self, specs: list[LayerSpec], graded_input: bool, input_levels: int, surrogate_slope: float = 10.0,
                 layer_cls: type[LIFDense] = LIFDense, layer_kwargs: dict | None = None):
        super().__init__()
        units = [1.0 / input_levels if graded_input else 1.0] + [1.0] * (len(specs) - 1)
        self.layers = nn.ModuleList(layer_cls(s, u, surrogate_slope, **(layer_kwargs or {}))
                                    for s, u in zip(specs, units))

    def forward(self, x: torch.Tensor, qat: bool = False) -> list[torch.Tensor]:
        """x [T, B, ...] float -> spikes of every layer, each [T, B, N]."""
        h = x.flatten(2)
        outs = []
        for layer in self.layers:
            h = layer(h, qat=qat)
            outs.append(h)
        return outs

    def quant(self) -> list[quant.LayerQuant]:
        return [layer.quant() for layer in self.layers]

    @torch.no_grad()
    def forward_int(self, x_int: torch.Tensor) -> list[torch.Tensor]:
        """x_int [T, B, ...] integers -> spikes of every layer, each [T, B, N] bool."""
        h = x_int.flatten(2).to(torch.int64)
        outs = []
        for layer in self.layers:
            h = layer.forward_int(h)
            outs.append(h)
            h = h.to(torch.int64)
        return outs
