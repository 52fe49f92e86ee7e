"""Fused multi-step CUBA-LIF: the whole time loop is one autograd op with a hand-written BPTT backward.

Forward, per element, for t = 0..T-1 from u[-1] = v[-1] = 0 (float; the order and rounding of
:func:`spikeport.core.neuron.cuba_lif_step`, so spikes are bit-identical to the step loop):

    u[t] = beta_syn * u[t-1] + cur[t]            # synaptic current; never reset
    h[t] = beta_mem * v[t-1] + u[t] + bias       # membrane voltage before firing
    g[t] = max(h[t], 0)  if v_floor else h[t]    # KLIF floor
    s[t] = H(z[t]),   z[t] = (g[t] - theta) / theta   # strict: fires when g > theta
    v[t] = g[t] * (1 - s[t])                     # reset to zero; the gradient flows through s here

LIF is ``beta_syn = 0``; the SRM kernel in iterative form (synaptic, then membrane exponential) is
the same recurrence; KLIF is ``v_floor=True`` with a learnable surrogate parameter.

Surrogate: the spike is read as H(z) + sigma(z) - stopgrad(sigma(z)) with the fast sigmoid
sigma(z) = k z / (1 + a |k z|) (slope ``a``, scale ``k``; ``train.surrogate.FastSigmoidSpike`` is
k = 1, ``train.methods.klif.KSpike`` is a learnable k). With w = k z and q = 1 / (1 + a|w|)^2:

    ds/dz = k q,    ds/dk = z q,    ds/da = -w |w| q

The floor's derivative is 1[h > 0] (as ``v * (v > 0)``), or 1 with ``floor_straight_through``
(as ``methods.klif.relu_straight_through``).

Backward (BPTT). With a[t] = dL/dh[t], gs[t] = dL/ds[t] from outside, m[t] the floor's derivative
(1 without floor), p = ds/dz and dL/dv[t] = beta_mem a[t+1] coming back from the next step:

    ds[t] = gs[t] - beta_mem a[t+1] g[t]                       # v = g (1 - s): dv/ds = -g
    a[t]  = m[t] (beta_mem a[t+1] (1 - s[t]) + ds[t] p[t] / theta)
          = A[t] a[t+1] + C[t],   A = beta_mem m ((1 - s) - g p / theta),  C = m gs p / theta
    dL/dcur[t] = a[t] + beta_syn dL/dcur[t+1]
    dL/dbias = sum_t a[t];   dL/dk = sum_t ds[t] z q;   dL/da = -sum_t ds[t] w|w| q   (to each shape)

A and C depend on ``g`` alone, so the eager backward builds them for all T in a few wide ops and
the sequential part is one ``addcmul_`` (plus one ``add_`` when ``beta_syn != 0``) per step.
Saved for backward: ``g`` [T, B, ...] and the spikes (the op's output, which a following layer keeps
for its own backward anyway); nothing per step. Everything is plain torch ops, so the same code runs
on CPU and CUDA; ``compile=True`` runs pure twins of the loops through ``torch.compile`` (one generated kernel per
loop and neuron kind, shared by every layer width and batch size) and falls back to the eager loops, with a
warning, where compilation fails; ``train.compiling`` decides when training uses it.
Inductor's CPU code is built with ``-ffp-contract=off`` and without unsafe-math flags (torch's
defaults, ``torch._inductor.config.cpp``), so ``beta_mem * v + u`` rounds twice as in the eager loop and
the compiled spikes are bit-identical on CPU (tests/test_compile_default.py). Triton (CUDA) may contract
it into one FMA; spikes then differ where v lands within one rounding of theta. Either way that is
training only: deployment runs the integer forward (``forward_int``), which no compiler touches.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable

import torch

from spikeport.core.neuron import cuba_lif_step
from spikeport.train.surrogate import FastSigmoidSpike

Param = torch.Tensor | float  # a surrogate parameter or bias: float, or tensor broadcastable to cur[0]


# --- eager path: wide ops over all T, in-place sequential scans --------------------------------------
def _forward_loop(cur: torch.Tensor, bias: torch.Tensor | None, beta_syn: float, beta_mem: float,
                  theta: float, v_floor: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """cur [T, B, ...] -> (g, s) [T, B, ...]: voltage after the floor (before threshold and reset), spikes.
    Four to six same-dtype ops per step (a bool mask in a float product would cost a cast per step)."""
    g = torch.empty_like(cur, memory_format=torch.contiguous_format)
    s = torch.empty_like(g)
    v = torch.zeros_like(g[0])
    u = torch.zeros_like(v) if beta_syn != 0 else None
    for t in range(cur.shape[0]):
        ut = cur[t] if u is None else u.mul_(beta_syn).add_(cur[t])  # beta_syn*u + x is x when beta_syn == 0
        gt = g[t]
        torch.mul(v, beta_mem, out=gt)
        gt.add_(ut)
        if bias is not None:
            gt.add_(bias)
        if v_floor:
            gt.clamp_min_(0.0)
        torch.gt(gt, theta, out=s[t])
        torch.addcmul(gt, gt, s[t], value=-1.0, out=v)  # g - g s: exactly g (s = 0) or 0 (s = 1)
    return g, s


def _adjoint_eager(g: torch.Tensor, s: torch.Tensor, gs: torch.Tensor, slope: Param, scale: Param,
                   beta_mem: float, theta: float, floor_mask: bool) -> torch.Tensor:
    """a = dL/dh [T, B, ...]: A[t], C[t] for all t in a few wide ops, then a[t] = A[t] a[t+1] + C[t]."""
    k_theta = scale / theta
    coef = (g - theta).mul_(k_theta).abs_().mul_(slope).add_(1.0).pow_(-2).mul_(k_theta)  # p / theta
    a = gs * coef  # C
    coef.mul_(g).add_(s).neg_().add_(1.0).mul_(beta_mem)  # A = beta_mem (1 - s - g p / theta)
    if floor_mask:
        off = g <= 0  # g = max(h, 0): h <= 0 exactly where g <= 0
        a.masked_fill_(off, 0.0)
        coef.masked_fill_(off, 0.0)
    for t in range(a.shape[0] - 2, -1, -1):
        a[t].addcmul_(coef[t], a[t + 1])
    return a


def _synaptic_eager(a: torch.Tensor, beta_syn: float) -> torch.Tensor:
    """In place on a: dL/dcur[t] = a[t] + beta_syn dL/dcur[t+1]."""
    for t in range(a.shape[0] - 2, -1, -1):
        a[t].add_(a[t + 1], alpha=beta_syn)
    return a


# --- compile path: the same recurrences as pure functions (each compiles to one fused kernel) ---------
# Constants come as tensors (k = [beta_syn, beta_mem, theta] in cur's dtype, slope and scale as tensors):
# torch.compile specializes on Python floats, and QAT's threshold changes with the weights at every step.
# Every dimension but time is marked dynamic and the inputs are made contiguous (a stride-0 view over time,
# a direct-encoded frame or the output layer's gradient, would be a graph of its own), so one forward and one
# backward graph serve every layer and every batch size of a run.
def _forward_pure(cur, bias, k, has_syn: bool, v_floor: bool):
    beta_syn, beta_mem, theta = k[0], k[1], k[2]
    u = torch.zeros_like(cur[0])
    v = torch.zeros_like(cur[0])
    g_out, s_out = [], []
    for t in range(cur.shape[0]):
        u = u * beta_syn + cur[t] if has_syn else cur[t]
        g = v * beta_mem + u
        g = g if bias is None else g + bias
        g = g.clamp_min(0.0) if v_floor else g
        s = (g > theta).to(g.dtype)
        v = g - g * s
        g_out.append(g)
        s_out.append(s)
    return torch.stack(g_out), torch.stack(s_out)


def _backward_pure(g, gs, slope, scale, k, has_syn: bool, floor_mask: bool):
    beta_syn, beta_mem, theta = k[0], k[1], k[2]
    a_next = d_next = None
    a_out, d_out = [], []
    for t in range(g.shape[0] - 1, -1, -1):
        pt = scale / theta / (1.0 + slope * (scale * (g[t] - theta) / theta).abs()) ** 2
        a = gs[t] * pt
        if a_next is not None:
            a = a + a_next * beta_mem * ((g[t] <= theta).to(g.dtype) - g[t] * pt)
        a = a * (g[t] > 0).to(g.dtype) if floor_mask else a
        d = a + beta_syn * d_next if has_syn and d_next is not None else a
        a_out.append(a)
        d_out.append(d)
        a_next, d_next = a, d
    a_all = torch.stack(a_out[::-1])
    return a_all, (torch.stack(d_out[::-1]) if has_syn else a_all)


def _dynamic(*tensors) -> None:
    """Mark every dimension but the first (time) of each tensor dynamic (no recompile per batch or layer)."""
    for x in tensors:
        if isinstance(x, torch.Tensor):
            for d in range(1 if x.dim() > 1 else 0, x.dim()):
                torch._dynamo.maybe_mark_dynamic(x, d)


class _Compiled:
    """torch.compile'd pure twins, built on first use; after a failure the eager path, with a warning.
    ``backend``: torch.compile's backend ("inductor"; tests check the guards with "eager")."""

    def __init__(self, backend: str = "inductor"):
        self.broken = False
        self.forward = torch.compile(_forward_pure, backend=backend, dynamic=None)
        self.backward = torch.compile(_backward_pure, backend=backend, dynamic=None)

    def run(self, name: str, *args):
        if self.broken:
            return None
        _dynamic(*args)
        try:
            return getattr(self, name)(*args)
        except Exception as err:  # noqa: BLE001  (no C++ compiler or Triton, unsupported device, ...)
            self.broken = True
            first = (str(err).strip().splitlines() or [""])[0][:200]  # one line: inductor's errors run long
            warnings.warn(f"cuba_lif_multistep: torch.compile failed ({type(err).__name__}: {first}); "
                          "using the eager loops", RuntimeWarning, stacklevel=4)
            return None


@functools.lru_cache(maxsize=1)
def _compiled() -> _Compiled:
    return _Compiled()


def _as_tensor(x: Param, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)


def _constants(beta_syn: float, beta_mem: float, theta: float, like: torch.Tensor) -> torch.Tensor:
    """[beta_syn, beta_mem, theta] as one tensor in ``like``'s dtype and device (for the compiled twins)."""
    return torch.tensor([beta_syn, beta_mem, theta], dtype=like.dtype, device=like.device)


# --- the autograd op -------------------------------------------------------------------------------
def _surrogate_grads(g, gs, a, slope, scale, beta_mem, theta, need_slope, need_scale):
    """dL/da and dL/dk (full [T, B, ...] terms, to be summed): ds[t] (-w|w| q) and ds[t] z q."""
    ds = gs.clone()
    ds[:-1].sub_(a[1:] * g[:-1], alpha=beta_mem)  # ds[t] = gs[t] - beta_mem a[t+1] g[t]
    z = (g - theta).div_(theta)
    w = z * scale
    ds.mul_(w.abs().mul_(slope).add_(1.0).pow_(-2))  # ds q
    d_scale = ds * z if need_scale else None
    d_slope = ds.mul_(w).mul_(w.abs_()).neg_() if need_slope else None
    return d_slope, d_scale


class CubaLIFMultistep(torch.autograd.Function):
    """Whole-sequence CUBA-LIF with BPTT backward; see the module docstring for the equations."""

    @staticmethod
    def forward(ctx, cur, bias, slope, scale, beta_syn, beta_mem, theta, v_floor, floor_st, compile):
        b = bias.detach() if isinstance(bias, torch.Tensor) else (
            None if bias == 0 else torch.tensor(float(bias), dtype=cur.dtype, device=cur.device))
        args = (cur.detach(), b, beta_syn, beta_mem, theta, v_floor)
        got = None
        if compile:
            got = _compiled().run("forward", args[0].contiguous(), b, _constants(beta_syn, beta_mem, theta, cur),
                                  beta_syn != 0, v_floor)
        g, spikes = _forward_loop(*args) if got is None else got
        tensors = [x if isinstance(x, torch.Tensor) else None for x in (bias, slope, scale)]
        ctx.save_for_backward(g, spikes, *tensors)
        floats = [None if isinstance(x, torch.Tensor) else x for x in (slope, scale)]
        ctx.params = (beta_syn, beta_mem, theta, v_floor and not floor_st, compile, *floats)
        return spikes

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gs):
        g, spikes, bias_t, slope_t, scale_t = ctx.saved_tensors
        beta_syn, beta_mem, theta, floor_mask, compile, slope, scale = ctx.params
        slope = slope if slope_t is None else slope_t
        scale = scale if scale_t is None else scale_t
        need_cur, need_bias, need_slope, need_scale = ctx.needs_input_grad[:4]
        got = None
        if compile:
            got = _compiled().run("backward", g, gs.contiguous(), _as_tensor(slope, g), _as_tensor(scale, g),
                                  _constants(beta_syn, beta_mem, theta, g), beta_syn != 0, floor_mask)
        a, dcur = got if got is not None else (
            _adjoint_eager(g, spikes, gs, slope, scale, beta_mem, theta, floor_mask), None)
        d_bias = a.sum(0).sum_to_size(bias_t.shape) if need_bias else None
        d_slope = d_scale = None
        if need_slope or need_scale:
            d_slope, d_scale = _surrogate_grads(g, gs, a, slope, scale, beta_mem, theta, need_slope, need_scale)
            d_slope = d_slope.sum_to_size(slope_t.shape) if need_slope else None
            d_scale = d_scale.sum_to_size(scale_t.shape) if need_scale else None
        if need_cur and dcur is None:
            dcur = a if beta_syn == 0 else _synaptic_eager(a, beta_syn)
        return (dcur if need_cur else None), d_bias, d_slope, d_scale, None, None, None, None, None, None


def cuba_lif_multistep(cur: torch.Tensor, beta_syn: float, beta_mem: float, theta: float,
                       bias: Param = 0.0, slope: Param = 10.0, v_floor: bool = False, *,
                       scale: Param = 1.0, floor_straight_through: bool = False,
                       compile: bool = False) -> torch.Tensor:
    """Spikes [T, B, ...] (0/1, cur's dtype) of a CUBA-LIF population driven by ``cur`` [T, B, ...].

    ``cur``: weighted input current of every step (float); ``beta_syn``, ``beta_mem``: per-step decay
    factors (LIF: ``beta_syn = 0``); ``theta`` > 0: threshold; ``bias``: voltage bias per step.
    ``slope`` a and ``scale`` k: the surrogate's parameters (see the module docstring). ``bias``,
    ``slope`` and ``scale`` are floats or tensors broadcastable to ``cur[0]``; a tensor that requires
    grad gets its gradient. ``v_floor``: v = max(v, 0) before threshold (KLIF), with derivative
    1[v > 0], or 1 if ``floor_straight_through``. States start at zero. ``compile``: run the loops
    through torch.compile (falls back to eager, with a RuntimeWarning, where that fails).
    """
    if not theta > 0:
        raise ValueError(f"cuba_lif_multistep: theta must be > 0, got {theta!r}")
    if cur.dim() < 2:
        raise ValueError(f"cuba_lif_multistep: cur must be [T, B, ...], got shape {tuple(cur.shape)}")
    return CubaLIFMultistep.apply(cur, bias, slope, scale, float(beta_syn), float(beta_mem), float(theta),
                                  bool(v_floor), bool(floor_straight_through), bool(compile))


# --- the reference: the plain step loop, autograd through every step --------------------------------
def _autograd_fast_sigmoid(slope: Param, scale: Param) -> Callable:
    """H(z) forward; backward by autograd of sigma(z) = k z / (1 + a |k z|) (straight through)."""
    def spike(z):
        w = z * scale
        sigma = w / (1.0 + slope * w.abs())
        return (z > 0).to(z.dtype) + (sigma - sigma.detach())
    return spike


def reference_multistep(cur: torch.Tensor, beta_syn: float, beta_mem: float, theta: float,
                        bias: Param = 0.0, slope: Param = 10.0, v_floor: bool = False, *,
                        scale: Param = 1.0, floor_straight_through: bool = False) -> torch.Tensor:
    """The step loop of ``LIFDense.forward``: ``core.neuron.cuba_lif_step`` per step, autograd through
    all of it. Same arguments and result as :func:`cuba_lif_multistep`; for tests and benchmarks.
    With a float slope and scale 1 the spike function is the project's ``FastSigmoidSpike``."""
    if isinstance(slope, torch.Tensor) or isinstance(scale, torch.Tensor) or scale != 1.0:
        fire = _autograd_fast_sigmoid(slope, scale)
    else:
        a = torch.tensor(float(slope), dtype=cur.dtype, device=cur.device)
        fire = lambda z: FastSigmoidSpike.apply(z, a)  # noqa: E731
    floor = (lambda v: v + (v.clamp(min=0.0) - v).detach()) if v_floor and floor_straight_through else v_floor
    u = cur.new_zeros(cur.shape[1:])
    v = cur.new_zeros(cur.shape[1:])
    out = []
    for t in range(cur.shape[0]):
        s, u, v = cuba_lif_step(cur[t], u, v, beta_syn=beta_syn, beta_mem=beta_mem, theta=theta, bias=bias,
                                spike_fn=lambda d: fire(d / theta), v_floor=floor)
        out.append(s)
    return torch.stack(out)
