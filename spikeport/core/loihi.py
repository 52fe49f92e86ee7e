"""Loihi's integer neuron and synapse arithmetic, exactly as Lava's ``fixed_pt`` models compute it.

This module is the single source of these constants and equations. The training modules'
deploy-mode forward, the batched emulator and the Lava mapping all call it; nothing else in
spikeport repeats a shift, a bit width or a rounding rule.

One CUBA-LIF step per neuron (Lava ``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc``), integers::

    u = wrap24(tz(u * (4096 - (du + 1))) + (a_in << 6))        # synaptic current
    v = clip24(tz(v * (4096 - dv)) + u + (bias_mant << bias_exp))
    s = v > (vth << 6)                                          # strict ">"
    v[s] = 0                                                    # reset to zero; u keeps its value

with ``tz(p) = sign(p) * (|p| >> 12)`` (rounds toward zero), ``wrap24`` Lava's single conditional
wrap into (-2**23, 2**23] and ``clip24`` a clip to [-(2**23 - 1), 2**23 - 1]. Lava keeps u, v and
the synaptic input in int32 arrays, so sums wrap at 32 bits first; that is modelled too.

Connections: Dense/Sparse sum ``q @ s`` and shift by ``weight_exp`` (:func:`shift_exp`); Conv ignores
``weight_exp`` and wraps its output modulo 2**24 into [-2**23, 2**23) (:func:`wrap_conv_output`; Lava
calls this ``signed_clamp`` but it is a two's-complement wrap, not a saturation: measured).

Works on numpy integer arrays and on torch integer tensors alike (the operations used exist on
both); inputs are promoted to int64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# --- constants (named once) --------------------------------------------------------------------
DECAY_BITS = 12  # du, dv are 12-bit; decays are (4096 - d) / 4096
DECAY_UNITY = 1 << DECAY_BITS  # 4096
DU_OFFSET = 1  # Loihi's ds_offset: the current decays by (du + 1)
DV_OFFSET = 0  # Loihi's dm_offset
DECAY_MAX = DECAY_UNITY - 1  # 4095
ACT_SHIFT = 6  # synaptic input is left-shifted by 6 before it is added to u
VTH_SHIFT = 6  # threshold is left-shifted by 6
STATE_BITS = 24
STATE_MAX = 1 << (STATE_BITS - 1)  # 2**23
V_LIMIT = STATE_MAX - 1  # v is clipped to +-(2**23 - 1)
WEIGHT_BITS = 8  # synaptic weights are 8-bit
WEIGHT_MIN, WEIGHT_MAX = -(1 << (WEIGHT_BITS - 1)) + 1, (1 << (WEIGHT_BITS - 1)) - 1  # symmetric int8
VTH_BITS = 17  # threshold mantissa range in Lava's LIF (0 .. 131071)
VTH_MAX = (1 << VTH_BITS) - 1
# netx writes thresholds beyond 17 bits for a non-spiking (integrator) block: its default neuron has
# vThMant = 1 << 17, slayer's Affine block (1 << 18) - 1. Lava compares v with vth << 6 as it is, and
# v is clipped to V_LIMIT, so such a neuron never spikes. Accepted up to where vth << 6 fits int32.
VTH_LIMIT = (1 << (31 - 6)) - 1
# The threshold of a non-spiking integrator (a membrane readout): what lava-dl's slayer writes for an Affine
# block with dynamics ("set the maximum possible threshold"); vth << 6 = 2**24 - 64 > V_LIMIT, never reached.
INTEGRATOR_VTH = (1 << 18) - 1
DU_MIN = -1  # netx's non-leaky integrator (iDecay 0): Lava du = -1, the current never decays
DV_MAX = DECAY_UNITY  # vDecay 4096: the voltage forgets itself every step (v = u + bias)
BIAS_MANT_BITS = 13  # signed 13-bit bias mantissa (-4096 .. 4095)
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << (BIAS_MANT_BITS - 1)), (1 << (BIAS_MANT_BITS - 1)) - 1
BIAS_EXP_MAX = 7  # unsigned 3-bit exponent
CONV_OUT_BITS = 24  # Lava's Conv wraps its output to signed 24 bits (two's complement)
INT32_SPAN = 1 << 32

# What Lava's fixed_pt Dense keeps of a weight (mixed signs: [-256, 254] even; one sign: 8 unsigned bits)
NATIVE_MIN, NATIVE_MAX = -(1 << WEIGHT_BITS), (1 << WEIGHT_BITS) - 1

# Dense/Sparse weights: an int8 matrix q is given to Lava as 2*q with weight_exp = -1. With mixed
# signs Lava drops the lowest weight bit, so this is the encoding that keeps every int8 value exact.
DENSE_WEIGHT_FACTOR = 2
DENSE_WEIGHT_EXP = -1

# Wide (16-bit) weights: one weight W is two synapses from the same input into the same neuron, its high
# byte hi = W >> 8 (signed, int8 range) at weight exponent 8 and its low byte lo = W & 255 (unsigned) at
# weight exponent 0, so the two summed inputs add to exactly W @ s. Lava's Dense keeps an all-non-negative
# matrix to 8 unsigned bits, so lo needs no encoding; hi goes as 2*hi at exponent 7 (DENSE_WEIGHT_*),
# the largest exponent Loihi has. A wide connection therefore has weight_exp 0.
WIDE_HI_EXP = 8
WIDE_MIN = WEIGHT_MIN << WIDE_HI_EXP  # -32512
WIDE_MAX = (WEIGHT_MAX << WIDE_HI_EXP) + (1 << WIDE_HI_EXP) - 1  # 32767


@dataclass(frozen=True)
class LIFParams:
    """Integer parameters of one Loihi LIF population (one Lava LIF process).

    du, dv, vth are one value per process (Lava caches vth at the first step); bias_mant may differ
    per neuron (array [N] or scalar). Units: Loihi integers, not floats. Beyond the 12-bit decays and
    17-bit threshold spikeport trains with, netx's integrators use du = -1, dv = 4096 and thresholds
    out of reach (``VTH_LIMIT``, :attr:`spiking`).
    """

    du: int
    dv: int
    vth: int
    bias_mant: Any = 0
    bias_exp: int = 0
    floor_v: bool = False  # KLIF: v = max(v, 0) after integration, before the threshold (custom Lava model)

    def __post_init__(self) -> None:
        for name, lo, hi in (("du", DU_MIN, DECAY_MAX), ("dv", 0, DV_MAX), ("vth", 0, VTH_LIMIT),
                             ("bias_exp", 0, BIAS_EXP_MAX)):
            val = getattr(self, name)
            if not (isinstance(val, (int, np.integer)) and lo <= int(val) <= hi):
                raise ValueError(f"LIF {name}={val!r} is outside Loihi's range [{lo}, {hi}]")
        b = np.asarray(self.bias_mant)
        if b.size and (b.min() < BIAS_MANT_MIN or b.max() > BIAS_MANT_MAX):
            raise ValueError(f"LIF bias_mant outside the signed {BIAS_MANT_BITS}-bit range")

    def effective_bias(self) -> np.ndarray:
        """bias_mant << bias_exp as int64 (Lava: left shift for exp >= 0)."""
        return np.asarray(self.bias_mant, dtype=np.int64) << int(self.bias_exp)

    @property
    def threshold(self) -> int:
        """The value v is compared with: vth << 6."""
        return int(self.vth) << VTH_SHIFT

    @property
    def spiking(self) -> bool:
        """False for a non-spiking integrator: v (clipped to V_LIMIT) never exceeds the threshold."""
        return self.threshold < V_LIMIT


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _i64(x):
    if _is_torch(x):
        import torch

        return x.to(torch.int64)
    return np.asarray(x, dtype=np.int64)


def wrap_signed(x, bits: int):
    """Two's-complement wrap of int64 values into signed ``bits`` (mask arithmetic, no division)."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def wrap_int32(x):
    """Two's-complement wrap of an int64 value into int32 (what Lava's int32 arrays do on overflow)."""
    return wrap_signed(x, 32)


def wrap_conv_output(acc):
    """What Lava's fixed_pt Conv sends: its summed input wrapped modulo 2**24 into [-2**23, 2**23)."""
    return wrap_signed(acc, CONV_OUT_BITS)


def decay(x, d: int, offset: int):
    """tz(x * (4096 - (d + offset))): multiply by the decay factor, shift by 12 toward zero.

    ``(p + (4095 if p < 0 else 0)) >> 12`` is that shift for int64 p (``p >> 63`` is -1 for negative p).
    The factors 4096 (identity) and 0 (forget all) are exact without the product."""
    factor = DECAY_UNITY - (int(d) + offset)
    if factor == DECAY_UNITY:
        return x
    if factor == 0:
        return x * 0
    p = x * factor
    return (p + ((p >> 63) & DECAY_MAX)) >> DECAY_BITS


def wrap24(x):
    """Lava's one conditional wrap of the current: x > 2**23 -> x - 2**24; else x <= -2**23 -> x + 2**24.

    (Lava tests the second condition on the unwrapped value; after the first wrap it cannot hold, so
    the two corrections are independent and can be summed.)"""
    return x - (x > STATE_MAX) * (2 * STATE_MAX) + (x <= -STATE_MAX) * (2 * STATE_MAX)


def current_step(u, a_in, du: int):
    """u of the next step from u and this step's summed input a_in (the first line of :func:`lif_step`)."""
    return wrap24(wrap_int32(decay(u, du, DU_OFFSET) + wrap_int32(a_in << ACT_SHIFT)))


def lif_step(u, v, a_in, params: LIFParams, bias=None):
    """One Loihi CUBA-LIF step. Shapes: u, v, a_in [..., N] integer; returns (s, u, v), s bool.

    ``a_in`` is the summed synaptic input of this step (after the connection's weight exponent).
    ``bias`` is the effective bias (``params.effective_bias()`` by default), broadcast over [..., N].
    """
    u, v, a_in = _i64(u), _i64(v), _i64(a_in)
    if bias is None:
        bias = params.effective_bias()
    if _is_torch(u) and not _is_torch(bias):
        import torch

        bias = torch.as_tensor(bias, dtype=torch.int64, device=u.device)
    u = current_step(u, a_in, params.du)
    v_new = wrap_int32(decay(v, params.dv, DV_OFFSET) + u + bias)
    v_new = v_new.clip(0 if params.floor_v else -V_LIMIT, V_LIMIT)
    s = v_new > params.threshold
    v_new = v_new * ~s
    return s, u, v_new


# --- connections ---------------------------------------------------------------------------------
def dense_weights_for_lava(q: np.ndarray) -> tuple[np.ndarray, int]:
    """An int8 weight matrix q [out, in] as Lava Dense/Sparse arguments: (2*q as int32, weight_exp=-1)."""
    q = np.asarray(q)
    if q.size and (q.min() < WEIGHT_MIN or q.max() > WEIGHT_MAX):
        raise ValueError(f"weights must lie in [{WEIGHT_MIN}, {WEIGHT_MAX}] (symmetric int8)")
    return (q.astype(np.int32) * DENSE_WEIGHT_FACTOR), DENSE_WEIGHT_EXP


def split_wide(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wide weights W in [WIDE_MIN, WIDE_MAX] -> (hi, lo) int64 with W = (hi << 8) + lo, hi in the
    symmetric int8 range, lo in 0..255 (see ``WIDE_HI_EXP``)."""
    w = np.asarray(w).astype(np.int64)
    if w.size and (w.min() < WIDE_MIN or w.max() > WIDE_MAX):
        raise ValueError(f"wide weights must lie in [{WIDE_MIN}, {WIDE_MAX}]")
    return w >> WIDE_HI_EXP, w & ((1 << WIDE_HI_EXP) - 1)


def lava_effective_weights(w: np.ndarray, weight_exp: int = 0) -> tuple[np.ndarray, int]:
    """What Lava's fixed_pt Dense does to a weight matrix before use: clip to 8 bits by sign mode,
    drop the lowest bit when signs are mixed. Returns (int64 weights, weight_exp) unchanged in meaning:
    the connection output is ``shift(weights @ s, weight_exp)``."""
    w = np.asarray(w).astype(np.int64)
    if w.size == 0:
        return w, weight_exp
    if w.min() >= 0:  # excitatory
        w = np.clip(w, 0, (1 << WEIGHT_BITS) - 1)
    elif w.max() <= 0:  # inhibitory
        w = -np.clip(-w, 0, (1 << WEIGHT_BITS) - 1)
    else:  # mixed: clip to [-256, 255], then drop the lowest bit
        w = np.clip(w, -(1 << WEIGHT_BITS), (1 << WEIGHT_BITS) - 1)
        w = (w >> 1) << 1
    return w, weight_exp


def runs_as_lava_conv(weight_exp: int, pool_tiles: bool = True) -> bool:
    """How spikeport deploys a convolution: as a Lava ``Conv`` (which ignores ``weight_exp`` and wraps its
    output to 24 bits) when ``weight_exp == 0`` and a preceding sum pool (if any) tiles its input so it
    folds into the kernel; otherwise as the unrolled matrix in a ``Sparse`` (which applies the exponent)."""
    return int(weight_exp) == 0 and bool(pool_tiles)


def conv_synaptic_input(acc, weight_exp: int, pool_tiles: bool = True):
    """A convolution's summed input as Lava delivers it (see :func:`runs_as_lava_conv`)."""
    if runs_as_lava_conv(weight_exp, pool_tiles):
        return wrap_conv_output(acc)
    return shift_exp(acc, weight_exp)


def shift_exp(acc, weight_exp: int):
    """Apply a connection's weight exponent to a summed input: left shift, or arithmetic right shift
    (floor) for a negative exponent."""
    acc = _i64(acc)
    return acc << weight_exp if weight_exp > 0 else acc >> (-weight_exp)

