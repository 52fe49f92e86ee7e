"""Fused multi-step CUBA-LIF: the whole time loop is one autograd op with a hand-written BPTT backward.

Forward, per element, for t = 0..T-1 from u[-1] = v[-1] = 0 (float; the order and rounding of
:func:`spikeport.core.neuron.cuba_lif_step`, so spikes are bit-identical to the step loop):

    u[t] = beta_syn * u[t-1] + cur[t]            # synaptic current; never reset
    h[t] = beta_mem * v[t-1] + u[t] + bias       # membrane voltage before firing
    g[t] = max(h[t], 0)  if v_floor else h[t]    # KLIF floor
    s[t] = H(z[t]),   z[t] = (g[t] - theta) / theta   # strict: fires when g > theta
    v[t] = g[t] * (1 - s[t])                     # reset to zero

LIF is ``beta_syn = 0``; KLIF is ``v_floor=True`` with a learnable surrogate slope ``k``; the SRM
kernel in iterative form (synaptic then membrane exponential) is the same recurrence.

Surrogate (``train.surrogate.FastSigmoidSpike``): ds/dz = p(z) = 1 / (1 + k|z|)^2. For a learnable
``k`` the spike is read as H(z) + sigma(z) - stopgrad(sigma(z)) with sigma(z) = z / (1 + k|z|),
whose z-derivative is p, so ds/dk = -z|z| p(z).

Backward (BPTT). With a[t] = dL/dh[t], gs[t] = dL/ds[t] from outside, m[t] = 1[h[t] > 0] under
``v_floor`` (else 1), and dL/dv[t] = beta_mem * a[t+1] coming back from the next step:

    ds[t] = gs[t] - beta_mem a[t+1] g[t]                       # v = g (1 - s): dv/ds = -g
    a[t]  = m[t] (beta_mem a[t+1] (1 - s[t]) + ds[t] p[t] / theta)
          = A[t] a[t+1] + C[t],   A = beta_mem m ((1 - s) - g p / theta),  C = m gs p / theta
    dL/dcur[t] = a[t] + beta_syn dL/dcur[t+1]
    dL/dbias = sum_t a[t]   (summed to bias's shape);   dL/dk = sum_t ds[t] (-z|z| p)

Everything except the two scans is a function of ``g`` alone, so the backward computes A and C
for all T in a few wide ops and the sequential part is one ``addcmul_`` (plus one ``add_`` when
``beta_syn != 0``) per step. Only ``g`` [T, B, ...] is saved (one tensor the size of the output).
Ops are plain torch ops, so the same code runs on CPU and CUDA; ``compile=True`` additionally
runs both loops through ``torch.compile`` (one generated kernel per loop) and falls back to the
eager loops, with a warning, where compilation is unavailable.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable

import torch

from spikeport.core.neuron import cuba_lif_step
from spikeport.train.surrogate import FastSigmoidSpike

Number = float | int


# --- the two sequential loops (plain tensors, no autograd) ----------------------------------------
def _forward_loop(cur: torch.Tensor, bias: torch.Tensor | None, beta_syn: float, beta_mem: float,
                  theta: float, v_floor: bool) -> torch.Tensor:
    """cur [T, B, ...] -> g [T, B, ...] (voltage after the floor, before threshold and reset)."""
    g = torch.empty_like(cur, memory_format=torch.contiguous_format)
    v = torch.zeros_like(g[0])
    keep = torch.empty(g.shape[1:], dtype=torch.bool, device=g.device)
    u = torch.zeros_like(v) if beta_syn != 0 else None
    for t in range(cur.shape[0]):
        if u is None:
            ut = cur[t]  # beta_syn * u + x == x exactly when beta_syn == 0
        else:
            ut = u.mul_(beta_syn).add_(cur[t])
        gt = g[t]
        torch.mul(v, beta_mem, out=gt)
        gt.add_(ut)
        if bias is not None:
            gt.add_(bias)
        if v_floor:
            gt.clamp_min_(0.0)
        torch.le(gt, theta, out=keep)
        torch.mul(gt, keep, out=v)  # g * (1 - s)
    return g


def _adjoint_scan(c: torch.Tensor, a_coef: torch.Tensor) -> torch.Tensor:
    """In place on c [T, B, ...]: a[t] = A[t] a[t+1] + C[t] from the last step back; returns a."""
    for t in range(c.shape[0] - 2, -1, -1):
        c[t].addcmul_(a_coef[t], c[t + 1])
    return c


def _synaptic_scan(a: torch.Tensor, beta_syn: float) -> torch.Tensor:
    """In place on a [T, B, ...]: dL/dcur[t] = a[t] + beta_syn dL/dcur[t+1]; returns dL/dcur."""
    for t in range(a.shape[0] - 2, -1, -1):
        a[t].add_(a[t + 1], alpha=beta_syn)
    return a


_LOOPS = {"forward": _forward_loop, "adjoint": _adjoint_scan, "synaptic": _synaptic_scan}


class _CompiledLoops:
    """torch.compile'd twins of the two loops, built on first use; eager again after a failure."""

    def __init__(self):
        self.broken = False
        self.loops = {name: torch.compile(fn, dynamic=False) for name, fn in _LOOPS.items()}

    def call(self, name: str, *args):
        if not self.broken:
            try:
                return self.loops[name](*args)
            except Exception as err:  # noqa: BLE001  (no compiler, unsupported device, ...)
                self.broken = True
                warnings.warn(f"cuba_lif_multistep: torch.compile failed ({type(err).__name__}: {err}); "
                              "using the eager loops", RuntimeWarning, stacklevel=3)
        return _LOOPS[name](*args)


@functools.lru_cache(maxsize=1)
def _compiled() -> _CompiledLoops:
    return _CompiledLoops()


def _loop(name: str, compile: bool, *args):
    if compile:
        return _compiled().call(name, *args)
    return _LOOPS[name](*args)


# --- the autograd op -------------------------------------------------------------------------------
class CubaLIFMultistep(torch.autograd.Function):
    """Whole-sequence CUBA-LIF with BPTT backward; see the module docstring for the equations."""

    @staticmethod
    def forward(ctx, cur, bias, slope, beta_syn, beta_mem, theta, v_floor, compile):
        b = bias if isinstance(bias, torch.Tensor) else (None if bias == 0 else torch.tensor(bias, dtype=cur.dtype, device=cur.device))
        g = _loop("forward", compile, cur.detach(), None if b is None else b.detach(),
                  beta_syn, beta_mem, theta, v_floor)
        ctx.save_for_backward(g, slope if isinstance(slope, torch.Tensor) else None)
        ctx.params = (beta_syn, beta_mem, theta, v_floor, compile, slope)
        ctx.bias_shape = bias.shape if isinstance(bias, torch.Tensor) else None
        return (g > theta).to(cur.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gs):
        g, slope_t = ctx.saved_tensors
        beta_syn, beta_mem, theta, v_floor, compile, slope = ctx.params
        need_cur, need_bias, need_slope = ctx.needs_input_grad[:3]
        z = (g - theta).div_(theta)
        p = z.abs().mul_(slope_t if slope_t is not None else slope).add_(1.0).pow_(-2)  # ds/dz
        pt = p / theta
        a = gs.contiguous() * pt  # C = gs p / theta, becomes a
        a_coef = (g <= theta).to(g.dtype).sub_(pt.mul_(g)).mul_(beta_mem)  # A (pt consumed)
        del pt
        if v_floor:
            m = g > 0
            a.mul_(m)
            a_coef.mul_(m)
            del m
        a = _loop("adjoint", compile, a, a_coef)
        del a_coef
        d_bias = a.sum(0).sum_to_size(ctx.bias_shape) if need_bias else None
        d_slope = None
        if need_slope:  # ds[t] = gs[t] - beta_mem a[t+1] g[t];  dL/dk = sum ds (-z|z| p)
            ds = gs.clone()
            ds[:-1].sub_(a[1:] * g[:-1], alpha=beta_mem)
            d_slope = ds.mul_(z.abs().mul_(z)).mul_(p).neg_().sum_to_size(slope_t.shape)
        del z, p
        dcur = None
        if need_cur:
            dcur = a if beta_syn == 0 else _loop("synaptic", compile, a, beta_syn)
        return dcur, d_bias, d_slope, None, None, None, None, None


def cuba_lif_multistep(cur: torch.Tensor, beta_syn: float, beta_mem: float, theta: float,
                       bias: torch.Tensor | Number = 0.0, slope: torch.Tensor | Number = 10.0,
                       v_floor: bool = False, compile: bool = False) -> torch.Tensor:
    """Spikes [T, B, ...] (0/1, cur's dtype) of a CUBA-LIF population driven by ``cur`` [T, B, ...].

    ``cur``: weighted input current of every step (float); ``beta_syn``, ``beta_mem``: per-step decay
    factors (LIF: ``beta_syn = 0``); ``theta`` > 0: threshold; ``bias``: float or tensor broadcastable
    to ``cur[0]`` (gets a gradient if it requires one); ``slope``: surrogate slope k, float or tensor
    broadcastable to ``cur[0]`` (KLIF: learnable, gets a gradient); ``v_floor``: clamp v at 0 before
    threshold (KLIF). States start at zero. ``compile``: run the loops through torch.compile.
    """
    if not theta > 0:
        raise ValueError(f"cuba_lif_multistep: theta must be > 0, got {theta!r}")
    if cur.dim() < 2:
        raise ValueError(f"cuba_lif_multistep: cur must be [T, B, ...], got shape {tuple(cur.shape)}")
    return CubaLIFMultistep.apply(cur, bias, slope, float(beta_syn), float(beta_mem), float(theta),
                                  bool(v_floor), bool(compile))


# --- the reference: the plain step loop, autograd through every step --------------------------------
def _learnable_fast_sigmoid(slope: torch.Tensor) -> Callable:
    """H(z) forward; backward dz = 1/(1+k|z|)^2 and dk = -z|z|/(1+k|z|)^2 (autograd of z/(1+k|z|))."""
    def spike(z):
        sigma = z / (1.0 + slope * z.abs())
        return (z > 0).to(z.dtype) + (sigma - sigma.detach())
    return spike


def reference_multistep(cur: torch.Tensor, beta_syn: float, beta_mem: float, theta: float,
                        bias: torch.Tensor | Number = 0.0, slope: torch.Tensor | Number = 10.0,
                        v_floor: bool = False) -> torch.Tensor:
    """The step loop of ``LIFDense.forward``: ``core.neuron.cuba_lif_step`` per step, autograd through
    all of it. Same arguments and result as :func:`cuba_lif_multistep`; for tests and benchmarks."""
    if isinstance(slope, torch.Tensor) and slope.requires_grad:
        fire = _learnable_fast_sigmoid(slope)
    else:
        k = torch.as_tensor(slope, dtype=cur.dtype, device=cur.device)
        fire = lambda z: FastSigmoidSpike.apply(z, k)  # noqa: E731
    u = cur.new_zeros(cur.shape[1:])
    v = cur.new_zeros(cur.shape[1:])
    out = []
    for t in range(cur.shape[0]):
        s, u, v = cuba_lif_step(cur[t], u, v, beta_syn=beta_syn, beta_mem=beta_mem, theta=theta, bias=bias,
                                spike_fn=lambda d: fire(d / theta), v_floor=v_floor)
        out.append(s)
    return torch.stack(out)
