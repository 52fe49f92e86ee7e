"""Float neuron steps of every producer, written as each peer computes them (same operations in the
same order, float32), so the float reference reproduces the peer's own simulator spike for spike.

A neuron op is ``NeuronOp(init, step)``: ``init(B) -> state`` (tuple of tensors ``[B, *shape]``) and
``step(x_ff, x_rec, state) -> (out, state)``; ``x_ff`` is the summed same-step input, ``x_rec`` the
summed recurrent input (previous step's values) or None. ``out`` is spikes (0/1, or spike counts for
multi-spike producers) or, for LI / CubaLI, the membrane voltage. ``dt`` is in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from spikeport.importer.conventions import Producer

MAX_SPIKES_ROCKPOOL = 2.0**16


@dataclass
class NeuronOp:
    init: Callable
    step: Callable
    spiking: bool = True


def param(node, fld: str, shape: tuple[int, ...], default: float | None = None) -> np.ndarray:
    """A node parameter as a float64 array broadcast to ``shape`` (``default`` when absent / None)."""
    val = getattr(node, fld, None)
    if val is None:
        if default is None:
            raise ValueError(f"missing {fld}")
        val = default
    arr = np.asarray(val, dtype=np.float64)
    return np.broadcast_to(arr.reshape(shape) if arr.size == int(np.prod(shape)) else arr.reshape(()), shape).copy()


def f32(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)


def euler(dt: float, tau: np.ndarray) -> np.ndarray:
    """dt / tau, zero where tau is infinite (no leak)."""
    return np.where(np.isinf(tau), 0.0, dt / np.where(np.isinf(tau), 1.0, tau))


def _fire(v: torch.Tensor, th: torch.Tensor, prod: Producer) -> torch.Tensor:
    """Spikes of this step: 0/1, or counts for multi-spike producers."""
    if prod.multi_spike:
        if prod.name == "rockpool":
            n = (v >= th) * torch.floor(v / th)
            return torch.clamp(n, max=MAX_SPIKES_ROCKPOOL)
        return (v > 0) * torch.div(v, th, rounding_mode="trunc")  # Sinabs MultiSpike
    return ((v >= th) if prod.threshold == ">=" else (v > th)).to(v.dtype)


def _reset(v, z, th, v_reset, prod: Producer):
    if prod.reset == "subtract":
        return v - z * th
    return v * (z == 0).to(v.dtype) + z.clamp(max=1) * v_reset


def _zeros(shape):
    return lambda B: (torch.zeros((B,) + shape),)


# --- spikeport (and the generic NIR reading) -------------------------------------------------------
def generic(kind: str, node, shape, dt: float, prod: Producer) -> NeuronOp:
    """NIR's ODEs as the producer discretizes them (``prod.decay``), current first, spike with
    ``prod.threshold``, reset with ``prod.reset``. spikeport's own convention is the ``euler`` case."""
    def leak(tau):
        if prod.decay == "euler":
            return 1.0 - euler(dt, tau), euler(dt, tau)
        step = 1.0 if prod.decay == "steps" else dt
        return np.exp(-step / tau), np.ones_like(tau)

    v_leak = param(node, "v_leak", shape, 0.0) if kind in ("LI", "LIF", "CubaLIF", "CubaLI") else np.zeros(shape)
    r = param(node, "r", shape, 1.0)
    th = f32(param(node, "v_threshold", shape, 0.0)) if kind in ("IF", "LIF", "CubaLIF") else None
    v_reset = f32(param(node, "v_reset", shape, 0.0)) if th is not None else None
    if kind in ("IF", "Integrator", "I"):
        a_mem, g_mem, b = np.ones(shape), (r if prod.uses_r else np.ones(shape)), np.zeros(shape)
        a_syn = None
    else:
        tau_mem = param(node, "tau" if kind in ("LI", "LIF") else "tau_mem", shape)
        a_mem, k_mem = leak(tau_mem)
        g_mem = k_mem * r if prod.uses_r else np.ones(shape)
        b = k_mem * v_leak if prod.decay == "euler" else v_leak * 0.0
        a_syn = g_syn = None
        if kind in ("CubaLIF", "CubaLI"):
            a_syn, k_syn = leak(param(node, "tau_syn", shape))
            g_syn = k_syn * param(node, "w_in", shape, 1.0) if prod.uses_r else np.ones(shape)
    A_mem, G_mem, Bv = f32(a_mem), f32(g_mem), f32(b)
    clamp = f32(-param(node, "v_threshold", shape)) if (kind == "IF" and prod.if_clamp) else None
    spiking = th is not None

    if a_syn is not None:
        A_syn, G_syn = f32(a_syn), f32(g_syn)

        def step(x, xr, st):
            i, v = st
            x = x if xr is None else x + xr
            i = A_syn * i + G_syn * x
            v = A_mem * v + G_mem * i + Bv
            if not spiking:
                return v, (i, v)
            z = _fire(v, th, prod)
            return z, (i, _reset(v, z, th, v_reset, prod))
        return NeuronOp(lambda B: (torch.zeros((B,) + shape), torch.zeros((B,) + shape)), step, spiking)

    def step1(x, xr, st):
        (v,) = st
        x = x if xr is None else x + xr
        v = A_mem * v + G_mem * x + Bv
        if not spiking:
            return v, (v,)
        z = _fire(v, th, prod)
        v = _reset(v, z, th, v_reset, prod)
        if clamp is not None:
            v = torch.nn.functional.relu(v - clamp) + clamp
        return z, (v,)
    return NeuronOp(_zeros(shape), step1, spiking)


# --- snnTorch (Leaky, Synaptic, RLeaky, RSynaptic as in snntorch 1.0.0) ------------------------------
def snntorch(kind: str, node, shape, dt: float, prod: Producer, recurrent: bool) -> NeuronOp:
    """snnTorch's modules as ``import_from_nir`` builds them: beta = 1 - dt/tau, the input gain folded
    into the threshold (``hack_w_scale``). ``prod.timing`` says when a neuron resets: same step
    (reset_delay=False) or next step (reset_delay=True, and RSynaptic as released in 0.8-1.0: the
    same-step reset is computed on a local copy and dropped). The next-step reset is applied at the start
    of the next step from the previous membrane: zero -> Leaky zeroes the old membrane, Synaptic and the
    recurrent modules zero the new one; subtract -> v_th is subtracted."""
    if kind not in ("LIF", "CubaLIF"):
        return generic(kind, node, shape, dt, prod)
    tau_mem = param(node, "tau" if kind == "LIF" else "tau_mem", shape)
    gain = param(node, "r", shape, 1.0) * dt / tau_mem  # snnTorch: node.r * dt / node.tau
    beta = f32(1.0 - euler(dt, tau_mem)).clamp(0, 1)
    alpha = None
    if kind == "CubaLIF":
        tau_syn = param(node, "tau_syn", shape)
        w_scale = param(node, "w_in", shape, 1.0) * (dt / tau_syn)
        gain = w_scale if np.allclose(gain, 1.0) else w_scale * gain  # snnTorch asserts r = tau_mem/dt
        alpha = f32(1.0 - euler(dt, tau_syn)).clamp(0, 1)
    vth = param(node, "v_threshold", shape)
    th = f32(vth if np.allclose(gain, 1.0) else vth / gain)  # hack_w_scale: the gain moves into the threshold
    bias = f32(param(node, "v_leak", shape, 0.0) * euler(dt, tau_mem) / gain)
    sub = prod.reset == "subtract"
    delayed = prod.timing(kind, recurrent) == "next_step"  # reset_delay=True; RSynaptic 0.8-1.0 always

    def step(x, xr, st):
        syn, mem = st
        reset = (mem - th > 0).to(mem.dtype)
        if alpha is not None:
            syn = alpha * syn + x
            if xr is not None:
                syn = syn + xr
            new = beta * mem + syn + bias
        else:
            if not sub and not recurrent:  # Leaky._base_zero zeroes mem first; RLeaky zeroes the result
                mem = (1 - reset) * mem
            new = beta * mem + x + bias
            if xr is not None:
                new = new + xr
        if sub:
            mem = new - reset * th
        else:
            mem = new - new * reset if alpha is not None else (new - reset * new if recurrent else new)
        spk = (mem - th > 0).to(mem.dtype)
        if not delayed:
            do_reset = spk - reset
            mem = mem - do_reset * th if sub else mem - do_reset * mem
        return spk, (syn, mem)
    return NeuronOp(lambda B: (torch.zeros((B,) + shape), torch.zeros((B,) + shape)), step)


# --- Norse (LIFBoxCell, LIBoxCell synapse, IAFCell as norse 1.1.0 from_nir builds them) ----------------
def norse(kind: str, node, shape, dt: float, prod: Producer) -> NeuronOp:
    if kind not in ("LIF", "CubaLIF", "IF"):
        return generic(kind, node, shape, dt, prod)
    th = f32(param(node, "v_threshold", shape))
    v_reset = f32(param(node, "v_reset", shape, 0.0))
    fire = (lambda v: (v - th > 0).to(v.dtype))

    def reset(z, v):
        return (1 - z) * v + z * (v - th) if prod.reset == "subtract" else (1 - z) * v + z * v_reset

    if kind == "IF":  # IAFCell: v += x, starts at v_reset
        def step_if(x, xr, st):
            v = st[0] + (x if xr is None else x + xr)
            z = fire(v)
            return z, (reset(z, v),)
        return NeuronOp(lambda B: (v_reset.expand((B,) + shape).clone(),), step_if)
    tau_mem = f32(param(node, "tau" if kind == "LIF" else "tau_mem", shape))
    inv_mem, v_leak = 1 / tau_mem, f32(param(node, "v_leak", shape, 0.0))
    if kind == "LIF":  # r ignored
        def step_lif(x, xr, st):
            x = x if xr is None else x + xr
            v = st[0]
            v = v + dt * inv_mem * (x + v_leak - v)
            z = fire(v)
            return z, (reset(z, v),)
        return NeuronOp(lambda B: (v_leak.expand((B,) + shape).clone(),), step_lif)
    w_in, r = f32(param(node, "w_in", shape, 1.0)), f32(param(node, "r", shape, 1.0))
    inv_syn = 1 / f32(param(node, "tau_syn", shape))

    def step_cuba(x, xr, st):
        i, v = st
        x = w_in * (x if xr is None else x + xr)
        i = i + dt * inv_syn * ((v_leak - i) + x)
        c = r * i
        v = v + dt * inv_mem * (c + v_leak - v)
        z = fire(v)
        return z, (i, reset(z, v))
    return NeuronOp(lambda B: (v_leak.expand((B,) + shape).clone(), v_leak.expand((B,) + shape).clone()), step_cuba)


# --- Sinabs (IAF, LIF, ExpLeak as sinabs 3.1.3 from_nir builds them) ---------------------------------------
def sinabs(kind: str, node, shape, dt: float, prod: Producer) -> NeuronOp:
    if kind not in ("IF", "LIF", "LI"):
        return generic(kind, node, shape, dt, prod)
    if kind == "IF":
        alpha = None
    else:
        alpha = torch.exp(-1.0 / f32(param(node, "tau", shape)))
    th = f32(param(node, "v_threshold", shape)) if kind != "LI" else None
    floor = -th if kind == "IF" else None

    def step(x, xr, st):
        x = x if xr is None else x + xr
        v = st[0]
        v = (v + x) if alpha is None else alpha * v + x
        if th is None:
            return v, (v,)
        n = (v > 0) * torch.div(v, th, rounding_mode="trunc")
        v = v - n * th
        if floor is not None:
            v = torch.nn.functional.relu(v - floor) + floor
        return n, (v,)
    return NeuronOp(_zeros(shape), step, th is not None)


# --- Rockpool (LIFTorch, LIFNeuronTorch as rockpool 3.1.0 evolves them) ----------------------------------
def rockpool(kind: str, node, shape, dt: float, prod: Producer) -> NeuronOp:
    """LIFTorch (CubaLIF): i += x; v *= exp(-dt/tau_mem); i *= exp(-dt/tau_syn); v += i + bias; spikes
    n = (v >= th) * floor(v / th) (at most 2**16); v -= n * th. LIFNeuronTorch (LIF): v *= alpha; v += x + bias.
    ``bias`` is the node's v_leak (added per step); r and w_in are not used."""
    if kind not in ("LIF", "CubaLIF"):
        return generic(kind, node, shape, dt, prod)
    alpha = torch.exp(-dt / f32(param(node, "tau" if kind == "LIF" else "tau_mem", shape)))
    beta = torch.exp(-dt / f32(param(node, "tau_syn", shape))) if kind == "CubaLIF" else None
    bias, th = f32(param(node, "v_leak", shape, 0.0)), f32(param(node, "v_threshold", shape))

    def step(x, xr, st):
        i, v = st
        if beta is not None:
            i = i + x
            if xr is not None:
                i = i + xr
            v = v * alpha
            i = i * beta
            v = v + i + bias
        else:
            v = v * alpha
            v = v + (x if xr is None else x + xr)
            v = v + bias
        n = _fire(v, th, prod)
        return n, (i, v - n * th)
    return NeuronOp(lambda B: (torch.zeros((B,) + shape), torch.zeros((B,) + shape)), step)


NEURON_KINDS = ("IF", "LI", "LIF", "CubaLIF", "CubaLI", "Integrator", "I")


def make(kind: str, node, shape, dt: float, prod: Producer, recurrent: bool) -> NeuronOp:
    """The neuron op for ``kind`` under ``prod``'s conventions."""
    if prod.name == "snntorch":
        return snntorch(kind, node, shape, dt, prod, recurrent)
    if prod.name == "norse":
        return norse(kind, node, shape, dt, prod)
    if prod.name == "sinabs":
        return sinabs(kind, node, shape, dt, prod)
    if prod.name == "rockpool":
        return rockpool(kind, node, shape, dt, prod)
    return generic(kind, node, shape, dt, prod)
